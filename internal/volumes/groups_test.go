package volumes

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

func groupClaim(name string, labels map[string]string) *corev1.PersistentVolumeClaim {
	c := claim(name, "pv-"+name, nil)
	c.Labels = labels
	return c
}

// --volume-group-by comes first, then pvbackup.io/volume-group, then Velero's label.
func TestGroupOf(t *testing.T) {
	both := map[string]string{LabelVolumeGroup: "db", LabelVolumeGroupVelero: "velero-db", "app": "shop"}
	for _, tc := range []struct {
		labels         map[string]string
		by, key, value string
	}{
		{both, "", LabelVolumeGroup, "db"},
		{both, "app", "app", "shop"},
		{both, "tier", LabelVolumeGroup, "db"},
		{map[string]string{LabelVolumeGroupVelero: "v"}, "", LabelVolumeGroupVelero, "v"},
		{map[string]string{"app": "shop"}, "", "", ""},
		{map[string]string{LabelVolumeGroup: ""}, "", "", ""},
	} {
		if k, v := GroupOf(groupClaim("a", tc.labels), tc.by); k != tc.key || v != tc.value {
			t.Errorf("GroupOf(%v, by %q) = %s=%s, want %s=%s", tc.labels, tc.by, k, v, tc.key, tc.value)
		}
	}
}

func groupDiscovery(versions ...string) *fakediscovery.FakeDiscovery {
	d := &fakediscovery.FakeDiscovery{Fake: &kubefake.NewSimpleClientset().Fake}
	for _, v := range versions {
		d.Resources = append(d.Resources, &metav1.APIResourceList{GroupVersion: GroupSnapshotGroup + "/" + v,
			APIResources: []metav1.APIResource{{Name: "volumegroupsnapshots", Kind: "VolumeGroupSnapshot", Namespaced: true}}})
	}
	return d
}

// The served version is found at run time: v1 before v1beta2; v1beta1 alone is none this tool speaks.
func TestGroupSnapshotVersion(t *testing.T) {
	for _, tc := range []struct {
		served []string
		want   string
	}{{[]string{"v1beta2", "v1"}, "v1"}, {[]string{"v1beta2"}, "v1beta2"}, {[]string{"v1beta1"}, ""}, {nil, ""}} {
		got, err := GroupSnapshotVersion(groupDiscovery(tc.served...))
		if err != nil || got != tc.want {
			t.Errorf("served %v: version %q, %v; want %q", tc.served, got, err, tc.want)
		}
	}
}

func groupClass(name, driver string, def bool) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": GroupSnapshotGroup + "/v1beta2", "kind": "VolumeGroupSnapshotClass",
		"metadata": map[string]any{"name": name}, "driver": driver, "deletionPolicy": "Delete"}}
	if def {
		u.SetAnnotations(map[string]string{AnnotationDefaultGroupClass: "true"})
	}
	return u
}

// Classes per driver: the default one, else the only one; none when several and none default.
func TestReadGroupFacts(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotClassList"},
		groupClass("dir", "dir.csi", false), groupClass("zonal-a", "zonal.csi", true), groupClass("zonal-b", "zonal.csi", false),
		groupClass("two-a", "two.csi", false), groupClass("two-b", "two.csi", false))
	g, err := ReadGroupFacts(context.Background(), groupDiscovery("v1beta2"), dyn)
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != "v1beta2" || g.Classes["dir.csi"] != "dir" || g.Classes["zonal.csi"] != "zonal-a" || g.Classes["two.csi"] != "" {
		t.Errorf("facts %+v", g)
	}
	none, err := ReadGroupFacts(context.Background(), groupDiscovery(), dyn)
	if err != nil || none.Version != "" {
		t.Errorf("no group API: %+v, %v", none, err)
	}
	// --volume-group-snapshot-class: a named class comes before the default, one per driver.
	if err := g.UseClasses([]string{"zonal-b", "two-b"}); err != nil || g.Classes["zonal.csi"] != "zonal-b" || g.Classes["two.csi"] != "two-b" || g.Classes["dir.csi"] != "dir" {
		t.Errorf("UseClasses: %v, classes %v", err, g.Classes)
	}
	for names, want := range map[string]string{
		"nope":              "no such VolumeGroupSnapshotClass",
		"zonal-a,zonal-b":   "both for CSI driver zonal.csi",
		"dir,missing-class": "missing-class: no such",
	} {
		if err := g.UseClasses(strings.Split(names, ",")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("UseClasses(%s): %v, want %q", names, err, want)
		}
	}
	if err := none.UseClasses([]string{"dir"}); err == nil || !strings.Contains(err.Error(), "serves no VolumeGroupSnapshot API") {
		t.Errorf("a class named without the API: %v", err)
	}
	if err := none.UseClasses(nil); err != nil {
		t.Errorf("no class named without the API: %v", err)
	}
}

// --dry-run says with which group each grouped volume would be cut, and why another is cut
// alone; a class name that does not exist fails the plan, before anything is created.
func TestPlanShowsGroups(t *testing.T) {
	ctx := context.Background()
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotClassList"},
		groupClass("dir-group", "dir.csi", true), groupClass("dir-other", "dir.csi", false))
	one, two, three := groupClaim("one", map[string]string{LabelVolumeGroup: "db"}), groupClaim("two", map[string]string{LabelVolumeGroup: "db"}), groupClaim("three", map[string]string{LabelVolumeGroup: "logs"})
	one.Spec.VolumeName, two.Spec.VolumeName, three.Spec.VolumeName = "pv1", "pv2", "pv3"
	kube := kubefake.NewSimpleClientset(csiPV("pv1", "dir.csi"), csiPV("pv2", "dir.csi"), csiPV("pv3", "local.csi"))
	disc := groupDiscovery("v1beta2")
	disc.Resources = append(disc.Resources, &metav1.APIResourceList{GroupVersion: "snapshot.storage.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "volumesnapshots", Namespaced: true, Kind: "VolumeSnapshot"}}})
	snap := snapfake.NewSimpleClientset(&snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "dir", Annotations: map[string]string{AnnotationDefaultClass: "true"}}, Driver: "dir.csi"},
		&snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: "local", Annotations: map[string]string{AnnotationDefaultClass: "true"}}, Driver: "local.csi"})
	d := Deps{Kube: kube, Snap: snap, Discovery: disc, Dynamic: dyn}
	cfg := Config{Mode: ModeSnapshotMove, DryRun: true, GroupSnapshotClasses: []string{"dir-other"}}
	plan, err := Plan(ctx, d, cfg, []*corev1.PersistentVolumeClaim{one, two, three})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range plan {
		switch v.PVC {
		case "one", "two":
			if !strings.Contains(v.Reason, "would be cut with volume group app/"+LabelVolumeGroup+"=db (2 claims, VolumeGroupSnapshotClass dir-other)") {
				t.Errorf("%s: reason %q", v.PVC, v.Reason)
			}
		case "three":
			if !strings.Contains(v.Reason, "cut alone") || len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], "CSI driver local.csi has no VolumeGroupSnapshotClass") {
				t.Errorf("three: reason %q, warnings %q", v.Reason, v.Warnings)
			}
		}
	}
	cfg.DryRun, cfg.GroupSnapshotClasses = false, []string{"dir-typo"}
	if _, err := Plan(ctx, d, cfg, []*corev1.PersistentVolumeClaim{one}); err == nil || !strings.Contains(err.Error(), "--volume-group-snapshot-class dir-typo: no such VolumeGroupSnapshotClass") {
		t.Errorf("an unknown class: %v", err)
	}
}

// Members of one namespace, label and driver form a group; a claim that cannot be cut with its
// group is cut alone, with a warning that says why.
func TestPlanGroups(t *testing.T) {
	mk := func(pvc, driver string, mode Mode) catalog.Volume {
		return catalog.Volume{Namespace: "app", PVC: pvc, Driver: driver, Mode: string(mode)}
	}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range []*corev1.PersistentVolumeClaim{
		groupClaim("data", map[string]string{LabelVolumeGroup: "db"}), groupClaim("wal", map[string]string{LabelVolumeGroupVelero: "db"}),
		groupClaim("logs", map[string]string{LabelVolumeGroup: "db"}), groupClaim("other", map[string]string{"tier": "web"}),
		groupClaim("kept", map[string]string{LabelVolumeGroup: "db"}),
		groupClaim("nogroup", nil),
	} {
		claims["app/"+c.Name] = c
	}
	facts := &GroupFacts{Version: "v1beta2", Classes: map[string]string{"dir.csi": "dir"}}
	plan := []catalog.Volume{mk("data", "dir.csi", ModeSnapshotMove), mk("wal", "dir.csi", ModeSnapshotMove), mk("logs", "local.csi", ModeSnapshotMove),
		mk("other", "dir.csi", ModeSnapshotMove), mk("kept", "dir.csi", ModeSnapshot), mk("nogroup", "dir.csi", ModeSnapshotMove)}
	groups := planGroups(plan, claims, GroupChoice{By: "tier"}, facts)
	if len(groups) != 3 {
		t.Fatalf("groups %v, want app/%s=db, app/%s=db, app/tier=web", groups, LabelVolumeGroup, LabelVolumeGroupVelero)
	}
	byName := map[string][]int{}
	for _, g := range groups {
		byName[g.Name()] = g.Members
	}
	if m := byName["app/"+LabelVolumeGroup+"=db"]; len(m) != 1 || m[0] != 0 {
		t.Errorf("group db members %v, want data alone (logs has another driver, kept is snapshot mode)", m)
	}
	for pvc, want := range map[string]string{"logs": "its driver local.csi is not the group's dir.csi", "kept": "snapshot mode"} {
		for _, v := range plan {
			if v.PVC == pvc && (len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], want) || !strings.Contains(v.Reason, "cut alone")) {
				t.Errorf("%s: warnings %q reason %q, want it cut alone because %q", pvc, v.Warnings, v.Reason, want)
			}
		}
	}
	if plan[5].VolumeGroup != "" || len(plan[5].Warnings) > 0 {
		t.Errorf("a claim without a group label: %+v", plan[5])
	}
	// Without the API, every grouped claim is cut alone with the reason.
	plan2 := []catalog.Volume{mk("data", "dir.csi", ModeSnapshotMove)}
	if g := planGroups(plan2, claims, GroupChoice{}, &GroupFacts{}); len(g) != 0 || !strings.Contains(strings.Join(plan2[0].Warnings, ""), "serves no VolumeGroupSnapshot API") {
		t.Errorf("no group API: groups %v, warnings %q", g, plan2[0].Warnings)
	}
	// A driver without a class.
	plan3 := []catalog.Volume{mk("data", "zonal.csi", ModeSnapshotMove)}
	if g := planGroups(plan3, claims, GroupChoice{}, facts); len(g) != 0 || !strings.Contains(strings.Join(plan3[0].Warnings, ""), "has no VolumeGroupSnapshotClass") {
		t.Errorf("no class: groups %v, warnings %q", g, plan3[0].Warnings)
	}
}

// GroupsToCut tells create's preflight whether the run cuts volume groups (and an automatic one):
// only then are the rights of group snapshots required.
func TestGroupsToCut(t *testing.T) {
	ctx := context.Background()
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	classes := func(objs ...runtime.Object) *fakedynamic.FakeDynamicClient {
		return fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotClassList"}, objs...)
	}
	forbidden := classes()
	forbidden.PrependReactor("list", "volumegroupsnapshotclasses", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(gvr.GroupResource(), "", errors.New("no"))
	})
	vol := func(pvc, driver string) catalog.Volume {
		return catalog.Volume{Namespace: "app", PVC: pvc, Driver: driver, Mode: string(ModeSnapshotMove)}
	}
	labelled := []*corev1.PersistentVolumeClaim{groupClaim("one", map[string]string{LabelVolumeGroup: "db"}), groupClaim("two", map[string]string{LabelVolumeGroup: "db"})}
	plain := []*corev1.PersistentVolumeClaim{groupClaim("one", nil), groupClaim("two", nil)}
	plan := []catalog.Volume{vol("one", "dir.csi"), vol("two", "dir.csi")}
	for _, tc := range []struct {
		name           string
		disc           *fakediscovery.FakeDiscovery
		dyn            *fakedynamic.FakeDynamicClient
		cfg            Config
		claims         []*corev1.PersistentVolumeClaim
		groups, autoGr bool
	}{
		{"labelled claims, a class", groupDiscovery("v1beta2"), classes(groupClass("dir", "dir.csi", true)), Config{}, labelled, true, false},
		{"labelled claims, no class for their driver", groupDiscovery("v1beta2"), classes(groupClass("other", "other.csi", true)), Config{}, labelled, false, false},
		{"labelled claims, no group API", groupDiscovery(), classes(), Config{}, labelled, false, false},
		{"labelled claims, classes unreadable", groupDiscovery("v1beta2"), forbidden, Config{}, labelled, true, false},
		{"no labels", groupDiscovery("v1beta2"), classes(groupClass("dir", "dir.csi", true)), Config{}, plain, false, false},
		{"no labels, --volume-groups=auto", groupDiscovery("v1beta2"), classes(groupClass("dir", "dir.csi", true)), Config{VolumeGroups: GroupsAuto}, plain, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := slices.Clone(plan)
			groups, auto := GroupsToCut(ctx, Deps{Discovery: tc.disc, Dynamic: tc.dyn}, tc.cfg, p, tc.claims)
			if groups != tc.groups || auto != tc.autoGr {
				t.Errorf("groups %v, auto %v; want %v, %v", groups, auto, tc.groups, tc.autoGr)
			}
			for i := range p {
				if p[i].Reason != "" || len(p[i].Warnings) != 0 {
					t.Errorf("the plan was written: %+v", p[i])
				}
			}
		})
	}
}
