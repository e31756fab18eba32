package volumes

import (
	"context"
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
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// groupController stands in for the snapshot controller: each VolumeGroupSnapshot created gets a
// UID, member VolumeSnapshots owned by it for the claims its selector matches, and a status —
// ready, or the error fail names.
func groupController(t *testing.T, snap *snapfake.Clientset, claims []*corev1.PersistentVolumeClaim, fail string) *fakedynamic.FakeDynamicClient {
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	classes := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotList", classes: "VolumeGroupSnapshotClassList"}, groupClass("csi-dir", "dir.csi", true))
	dyn.PrependReactor("create", "volumegroupsnapshots", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		uid := types.UID("uid-" + u.GetName())
		u.SetUID(uid)
		sel, _, _ := unstructured.NestedStringMap(u.Object, "spec", "source", "selector", "matchLabels")
		for _, c := range claims {
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
	d := Deps{Snap: snap, Discovery: groupDiscovery("v1beta2"), Dynamic: groupController(t, snap, []*corev1.PersistentVolumeClaim{one, two}, fail), Progress: progress.Discard{}}
	cfg := Config{Backup: "b1"}
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
	if err := r.cutGroups(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.plan {
		if v.Status != "" || v.GroupSnapshot == "" || !strings.Contains(v.Reason, "cut with volume group app/"+LabelVolumeGroup+"=db") {
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

// A group the driver fails fails its volumes at once with the driver's reason.
func TestCutGroupsFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, _ := groupRun(t, "this VolumeGroupSnapshotClass makes every group snapshot fail")
	start := time.Now()
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
