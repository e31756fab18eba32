package restore

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// volumeOf returns the backup's record of the claim's data (by its source namespace and name).
func (r *run) volumeOf(e *entry) (catalog.Volume, bool) {
	v, ok := r.vols[e.key.Namespace+"/"+e.key.Name]
	return v, ok
}

// prepareClaim drops data sources of the original claim (a clone source or a snapshot that may
// not exist here) when the backup has its data, and points a snapshot-mode claim at its kept
// VolumeSnapshot.
func (r *run) prepareClaim(e *entry) {
	v, ok := r.volumeOf(e)
	if !ok || !r.cfg.RestoreVolumes || v.Status != catalog.VolumeCompleted {
		return
	}
	switch {
	case v.KopiaSnapshot != "":
		unstructured.RemoveNestedField(e.obj.Object, "spec", "dataSource")
		unstructured.RemoveNestedField(e.obj.Object, "spec", "dataSourceRef")
	case v.VolumeSnapshot != "" && e.obj.GetNamespace() == v.Namespace:
		src := map[string]any{"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": v.VolumeSnapshot}
		_ = unstructured.SetNestedMap(e.obj.Object, src, "spec", "dataSource")
		_ = unstructured.SetNestedMap(e.obj.Object, deepCopyMap(src), "spec", "dataSourceRef")
	}
}

func deepCopyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PlacementChecker is a VolumeEngine that can tell, before a claim is created, that no
// schedulable node can run both the workload that will mount it and a volume of its topology
// (volumes.CheckPlacement). A restore asks it before it creates the claims it fills.
type PlacementChecker interface {
	CheckPlacement(ctx context.Context, claims []volumes.PlannedClaim) ([]error, error)
}

// refuseUnplaceable records as failed, without creating them, the claims of batch that this
// restore would fill for a workload that no schedulable node can run with their volume: filled,
// their data would sit where the application never runs. It returns the claims to create.
func (r *run) refuseUnplaceable(ctx context.Context, batch []*entry) []*entry {
	pc, ok := r.d.Volumes.(PlacementChecker)
	if !ok || r.cfg.DryRun || !r.cfg.RestoreVolumes {
		return batch
	}
	var planned []volumes.PlannedClaim
	var which []*entry
	for _, e := range batch {
		v, ok := r.volumeOf(e)
		if !ok || e.gr != grPVC || v.Status != catalog.VolumeCompleted || v.KopiaSnapshot == "" {
			continue
		}
		w := r.workloadFor(e.obj.GetNamespace(), e.obj.GetName())
		if w == nil {
			continue
		}
		pv, _, _ := unstructured.NestedString(e.obj.Object, "spec", "volumeName")
		planned = append(planned, volumes.PlannedClaim{Namespace: e.obj.GetNamespace(), Name: e.obj.GetName(), StorageClass: claimClass(e.obj), VolumeName: pv, Workload: w})
		which = append(which, e)
	}
	if len(planned) == 0 {
		return batch
	}
	errs, err := pc.CheckPlacement(ctx, planned)
	if err != nil {
		// The movers are still placed, and fail the volumes they cannot place.
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("the claims' placement was not checked before they were created: %v", err))
		return batch
	}
	refused := map[*entry]bool{}
	for i, err := range errs {
		if err != nil {
			e := which[i]
			e.refused = err.Error()
			r.record(e, Failed, e.refused)
			e.done.Store(true)
			refused[e] = true
		}
	}
	out := make([]*entry, 0, len(batch))
	for _, e := range batch {
		if !refused[e] {
			out = append(out, e)
		}
	}
	return out
}

// claimClass is the StorageClass a claim names (the beta annotation wins), nil when it names
// none (the default class), "" for none at all.
func claimClass(o *unstructured.Unstructured) *string {
	if c := classAnnotation(o.Object); c != "" {
		return &c
	}
	if c, found, _ := unstructured.NestedString(o.Object, "spec", "storageClassName"); found {
		return &c
	}
	return nil
}

// fillClaims runs once the claims exist and before any workload: each created claim whose data
// is in a Kopia snapshot is filled by a restore mover.
func (r *run) fillClaims(ctx context.Context) error {
	var items []volumes.RestoreItem
	var idx []int
	for _, e := range r.claims {
		v, ok := r.volumeOf(e)
		if !ok {
			continue
		}
		it := VolumeItem{Namespace: e.obj.GetNamespace(), PVC: e.obj.GetName(), From: v.Namespace + "/" + v.PVC, Mode: v.Mode, KopiaSnapshot: v.KopiaSnapshot}
		switch {
		case v.Status != catalog.VolumeCompleted:
			it.Action, it.Reason = Skipped, fmt.Sprintf("its data was not backed up (%s: %s%s)", v.Status, v.Reason, orEmpty(": ", v.Error))
		case !r.cfg.RestoreVolumes:
			it.Action, it.Reason = Skipped, "--restore-volumes=false"
		case v.Mode == string(volumes.ModeSnapshot):
			if e.obj.GetNamespace() != v.Namespace {
				it.Action, it.Reason = Failed, fmt.Sprintf("its data is VolumeSnapshot %s/%s, which a claim in namespace %s cannot use; restore without --namespace-mapping", v.Namespace, v.VolumeSnapshot, e.obj.GetNamespace())
			} else if r.cfg.DryRun {
				it.Action, it.Reason = WouldRestore, "from VolumeSnapshot "+v.VolumeSnapshot
			} else if e.created {
				it.Action, it.Reason = FromSnapshot, "VolumeSnapshot "+v.VolumeSnapshot
			} else {
				it.Action, it.Reason = Skipped, "the claim exists: its data was left as it is"
			}
		case v.KopiaSnapshot == "":
			it.Action, it.Reason = Skipped, "no data in the backup"
		case r.cfg.DryRun:
			it.Action, it.Reason = WouldRestore, "from Kopia snapshot "+v.KopiaSnapshot
		case e.refused != "":
			it.Action, it.Reason = Failed, e.refused
		case !e.created:
			it.Action, it.Reason = Skipped, "the claim was not created (exists or failed): its data was left as it is"
		case r.d.Volumes == nil:
			it.Action, it.Reason = Skipped, "volume data is not restored by this command"
		default:
			items = append(items, volumes.RestoreItem{Namespace: it.Namespace, SourceNamespace: v.Namespace, PVC: it.PVC, KopiaSnapshot: v.KopiaSnapshot,
				Workload: r.workloadFor(it.Namespace, it.PVC), Block: v.IsBlock()})
			idx = append(idx, len(r.res.Volumes))
		}
		r.res.Volumes = append(r.res.Volumes, it)
	}
	if len(items) == 0 {
		return nil
	}
	outs, err := r.d.Volumes.Restore(ctx, items)
	for i, o := range outs {
		r.res.Volumes[idx[i]].apply(ctx, o, Restored)
	}
	return err
}

// apply records a mover's outcome on the volume's row: done as ok, or failed with the reason
// (a mover that never ran was cut short by ctx). It reports whether the mover succeeded.
func (it *VolumeItem) apply(ctx context.Context, o volumes.RestoreOutcome, ok Action) bool {
	it.Seconds, it.MoverNode = o.Seconds, o.Node
	switch {
	case o.Err != nil:
		it.Action, it.Reason = Failed, o.Err.Error()
	case o.Result != nil:
		it.Action, it.Files, it.Bytes, it.HardLinks = ok, o.Result.Files, o.Result.Bytes, o.Result.HardLinks
		it.MoverSeconds = o.Result.DurationSeconds
		return true
	default:
		it.Action, it.Reason = Failed, "not run: "+fmt.Sprint(ctx.Err())
	}
	return false
}

func orEmpty(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}
