package volumes

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

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
		groupClaim("kept", map[string]string{LabelVolumeGroup: "db"}), groupClaim("hooked", map[string]string{LabelVolumeGroup: "db"}),
		groupClaim("nogroup", nil),
	} {
		claims["app/"+c.Name] = c
	}
	facts := &GroupFacts{Version: "v1beta2", Classes: map[string]string{"dir.csi": "dir"}}
	plan := []catalog.Volume{mk("data", "dir.csi", ModeSnapshotMove), mk("wal", "dir.csi", ModeSnapshotMove), mk("logs", "local.csi", ModeSnapshotMove),
		mk("other", "dir.csi", ModeSnapshotMove), mk("kept", "dir.csi", ModeSnapshot), mk("hooked", "dir.csi", ModeSnapshotMove), mk("nogroup", "dir.csi", ModeSnapshotMove)}
	groups := planGroups(plan, claims, "tier", facts, map[string]bool{"app/hooked": true})
	if len(groups) != 3 {
		t.Fatalf("groups %v, want app/%s=db, app/%s=db, app/tier=web", groups, LabelVolumeGroup, LabelVolumeGroupVelero)
	}
	byName := map[string][]int{}
	for _, g := range groups {
		byName[g.Name()] = g.Members
	}
	if m := byName["app/"+LabelVolumeGroup+"=db"]; len(m) != 1 || m[0] != 0 {
		t.Errorf("group db members %v, want data alone (logs has another driver, kept is snapshot mode, hooked was cut)", m)
	}
	for pvc, want := range map[string]string{"logs": "its driver local.csi is not the group's dir.csi", "kept": "snapshot mode", "hooked": "hook window"} {
		for _, v := range plan {
			if v.PVC == pvc && (len(v.Warnings) != 1 || !strings.Contains(v.Warnings[0], want) || !strings.Contains(v.Reason, "cut alone")) {
				t.Errorf("%s: warnings %q reason %q, want it cut alone because %q", pvc, v.Warnings, v.Reason, want)
			}
		}
	}
	if plan[6].VolumeGroup != "" || len(plan[6].Warnings) > 0 {
		t.Errorf("a claim without a group label: %+v", plan[6])
	}
	// Without the API, every grouped claim is cut alone with the reason.
	plan2 := []catalog.Volume{mk("data", "dir.csi", ModeSnapshotMove)}
	if g := planGroups(plan2, claims, "", &GroupFacts{}, nil); len(g) != 0 || !strings.Contains(strings.Join(plan2[0].Warnings, ""), "serves no VolumeGroupSnapshot API") {
		t.Errorf("no group API: groups %v, warnings %q", g, plan2[0].Warnings)
	}
	// A driver without a class.
	plan3 := []catalog.Volume{mk("data", "zonal.csi", ModeSnapshotMove)}
	if g := planGroups(plan3, claims, "", facts, nil); len(g) != 0 || !strings.Contains(strings.Join(plan3[0].Warnings, ""), "has no VolumeGroupSnapshotClass") {
		t.Errorf("no class: groups %v, warnings %q", g, plan3[0].Warnings)
	}
}
