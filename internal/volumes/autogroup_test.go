package volumes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// --volume-groups=auto: per namespace and driver, the claims no label puts into a group; a label
// wins over auto; an automatic group of one claim is none; a driver without a class, or snapshot
// mode, cuts its claims alone with a warning, as for labelled groups. Without auto, unlabelled
// claims are in no group.
func TestPlanAutoGroups(t *testing.T) {
	type claimSpec struct {
		ns, pvc, driver string
		mode            Mode
		labels          map[string]string
	}
	db := map[string]string{LabelVolumeGroup: "db"}
	specs := []claimSpec{
		{"app", "data", "dir.csi", ModeSnapshotMove, db}, {"app", "wal", "dir.csi", ModeSnapshotMove, db},
		{"app", "cache", "dir.csi", ModeSnapshotMove, map[string]string{"tier": "web"}}, {"app", "logs", "dir.csi", ModeSnapshotMove, nil},
		{"app", "z1", "zonal.csi", ModeSnapshotMove, nil}, {"app", "z2", "zonal.csi", ModeSnapshotMove, nil},
		{"app", "solo", "local.csi", ModeSnapshotMove, nil},
		{"app", "plain1", "plain.csi", ModeSnapshotMove, nil}, {"app", "plain2", "plain.csi", ModeSnapshotMove, nil},
		{"app", "kept", "dir.csi", ModeSnapshot, nil},
		{"app", "files", "", ModeFS, nil},
		{"other", "o1", "dir.csi", ModeSnapshotMove, nil}, {"other", "o2", "dir.csi", ModeSnapshotMove, nil},
	}
	mkPlan := func() ([]catalog.Volume, map[string]*corev1.PersistentVolumeClaim) {
		claims := map[string]*corev1.PersistentVolumeClaim{}
		var plan []catalog.Volume
		for _, s := range specs {
			c := groupClaim(s.pvc, s.labels)
			c.Namespace = s.ns
			claims[s.ns+"/"+s.pvc] = c
			plan = append(plan, catalog.Volume{Namespace: s.ns, PVC: s.pvc, Driver: s.driver, Mode: string(s.mode)})
		}
		return plan, claims
	}
	facts := &GroupFacts{Version: "v1", Classes: map[string]string{"dir.csi": "dir-g", "zonal.csi": "zonal-g", "local.csi": "local-g"}}
	plan, claims := mkPlan()
	groups := planGroups(plan, claims, GroupChoice{Auto: true, Backup: "b1", RunID: "r0001"}, facts)
	got := map[string][]string{}
	values := map[string]bool{}
	for _, g := range groups {
		for _, i := range g.Members {
			got[g.Name()] = append(got[g.Name()], plan[i].PVC)
		}
		if g.Auto {
			// The selector is namespaced: the values differ per driver within a namespace.
			if g.Key != LabelGroupRun || !strings.HasPrefix(g.Value, backupRunPrefix("b1")) || !strings.Contains(g.Value, "r0001") || len(g.Value) > 63 || values[g.Namespace+"/"+g.Value] {
				t.Errorf("group %s: selector %s=%s, want %s=<backup's prefix><run>-<driver's hash>, one value per driver in a namespace", g.Name(), g.Key, g.Value, LabelGroupRun)
			}
			values[g.Namespace+"/"+g.Value] = true
		}
	}
	want := map[string][]string{
		"app/" + LabelVolumeGroup + "=db": {"data", "wal"},
		"app/auto:dir.csi":                {"cache", "logs"},
		"app/auto:zonal.csi":              {"z1", "z2"},
		"other/auto:dir.csi":              {"o1", "o2"},
	}
	if len(got) != len(want) {
		t.Errorf("groups %v\nwant   %v", got, want)
	}
	for name, members := range want {
		if strings.Join(got[name], ",") != strings.Join(members, ",") {
			t.Errorf("group %s: members %v, want %v", name, got[name], members)
		}
	}
	byPVC := map[string]catalog.Volume{}
	for _, v := range plan {
		byPVC[v.PVC] = v
	}
	for pvc, w := range map[string]struct{ group, reason, warning string }{
		"solo":   {"", "cut alone: the only claim of CSI driver local.csi in namespace app for --volume-groups=auto", ""},
		"plain1": {"app/auto:plain.csi", "cut alone", "CSI driver plain.csi has no VolumeGroupSnapshotClass"},
		"kept":   {"app/auto:dir.csi", "cut alone", "snapshot mode keeps its VolumeSnapshot"},
		"files":  {"", "", ""},
		"data":   {"app/" + LabelVolumeGroup + "=db", "", ""},
		"cache":  {"app/auto:dir.csi", "", ""},
	} {
		v := byPVC[pvc]
		if v.VolumeGroup != w.group || !strings.Contains(v.Reason, w.reason) || (w.warning == "") != (len(v.Warnings) == 0) || !strings.Contains(strings.Join(v.Warnings, "|"), w.warning) {
			t.Errorf("%s: group %q, reason %q, warnings %q; want group %q, reason with %q, warning %q", pvc, v.VolumeGroup, v.Reason, v.Warnings, w.group, w.reason, w.warning)
		}
	}
	for _, g := range groups {
		switch why := g.Why(); {
		case g.Auto && !strings.Contains(why, "--volume-groups=auto: the selected claims of CSI driver "+g.Driver+" in namespace "+g.Namespace+" without a group label"):
			t.Errorf("%s: why %q", g.Name(), why)
		case !g.Auto && why != "by the label "+LabelVolumeGroup+"=db":
			t.Errorf("%s: why %q", g.Name(), why)
		}
	}

	// Without auto (the default), only labels make groups.
	plan, claims = mkPlan()
	groups = planGroups(plan, claims, GroupChoice{Backup: "b1", RunID: "r0001"}, facts)
	if len(groups) != 1 || groups[0].Name() != "app/"+LabelVolumeGroup+"=db" {
		t.Errorf("labels only: groups %v", groups)
	}
	for _, v := range plan {
		if v.PVC != "data" && v.PVC != "wal" && (v.VolumeGroup != "" || len(v.Warnings) > 0) {
			t.Errorf("labels only: %s in group %q, warnings %q", v.PVC, v.VolumeGroup, v.Warnings)
		}
	}
}

// The LabelGroupRun value begins with the backup's prefix (cleanup --backup) and fits a label
// value whatever the names.
func TestAutoGroupValue(t *testing.T) {
	long := strings.Repeat("a", 63)
	v := AutoGroupValue(long, "r0001", strings.Repeat("driver.", 40))
	if len(v) > 63 || !strings.HasPrefix(v, backupRunPrefix(long)) || v != AutoGroupValue(long, "r0001", strings.Repeat("driver.", 40)) {
		t.Errorf("value %q", v)
	}
	if AutoGroupValue("b1", "r0001", "dir.csi") == AutoGroupValue("b1", "r0001", "zonal.csi") || AutoGroupValue("b1", "r0001", "d") == AutoGroupValue("b1", "r0002", "d") ||
		backupRunPrefix("b1") == backupRunPrefix("b2") {
		t.Error("values of different drivers, runs or backups are equal")
	}
}

// autoRun is a backup of claims one and two (no group label, one with a label of the user's)
// with --volume-groups=auto against a group controller that cuts the claims its selector matches
// in the fake cluster at the moment of the cut; onCut runs at each VolumeGroupSnapshot's creation.
// With cancelled, the first removal of each claim's label fails as a call of a cancelled run does
// (the fake clients ignore contexts): only the run's last sweep, in a context of its own, removes it.
func autoRun(t *testing.T, ctx context.Context, fail string, onCut func(), cancelled bool) ([]catalog.Volume, error, *sim) {
	t.Helper()
	one, two := boundClaim("one", "pv1"), boundClaim("two", "pv2")
	one.Labels = map[string]string{"app": "shop"}
	s := newSim(t, one, two, csiPV("pv1", "dir.csi"), csiPV("pv2", "dir.csi"))
	s.kube.Resources = append(s.kube.Resources, groupDiscovery("v1beta2").Resources...)
	dyn := groupControllerOf(t, s.snap, func() []*corev1.PersistentVolumeClaim { return claimsIn(t, s.kube) }, fail)
	dyn.PrependReactor("create", "volumegroupsnapshots", func(k8stesting.Action) (bool, runtime.Object, error) {
		for _, c := range claimsIn(t, s.kube) {
			if c.Labels[LabelGroupRun] == "" {
				t.Errorf("PVC %s not labelled %s when its group is cut", c.Name, LabelGroupRun)
			}
		}
		if onCut != nil {
			onCut()
		}
		return false, nil, nil
	})
	if cancelled {
		failed := map[string]bool{}
		s.kube.PrependReactor("patch", "persistentvolumeclaims", func(a k8stesting.Action) (bool, runtime.Object, error) {
			p := a.(k8stesting.PatchAction)
			if p.GetPatchType() == types.JSONPatchType && !failed[p.GetName()] {
				failed[p.GetName()] = true
				return true, nil, context.Canceled
			}
			return false, nil, nil
		})
	}
	s.run(ctx)
	cfg := testConfig(ModeSnapshotMove)
	cfg.VolumeGroups = GroupsAuto
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), Dynamic: dyn}, cfg, []*corev1.PersistentVolumeClaim{one, two})
	return vols, err, s
}

func claimsIn(t *testing.T, kube *kubefake.Clientset) []*corev1.PersistentVolumeClaim {
	l, err := kube.CoreV1().PersistentVolumeClaims("app").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Error(err)
	}
	var out []*corev1.PersistentVolumeClaim
	for i := range l.Items {
		out = append(out, &l.Items[i])
	}
	return out
}

// The claims of an automatic group carry LabelGroupRun while their group is cut, and not after
// the run, whether it succeeded, the group failed or the run was cancelled at the cut; the user's
// own labels stay.
func TestAutoGroupLabelsForTheCut(t *testing.T) {
	for _, tc := range []struct {
		name, fail string
		cancel     bool
		want       string
	}{
		{name: "cut", want: catalog.VolumeCompleted},
		{name: "the group fails", fail: "the driver says no", want: catalog.VolumeFailed},
		{name: "Ctrl-C at the cut", cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			runCtx, interrupt := context.WithCancel(ctx)
			defer interrupt()
			var onCut func()
			if tc.cancel {
				onCut = interrupt
			}
			vols, err, s := autoRun(t, runCtx, tc.fail, onCut, tc.cancel)
			switch {
			case tc.cancel && !errors.Is(err, context.Canceled):
				t.Errorf("cancelled run: %v", err)
			case !tc.cancel && err != nil:
				t.Fatal(err)
			}
			for _, v := range vols {
				if tc.want != "" && (v.Status != tc.want || v.VolumeGroup != "app/auto:dir.csi") {
					t.Errorf("%s: %s %s, group %q; want %s in app/auto:dir.csi", v.PVC, v.Status, v.Error, v.VolumeGroup, tc.want)
				}
				if tc.want == catalog.VolumeCompleted && (v.GroupSnapshot == "" || !strings.Contains(v.Reason, "cut with volume group app/auto:dir.csi") || !strings.Contains(v.Reason, "--volume-groups=auto")) {
					t.Errorf("%s: group snapshot %q, reason %q", v.PVC, v.GroupSnapshot, v.Reason)
				}
				if tc.fail != "" && !strings.Contains(v.Error, tc.fail) {
					t.Errorf("%s: error %q, want the driver's reason", v.PVC, v.Error)
				}
			}
			for _, c := range claimsIn(t, s.kube) {
				if _, ok := c.Labels[LabelGroupRun]; ok {
					t.Errorf("PVC %s still labelled %s=%s", c.Name, LabelGroupRun, c.Labels[LabelGroupRun])
				}
				if c.Name == "one" && c.Labels["app"] != "shop" {
					t.Errorf("PVC one lost its own label: %v", c.Labels)
				}
			}
		})
	}
}

// cleanup finds the claims a killed run of a backup labelled (only that backup's with --backup)
// and removes that label and nothing else.
func TestLabelledClaimsCleanup(t *testing.T) {
	ctx := context.Background()
	mk := func(name string, labels map[string]string) *corev1.PersistentVolumeClaim {
		c := boundClaim(name, "pv-"+name)
		c.Labels = labels
		return c
	}
	b1, b2 := AutoGroupValue("b1", "r0001", "dir.csi"), AutoGroupValue("b2", "r0002", "dir.csi")
	kube := kubefake.NewSimpleClientset(mk("one", map[string]string{LabelGroupRun: b1, "app": "shop"}), mk("two", map[string]string{LabelGroupRun: b2}),
		mk("three", map[string]string{"app": "shop", LabelVolumeGroup: "db"}))
	names := func(l []LabelledClaim) string {
		var s []string
		for _, c := range l {
			s = append(s, c.Name+"="+c.Value)
		}
		return strings.Join(s, ",")
	}
	if l, err := LabelledClaims(ctx, kube, "b1"); err != nil || names(l) != "one="+b1 {
		t.Errorf("of backup b1: %s, %v", names(l), err)
	}
	all, err := LabelledClaims(ctx, kube, "")
	if err != nil || names(all) != "one="+b1+",two="+b2 {
		t.Errorf("of every backup: %s, %v", names(all), err)
	}
	if err := Unlabel(ctx, kube, all); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"one": {"app": "shop"}, "two": nil, "three": {"app": "shop", LabelVolumeGroup: "db"}}
	for _, c := range claimsIn(t, kube) {
		if len(c.Labels) != len(want[c.Name]) {
			t.Errorf("PVC %s: labels %v, want %v", c.Name, c.Labels, want[c.Name])
		}
		for k, v := range want[c.Name] {
			if c.Labels[k] != v {
				t.Errorf("PVC %s: labels %v, want %v", c.Name, c.Labels, want[c.Name])
			}
		}
	}
}
