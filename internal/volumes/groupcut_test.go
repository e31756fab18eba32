package volumes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// groupController stands in for the snapshot controller: each VolumeGroupSnapshot created gets a
// UID, member VolumeSnapshots owned by it for the claims its selector matches, and a status —
// ready, or the error fail names.
func groupController(t *testing.T, snap *snapfake.Clientset, claims []*corev1.PersistentVolumeClaim, fail string) *fakedynamic.FakeDynamicClient {
	return groupControllerOf(t, snap, func() []*corev1.PersistentVolumeClaim { return claims }, fail)
}

// groupControllerOf is groupController over the claims list returns at each cut (their labels then).
func groupControllerOf(t *testing.T, snap *snapfake.Clientset, list func() []*corev1.PersistentVolumeClaim, fail string) *fakedynamic.FakeDynamicClient {
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	classes := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotList", classes: "VolumeGroupSnapshotClassList"}, groupClass("csi-dir", "dir.csi", true))
	dyn.PrependReactor("create", "volumegroupsnapshots", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		uid := types.UID("uid-" + u.GetName())
		u.SetUID(uid)
		sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "source", "selector", "matchLabels")
		for _, c := range list() {
			match := true
			for k, v := range sel {
				match = match && c.Labels[k] == v
			}
			if !match {
				continue
			}
			vs := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: "member-" + c.Name,
				OwnerReferences: []metav1.OwnerReference{{UID: uid, Kind: "VolumeGroupSnapshot", Name: u.GetName()}}},
				Spec: snapv1.VolumeSnapshotSpec{Source: snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(c.Name)}}}
			if _, err := snap.SnapshotV1().VolumeSnapshots(c.Namespace).Create(context.Background(), vs, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		}
		if fail != "" {
			_ = unstructured.SetNestedField(u.Object, fail, "status", "error", "message")
		} else {
			_ = unstructured.SetNestedField(u.Object, "2026-12-07T19:00:00Z", "status", "creationTime")
			_ = unstructured.SetNestedField(u.Object, true, "status", "readyToUse")
		}
		return false, nil, nil // the tracker stores the object as changed here
	})
	return dyn
}

func groupRun(t *testing.T, fail string) (*backupRun, *snapfake.Clientset) {
	t.Helper()
	one := groupClaim("one", map[string]string{LabelVolumeGroup: "db"})
	two := groupClaim("two", map[string]string{LabelVolumeGroup: "db"})
	snap := snapfake.NewSimpleClientset()
	d := Deps{Kube: fake.NewSimpleClientset(), Snap: snap, Discovery: groupDiscovery("v1beta2"), Dynamic: groupController(t, snap, []*corev1.PersistentVolumeClaim{one, two}, fail), Progress: progress.Discard{}}
	cfg := Config{Backup: "b1", ErrorGrace: 300 * time.Millisecond}
	cfg.defaults()
	r := &backupRun{
		engine: &engine{d: d, cfg: cfg, precreated: map[string]bool{}, done: map[string]bool{}, members: map[string]string{}},
		plan: []catalog.Volume{{Namespace: "app", PVC: "one", Driver: "dir.csi", Mode: string(ModeSnapshotMove)},
			{Namespace: "app", PVC: "two", Driver: "dir.csi", Mode: string(ModeSnapshotMove)}},
		claims: map[string]*corev1.PersistentVolumeClaim{"app/one": one, "app/two": two},
	}
	return r, snap
}

// Two claims of a group are cut with one VolumeGroupSnapshot: each then moves from its member
// snapshot (the temporary claim's data source), and the group is deleted at the end.
func TestCutGroups(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, _ := groupRun(t, "")
	if err := r.planVolumeGroups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.cutGroups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.plan {
		if v.Status != "" || v.GroupSnapshot == "" || v.GroupSnapshotAPIVersion != GroupSnapshotGroup+"/v1beta2" || !strings.Contains(v.Reason, "cut with volume group app/"+LabelVolumeGroup+"=db") {
			t.Errorf("volume %s: %+v, want it cut with its group", v.PVC, v)
		}
		tk := r.backupTask(&v)
		if src := tk.TempPVCSpec(&corev1.PersistentVolumeClaim{}, nil, nil).Spec.DataSource.Name; src != "member-"+v.PVC {
			t.Errorf("volume %s: temporary claim from %s, want its member snapshot", v.PVC, src)
		}
	}
	if len(r.groups) != 1 {
		t.Fatalf("groups %v, want one", r.groups)
	}
	r.deleteGroups(ctx)
	gvr := r.groups[0].facts.Resource("volumegroupsnapshots")
	if list, err := r.d.Dynamic.Resource(gvr).Namespace("app").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
		t.Errorf("group snapshots left: %v, %v", list, err)
	}
}

// A group the driver fails fails its volumes with the driver's reason once the error has stood for
// its grace.
func TestCutGroupsFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, _ := groupRun(t, "this VolumeGroupSnapshotClass makes every group snapshot fail")
	start := time.Now()
	if err := r.planVolumeGroups(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.cutGroups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.plan {
		if v.Status != catalog.VolumeFailed || !strings.Contains(v.Error, "failed: this VolumeGroupSnapshotClass makes every group snapshot fail") {
			t.Errorf("volume %s: %+v, want it failed with the driver's reason", v.PVC, v)
		}
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the failure took %s", time.Since(start))
	}
}

// The hooks of every pod that mounts a member of a volume group run once around the group's
// cut: all pre hooks, the VolumeGroupSnapshot (until cut), then all post hooks; a pod with hooks
// whose claim is in no group keeps a window of its own. A failing pre hook stops the window
// before the next pod is frozen and before the cut, its volumes fail, and the pods already
// frozen are thawed.
func TestHooksAroundGroupCut(t *testing.T) {
	hooked := map[string]string{"pre.hook.pvbackup.io/command": "freeze", "post.hook.pvbackup.io/command": "thaw"}
	mkPod := func(name, claim string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Annotations: hooked},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "main"}},
				Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	grouped := func(name, pv string) *corev1.PersistentVolumeClaim {
		c := boundClaim(name, pv)
		c.Labels = map[string]string{LabelVolumeGroup: "db"}
		return c
	}
	for _, tc := range []struct {
		name       string
		fail       map[string]error
		wantOrder  string
		wantStatus string // of the group's members
	}{
		{name: "freeze both, cut the group, thaw both", wantOrder: "pre db-0,pre db-1,group db,post db-0,post db-1,pre web-0,snapshot other,post web-0",
			wantStatus: catalog.VolumeCompleted},
		{name: "a failing pre hook: no cut, the frozen pod thawed", fail: map[string]error{"pre db-0": errors.New("exit code 1")},
			wantOrder: "pre db-0,post db-0,pre web-0,snapshot other,post web-0", wantStatus: catalog.VolumeFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			one, two, other := grouped("one", "pv1"), grouped("two", "pv2"), boundClaim("other", "pv3")
			s := newSim(t, mkPod("db-0", "one"), mkPod("db-1", "two"), mkPod("web-0", "other"), one, two, other,
				csiPV("pv1", "dir.csi"), csiPV("pv2", "dir.csi"), csiPV("pv3", "dir.csi"))
			s.kube.Resources = append(s.kube.Resources, groupDiscovery("v1beta2").Resources...)
			j := &journal{fail: tc.fail}
			s.snap.PrependReactor("create", "volumesnapshots", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if pvc := a.(k8stesting.CreateAction).GetObject().(interface{ GetLabels() map[string]string }).GetLabels()[LabelSourcePVC]; pvc != "" {
					j.add("snapshot " + pvc)
				}
				return false, nil, nil
			})
			dyn := groupController(t, s.snap, []*corev1.PersistentVolumeClaim{one, two, other}, "")
			dyn.PrependReactor("create", "volumegroupsnapshots", func(k8stesting.Action) (bool, runtime.Object, error) {
				j.add("group db")
				return false, nil, nil
			})
			s.run(ctx)
			vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), Dynamic: dyn, Hooks: j}, testConfig(ModeSnapshotMove),
				[]*corev1.PersistentVolumeClaim{one, two, other})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(j.entries, ","); got != tc.wantOrder {
				t.Errorf("order %s\nwant  %s", got, tc.wantOrder)
			}
			for _, v := range vols {
				switch {
				case v.PVC == "other" && (v.Status != catalog.VolumeCompleted || v.GroupSnapshot != "" || len(v.Hooks) != 2):
					t.Errorf("other: %s %s, group %q, hooks %q; want it cut alone in its own pod's window", v.Status, v.Error, v.GroupSnapshot, v.Hooks)
				case v.PVC != "other" && v.Status != tc.wantStatus:
					t.Errorf("%s: %s %s, want %s", v.PVC, v.Status, v.Error, tc.wantStatus)
				case v.PVC != "other" && tc.wantStatus == catalog.VolumeCompleted && (v.GroupSnapshot == "" || len(v.Hooks) != 4 || len(v.Warnings) != 0):
					t.Errorf("%s: group %q, hooks %q, warnings %q; want it cut with its group inside both pods' hooks", v.PVC, v.GroupSnapshot, v.Hooks, v.Warnings)
				}
			}
			for _, l := range leftovers(t, s) {
				if !strings.HasPrefix(l, "volumesnapshot/member-") { // the group's members go with it (garbage collector)
					t.Errorf("left behind: %s", l)
				}
			}
			if list, err := dyn.Resource(schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}).Namespace("app").List(ctx, metav1.ListOptions{}); err != nil || len(list.Items) != 0 {
				t.Errorf("group snapshots left: %v, %v", list, err)
			}
		})
	}
}

// A VolumeGroupSnapshot still being cut (a killed run's, found by cleanup) is deleted only once
// its cut has ended: deleted while the controller creates its members, a member is left stuck.
func TestDeleteGroupWaitsForTheCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotList"},
		&unstructured.Unstructured{Object: map[string]any{"apiVersion": GroupSnapshotGroup + "/v1beta2", "kind": "VolumeGroupSnapshot",
			"metadata": map[string]any{"name": "g1", "namespace": "app"}}})
	var readyAtDelete any
	dyn.PrependReactor("delete", "volumegroupsnapshots", func(k8stesting.Action) (bool, runtime.Object, error) {
		u, _ := dyn.Tracker().Get(gvr, "app", "g1")
		readyAtDelete, _, _ = unstructured.NestedFieldNoCopy(u.(*unstructured.Unstructured).Object, "status", "readyToUse")
		return false, nil, nil
	})
	go func() {
		time.Sleep(300 * time.Millisecond) // the controller finishes the cut
		u, _ := dyn.Resource(gvr).Namespace("app").Get(ctx, "g1", metav1.GetOptions{})
		_ = unstructured.SetNestedField(u.Object, true, "status", "readyToUse")
		_, _ = dyn.Resource(gvr).Namespace("app").Update(ctx, u, metav1.UpdateOptions{})
	}()
	start := time.Now()
	if err := deleteGroup(ctx, snapfake.NewSimpleClientset(), dyn, &GroupFacts{Version: "v1beta2"}, "app", "g1"); err != nil {
		t.Fatal(err)
	}
	if readyAtDelete != true || time.Since(start) < 300*time.Millisecond {
		t.Errorf("deleted after %s with readyToUse %v; want it deleted once the cut ended", time.Since(start), readyAtDelete)
	}
	if _, err := dyn.Resource(gvr).Namespace("app").Get(ctx, "g1", metav1.GetOptions{}); err == nil {
		t.Error("the group snapshot is still there")
	}
}
