package volumes

import (
	"context"
	"sync"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// turns hands a backup's volumes to its --parallel slots: first those whose snapshot, requested
// ahead, has settled (ready, or failed: its volume then fails at once), in plan order; when none
// has, the next in plan order. The snapshot controller settles the snapshots requested together
// in its own order: taken in plan order, the first slots waited for snapshots that came late
// while others were ready (make bench-scale, 60 claims: 2.5 s of each volume's turn on average).
type turns struct {
	mu      sync.Mutex
	left    []int          // plan indexes not handed out, in plan order
	snap    map[int]string // plan index → ns/name of its snapshot requested ahead
	settled map[string]bool
}

// newTurns orders plan's volumes; ahead says which were requested ahead (their snapshot's
// ns/name, "" for none).
func newTurns(n int, ahead func(i int) string) *turns {
	t := &turns{snap: map[int]string{}, settled: map[string]bool{}}
	for i := 0; i < n; i++ {
		t.left = append(t.left, i)
		if k := ahead(i); k != "" {
			t.snap[i] = k
		}
	}
	return t
}

// next is the plan index of the next volume's turn (-1 when none is left).
func (t *turns) next() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.left) == 0 {
		return -1
	}
	pick := 0
	for k, i := range t.left {
		if t.settled[t.snap[i]] {
			pick = k
			break
		}
	}
	i := t.left[pick]
	t.left = append(t.left[:pick], t.left[pick+1:]...)
	return i
}

func (t *turns) settle(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settled[key] = true
}

// follow records the settled snapshots of this run's backup in each of namespaces until ctx ends.
func (t *turns) follow(ctx context.Context, e *engine, namespaces []string) {
	sel := kube.Labelled(map[string]string{LabelManagedBy: ManagedBy, LabelBackup: e.cfg.Backup, LabelOperation: mover.OpBackup})
	for _, ns := range namespaces {
		lw := kube.ListWatch(e.d.Snap.SnapshotV1().VolumeSnapshots(ns), e.d.Snap, sel)
		go func() {
			_ = kube.Until(ctx, lw, &snapv1.VolumeSnapshot{}, nil, func(ev watch.Event) (bool, error) {
				s, ok := ev.Object.(*snapv1.VolumeSnapshot)
				if ok && s.Status != nil && (ptr.Deref(s.Status.ReadyToUse, false) || s.Status.Error != nil && !transientStatusError(ptr.Deref(s.Status.Error.Message, ""))) {
					t.settle(s.Namespace + "/" + s.Name)
				}
				return false, nil
			})
		}()
	}
}

// backupTurns orders r's plan for moveVolumes and follows the snapshots requested ahead until
// ctx ends.
func (r *backupRun) backupTurns(ctx context.Context) *turns {
	nss := map[string]bool{}
	t := newTurns(len(r.plan), func(i int) string {
		v := &r.plan[i]
		if !r.precreated[v.Namespace+"/"+v.PVC] {
			return ""
		}
		tk := r.backupTask(v)
		name := tk.SnapshotName()
		if Mode(v.Mode) == ModeSnapshot {
			name = tk.KeptSnapshotName()
		}
		nss[v.Namespace] = true
		return v.Namespace + "/" + name
	})
	var list []string
	for ns := range nss {
		list = append(list, ns)
	}
	t.follow(ctx, r.engine, list)
	return t
}
