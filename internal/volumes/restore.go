package volumes

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// RestoreItem is one claim to fill from a Kopia snapshot. The claim exists already.
type RestoreItem struct {
	Namespace       string // where the claim is now
	SourceNamespace string // the repository: the namespace the data was backed up from
	PVC             string
	KopiaSnapshot   string
	// RequireEmpty fails the fill, writing nothing, when the claim holds data (an existing claim).
	RequireEmpty bool
	// SubPath restores only that directory of the snapshot.
	SubPath string
	// Sync makes the claim equal to the snapshot (in-place); DiffOnly counts what Sync would change,
	// mounting the claim read-only.
	Sync, DiffOnly bool
	// FromSnapshot restores from this kept VolumeSnapshot (in Namespace, snapshot mode) instead
	// of KopiaSnapshot: the mover copies from a temporary claim made from it.
	FromSnapshot string
	// Workload, when set, is what the pods that will use the claim demand of their node: the
	// mover runs where they can (placeRestore).
	Workload *Workload
	// Block: the claim is volumeMode: Block and the snapshot a block volume's image.
	Block bool
}

// RestoreOutcome is what happened to one RestoreItem.
type RestoreOutcome struct {
	RestoreItem
	Result *mover.Result
	// Node is where the mover ran.
	Node    string
	Err     error
	Seconds float64
}

// Restore fills each claim with a restore mover Job, cfg.Parallel at a time. The Job mounts the
// claim, so a WaitForFirstConsumer claim binds on the mover pod's node.
func Restore(ctx context.Context, d Deps, cfg Config, items []RestoreItem) ([]RestoreOutcome, error) {
	cfg.defaults()
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	e := &engine{d: d, cfg: cfg}
	pods := &podIndex{kube: d.Kube, byNS: map[string][]corev1.Pod{}}
	nodes := &nodePicker{}
	out := make([]RestoreOutcome, len(items))
	err := e.forEach(ctx, len(items), func(ctx context.Context, i int) {
		it := items[i]
		out[i].RestoreItem = it
		t := Task{Backup: cfg.Backup, Op: mover.OpRestore, Namespace: it.Namespace, SourceNamespace: it.SourceNamespace, PVC: it.PVC, Run: cfg.RunID,
			RequireEmpty: it.RequireEmpty, SubPath: it.SubPath, Sync: it.Sync, DiffOnly: it.DiffOnly, FromSnapshot: it.FromSnapshot, Block: it.Block}
		from := "snapshot " + it.KopiaSnapshot
		if it.FromSnapshot != "" {
			from = "VolumeSnapshot " + it.FromSnapshot
		}
		phase := fmt.Sprintf("fill volume %s/%s from %s", it.Namespace, it.PVC, from)
		if it.DiffOnly {
			phase = "would " + phase + " (dry run: compared, nothing written)"
		}
		done := d.Progress.Start(phase)
		start := time.Now()
		var created createdObjects
		err := e.checkVolumeMode(ctx, it)
		var place Placement
		if err == nil {
			place, err = e.placeRestore(ctx, pods, nodes, it)
		}
		var res *mover.Result
		if err == nil && it.FromSnapshot != "" {
			err = e.claimFromKept(ctx, t, &created)
		}
		if err == nil {
			res, out[i].Node, err = e.runMover(ctx, t, &created, it.PVC, it.KopiaSnapshot, place)
		}
		cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
		if cerr := e.cleanup(cctx, t, &created, false); cerr != nil {
			// Also after a failed mover: a Secret left behind holds the namespace's key.
			d.Progress.Warn(fmt.Sprintf("cleanup of the mover of %s/%s: %v (run kubectl pvbackup cleanup)", it.Namespace, it.PVC, cerr))
		}
		cancel()
		err = progress.Explain(ctx, permissionHint(err, &e.cfg.Mover))
		out[i].Result, out[i].Err, out[i].Seconds = res, err, time.Since(start).Round(time.Millisecond).Seconds()
		if err != nil {
			done("", err)
			return
		}
		done(fmt.Sprintf("%s, %s", progress.Plural(int(res.Files), "file", "files"), progress.Bytes(res.Bytes)), nil)
	})
	return out, err
}

// claimFromKept makes the temporary claim the mover copies from: from the kept VolumeSnapshot,
// shaped like the claim being restored (its class, at least its size and the snapshot's).
func (e *engine) claimFromKept(ctx context.Context, t Task, created *createdObjects) error {
	vs, err := e.d.Snap.SnapshotV1().VolumeSnapshots(t.Namespace).Get(ctx, t.FromSnapshot, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get VolumeSnapshot %s/%s: %w", t.Namespace, t.FromSnapshot, err)
	}
	if vs.Status == nil || vs.Status.ReadyToUse == nil || !*vs.Status.ReadyToUse {
		return fmt.Errorf("VolumeSnapshot %s/%s is not ready to use", t.Namespace, t.FromSnapshot)
	}
	claim, err := e.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Get(ctx, t.PVC, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get PVC %s: %w", describeClaim(t.Namespace, t.PVC), err)
	}
	pvc := t.TempPVCSpec(claim, vs.Status.RestoreSize, nil)
	if _, err := e.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create temporary PVC %s/%s from VolumeSnapshot %s: %w", t.Namespace, pvc.Name, t.FromSnapshot, err)
	}
	created.tempPVC = true
	return nil
}

// checkVolumeMode refuses to fill a filesystem claim from a block volume's backup and the other
// way round: the mover's pod would never start (the kubelet cannot map or mount it).
func (e *engine) checkVolumeMode(ctx context.Context, it RestoreItem) error {
	claim, err := e.d.Kube.CoreV1().PersistentVolumeClaims(it.Namespace).Get(ctx, it.PVC, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get PVC %s: %w", describeClaim(it.Namespace, it.PVC), err)
	}
	switch {
	case it.Block && !isBlock(claim):
		return fmt.Errorf("PVC %s is a filesystem claim and the backup holds a raw block volume: restore into a claim with volumeMode: Block", describeClaim(it.Namespace, it.PVC))
	case !it.Block && isBlock(claim):
		return fmt.Errorf("PVC %s is a raw block claim (volumeMode: Block) and the backup holds a filesystem: restore into a filesystem claim", describeClaim(it.Namespace, it.PVC))
	}
	return nil
}

// placeRestore puts a mover that fills a claim for a workload where the workload can run
// (placeForWorkload). A mover of a claim that pods use (an in-place dry run reading it, a fill
// of an existing claim a pod keeps mounted) runs on their node: on another node a ReadWriteOnce
// claim would not attach (Multi-Attach).
func (e *engine) placeRestore(ctx context.Context, pods *podIndex, nodes *nodePicker, it RestoreItem) (Placement, error) {
	if !it.DiffOnly && it.Workload != nil {
		claim, err := e.d.Kube.CoreV1().PersistentVolumeClaims(it.Namespace).Get(ctx, it.PVC, metav1.GetOptions{})
		if err != nil {
			return Placement{}, fmt.Errorf("get PVC %s: %w", describeClaim(it.Namespace, it.PVC), err)
		}
		return e.placeForWorkload(ctx, nodes, it.Workload, claim)
	}
	users, err := pods.using(ctx, it.Namespace, it.PVC)
	if err != nil || len(users) == 0 {
		return Placement{}, err
	}
	claim, err := e.d.Kube.CoreV1().PersistentVolumeClaims(it.Namespace).Get(ctx, it.PVC, metav1.GetOptions{})
	if err != nil {
		return Placement{}, fmt.Errorf("get PVC %s: %w", describeClaim(it.Namespace, it.PVC), err)
	}
	node, tolerations, err := beside(users, claim)
	return Placement{Node: node, Tolerations: tolerations}, err
}

// permissionHint adds what to do to a restore mover's "permission denied": files of the volume
// (root's, most often, on an in-place or data-only restore) that the mover's user may not write.
func permissionHint(err error, c *MoverConfig) error {
	if err == nil || c.Privileged || !strings.Contains(err.Error(), "permission denied") {
		return err
	}
	uid := int64(DefaultMoverUID)
	if c.RunAsUser != nil {
		uid = *c.RunAsUser
	}
	return fmt.Errorf("%w (the mover runs as user %d, and the volume holds files it may not write: "+
		"rerun with --mover-privileged to write them as root, owners restored, or with --mover-run-as UID of the files' owner)", err, uid)
}
