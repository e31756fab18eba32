package restore

import (
	"context"
	"fmt"
	"strings"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/quiesce"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Volume actions of an in-place restore.
const (
	Synced    Action = "synced"     // made equal to the backup in place
	WouldSync Action = "would-sync" // --dry-run: what would change is in Reason
)

// InPlace makes existing claims that workloads use equal to the backup, one claim at a time:
// the owners of the pods that mount it are stopped (the original recorded on each object), the
// plugin waits until no pod mounts it, a mover syncs it (files not in the backup removed, equal
// files untouched), and the owners are started again exactly as they were, also when the sync
// fails or ctx is cancelled. A bare pod that mounts the claim fails the claim, untouched.
// With DryRun the owners are listed and a read-only mover counts the difference.
func InPlace(ctx context.Context, d DataDeps, cfg DataConfig) (*Result, error) {
	m, err := d.Catalog.Manifest(ctx, cfg.Backup)
	if err != nil {
		return nil, err
	}
	targets, err := dataTargets(m.Volumes, cfg)
	if err != nil {
		return nil, err
	}
	if d.Volumes == nil {
		return nil, fmt.Errorf("an in-place restore needs a mover configuration")
	}
	if err := dataPreflight(ctx, d, targets, cfg, true); err != nil {
		return nil, err
	}
	res := &Result{Backup: cfg.Backup, DryRun: cfg.DryRun, Summary: map[Action]int{}, Items: []Item{}}
	for i := range targets {
		t := &targets[i]
		t.item = len(res.Volumes)
		res.Volumes = append(res.Volumes, VolumeItem{Namespace: t.ns, PVC: t.pvc, From: t.vol.Namespace + "/" + t.vol.PVC, Mode: t.vol.Mode, KopiaSnapshot: t.vol.KopiaSnapshot})
		if ctx.Err() != nil {
			setVolume(res, t, Failed, "not run: "+ctx.Err().Error())
			continue
		}
		if err := checkKeptInPlace(ctx, d, t); err != nil {
			setVolume(res, t, Failed, err.Error())
			continue
		}
		inPlaceOne(ctx, d, cfg, res, t)
	}
	return res, ctx.Err()
}

// checkKeptInPlace refuses what an in-place restore from a kept VolumeSnapshot cannot do: a
// temporary claim made from it must live in the snapshot's namespace, beside the claim.
func checkKeptInPlace(ctx context.Context, d DataDeps, t *dataTarget) error {
	if !t.kept {
		return nil
	}
	if t.ns != t.vol.Namespace {
		return fmt.Errorf("its data is VolumeSnapshot %s/%s, which a claim in namespace %s cannot be filled from (a snapshot provisions claims of its own namespace only): restore in place into %s, or restore the backup with the data in the location (--volumes fs or snapshot-move)", t.vol.Namespace, t.vol.VolumeSnapshot, t.ns, t.vol.Namespace)
	}
	return keptReady(ctx, d.Snap, t)
}

func inPlaceOne(ctx context.Context, d DataDeps, cfg DataConfig, res *Result, t *dataTarget) {
	if _, err := d.Kube.CoreV1().PersistentVolumeClaims(t.ns).Get(ctx, t.pvc, metav1.GetOptions{}); err != nil {
		setVolume(res, t, Failed, fmt.Sprintf("--in-place restores into an existing claim: get PVC %s/%s: %v", t.ns, t.pvc, err))
		return
	}
	owners, err := quiesce.Find(ctx, d.Kube, t.ns, t.pvc)
	if err != nil {
		setVolume(res, t, Failed, err.Error())
		return
	}
	item := volumes.RestoreItem{Namespace: t.ns, SourceNamespace: t.vol.Namespace, PVC: t.pvc, KopiaSnapshot: t.vol.KopiaSnapshot, SubPath: cfg.IncludePath, Block: t.vol.IsBlock()}
	if t.kept {
		item.FromSnapshot = t.vol.VolumeSnapshot
	}
	if cfg.DryRun {
		item.DiffOnly = true
		o := fill(ctx, d, item)
		if o.Err != nil {
			setVolume(res, t, Failed, "compare with the backup: "+o.Err.Error())
			return
		}
		diff := "no difference computed"
		if o.Result != nil && o.Result.Diff != nil {
			diff = o.Result.Diff.String()
		}
		setVolume(res, t, WouldSync, fmt.Sprintf("would stop %s; data: %s", describeOwners(owners), diff))
		return
	}
	// Whatever happens from here, the owners are started again.
	stopErr := quiesce.Stop(ctx, d.Kube, owners, cfg.Backup)
	defer func() {
		sctx, cancel := cleanup.Context(ctx, cleanup.Objects)
		defer cancel()
		if err := quiesce.Start(sctx, d.Kube, owners); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("PVC %s/%s: %v (or run `kubectl pvbackup cleanup`)", t.ns, t.pvc, err))
		}
	}()
	if stopErr != nil {
		setVolume(res, t, Failed, stopErr.Error())
		return
	}
	if err := quiesce.WaitUnmounted(ctx, d.Kube, t.ns, t.pvc, cfg.timeout()); err != nil {
		setVolume(res, t, Failed, err.Error())
		return
	}
	item.Sync = true
	o := fill(ctx, d, item)
	it := &res.Volumes[t.item]
	it.Seconds = o.Seconds
	if o.Err == nil && o.Result != nil {
		// Anything that scaled an owner up during the sync may have had pods write to the claim.
		if err := quiesce.Verify(context.WithoutCancel(ctx), d.Kube, owners); err != nil {
			it.Action, it.Reason = Failed, fmt.Sprintf("synced, but pods may have written to the claim meanwhile: %v: stop that and run the restore again", err)
			return
		}
	}
	if it.apply(ctx, o, Synced) {
		it.Reason = fmt.Sprintf("%d files rewritten, %d equal; stopped and started again: %s", o.Result.Files, o.Result.SkippedFiles, describeOwners(owners))
	}
}

// fill runs one restore mover.
func fill(ctx context.Context, d DataDeps, item volumes.RestoreItem) volumes.RestoreOutcome {
	outs, err := d.Volumes.Restore(ctx, []volumes.RestoreItem{item})
	if len(outs) == 1 {
		return outs[0]
	}
	if err == nil {
		err = ctx.Err()
	}
	return volumes.RestoreOutcome{RestoreItem: item, Err: err}
}

func describeOwners(owners []quiesce.Owner) string {
	if len(owners) == 0 {
		return "no workload"
	}
	var parts []string
	for _, o := range owners {
		was := o.Original + " replicas"
		if o.Kind == quiesce.KindCronJob {
			was = "suspend=" + o.Original
		}
		if o.Autoscaler != "" {
			was += ", scaled by HorizontalPodAutoscaler " + o.Autoscaler + ", which leaves it at zero while stopped"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", o, was))
	}
	return strings.Join(parts, ", ")
}
