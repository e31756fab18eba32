package volumes

import (
	"context"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// A snapshot requested ahead that is ready when its volume's turn comes is read once: no list and
// watch of it, nor of the namespace's events. At 60 volumes those waits were two list-and-watch
// pairs each on a busy apiserver. (One with a status error is waited for: the error may be
// cleared within its grace, TestSnapshotWaitErrorGrace.)
func TestSnapshotRequestedAheadIsReadOnce(t *testing.T) {
	tk := Task{Backup: "b1", Op: mover.OpBackup, Namespace: "app", SourceNamespace: "app", PVC: "data", Run: "r1"}
	vs := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: tk.SnapshotName()},
		Status: &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), BoundVolumeSnapshotContentName: ptr.To("c1")}}
	content := &snapv1.VolumeSnapshotContent{ObjectMeta: metav1.ObjectMeta{Name: "c1"}, Status: &snapv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("h1")}}
	snap := snapfake.NewSimpleClientset(vs, content)
	kube := fake.NewSimpleClientset()
	e := &engine{d: Deps{Kube: kube, Snap: snapFake{snap}}, cfg: Config{Timeout: time.Second, ControllerTimeout: time.Second}, precreated: map[string]bool{"app/data": true}}
	v := &catalog.Volume{Namespace: "app", PVC: "data", SnapshotClass: "dir"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := e.snapshot(ctx, tk, v, &createdObjects{}, false)
	if err != nil || got == nil || got.Name != vs.Name || v.SnapshotHandle != "h1" {
		t.Fatalf("got %v, handle %q, error %v; want the ready snapshot and handle h1", got, v.SnapshotHandle, err)
	}
	for _, a := range append(snap.Actions(), kube.Actions()...) {
		if a.GetVerb() == "list" || a.GetVerb() == "watch" {
			t.Errorf("%s %s: a snapshot settled before its turn is read once, not waited for", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
