package volumes

import (
	"context"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Volumes whose snapshot has settled take the next turns, in plan order; then the others, in
// plan order.
func TestTurnsSettledFirst(t *testing.T) {
	ahead := map[int]string{0: "app/s0", 1: "app/s1", 2: "app/s2", 4: "app/s4"} // 3: none requested ahead
	tn := newTurns(5, func(i int) string { return ahead[i] })
	tn.settle("app/s2")
	tn.settle("app/s4")
	var got []int
	for i := tn.next(); i >= 0; i = tn.next() {
		got = append(got, i)
		if i == 4 {
			tn.settle("app/s1")
		}
	}
	want := []int{2, 4, 1, 0, 3}
	if len(got) != len(want) {
		t.Fatalf("turns %v, want %v", got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("turns %v, want %v", got, want)
		}
	}
}

// follow sees the run's snapshots that are ready or failed, those listed at its start included,
// and only this backup's.
func TestTurnsFollowSnapshots(t *testing.T) {
	labels := func(backup string) map[string]string {
		return map[string]string{LabelManagedBy: ManagedBy, LabelBackup: backup, LabelOperation: "backup"}
	}
	vs := func(name, backup string, st *snapv1.VolumeSnapshotStatus) *snapv1.VolumeSnapshot {
		return &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Labels: labels(backup)}, Status: st}
	}
	snap := snapfake.NewSimpleClientset(
		vs("ready", "b1", &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}),
		vs("failed", "b1", &snapv1.VolumeSnapshotStatus{Error: &snapv1.VolumeSnapshotError{Message: ptr.To("x")}}),
		vs("pending", "b1", &snapv1.VolumeSnapshotStatus{}),
		vs("other", "b2", &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true)}),
	)
	e := &engine{d: Deps{Snap: snapFake{snap}}, cfg: Config{Backup: "b1"}}
	tn := newTurns(0, func(int) string { return "" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn.follow(ctx, e, []string{"app"})
	for !(tn.isSettled("app/ready") && tn.isSettled("app/failed")) {
		select {
		case <-ctx.Done():
			t.Fatal("the ready and the failed snapshot were not seen settled")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if tn.isSettled("app/pending") || tn.isSettled("app/other") {
		t.Errorf("settled %v: a pending snapshot, or another backup's, is not", tn.settled)
	}
}

func (t *turns) isSettled(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.settled[key]
}
