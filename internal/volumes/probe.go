package volumes

import (
	"context"
	"fmt"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// Prober runs the steps of doctor's live probe with the engine's own object specs and waits, so
// the probe exercises what a backup would do: the same VolumeSnapshot, the same mover Job and
// Secret, the same terminal events (ImagePullBackOff, ProvisioningFailed, status.error).
type Prober struct{ e *engine }

// NewProber binds the engine's dependencies and configuration (cfg.Timeout bounds each wait).
func NewProber(d Deps, cfg Config) *Prober {
	cfg.defaults()
	return &Prober{e: &engine{d: d, cfg: cfg, precreated: map[string]bool{}, done: map[string]bool{}}}
}

// Snapshot creates the VolumeSnapshot of t's claim with class and waits until it is ready; the
// caller deletes it (Delete with SnapshotObject).
func (p *Prober) Snapshot(ctx context.Context, t Task, class string) (*snapv1.VolumeSnapshot, error) {
	v := &catalog.Volume{Namespace: t.Namespace, PVC: t.PVC, SnapshotClass: class}
	return p.e.snapshot(ctx, t, v, &createdObjects{}, false)
}

// Mover runs a mover Job (t.Op) with claim mounted, then deletes the Job, its pods and the Secret.
func (p *Prober) Mover(ctx context.Context, t Task, claim string) (*mover.Result, error) {
	var created createdObjects
	res, _, err := p.e.runMover(ctx, t, &created, claim, "", Placement{})
	cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
	defer cancel()
	if cerr := p.e.cleanup(cctx, t, &created, false); cerr != nil && err == nil {
		err = fmt.Errorf("clean up after the mover: %w", cerr)
	}
	return res, err
}

// WaitBound waits until claim ns/name is Bound, failing at once on a terminal event of the claim
// (ProvisioningFailed).
func (p *Prober) WaitBound(ctx context.Context, ns, name string) (*corev1.PersistentVolumeClaim, error) {
	lw := kube.ListWatch(p.e.d.Kube.CoreV1().PersistentVolumeClaims(ns), p.e.d.Kube, kube.Named(name))
	var bound *corev1.PersistentVolumeClaim
	err := until(ctx, p.e.d.Kube, waitSpec{
		Namespace: ns,
		What:      fmt.Sprintf("PVC %s/%s: waiting until it is bound", ns, name),
		Timeout:   p.e.cfg.Timeout,
		LW:        lw,
		Obj:       &corev1.PersistentVolumeClaim{},
		Mine:      named(name),
		Events:    func(ref corev1.ObjectReference) bool { return ref.Kind == "PersistentVolumeClaim" && ref.Name == name },
		Cond: func(o runtime.Object, _ *kube.Stall) (bool, string, error) {
			c := o.(*corev1.PersistentVolumeClaim)
			if c.Status.Phase == corev1.ClaimBound {
				bound = c
				return true, "", nil
			}
			return false, fmt.Sprintf("PVC %s/%s %s", ns, name, phaseOr(c.Status.Phase)), nil
		},
	})
	return bound, err
}

// SnapshotObject names t's VolumeSnapshot for Delete.
func (t Task) SnapshotObject() Object {
	return Object{Kind: "VolumeSnapshot", Namespace: t.Namespace, Name: t.SnapshotName()}
}
