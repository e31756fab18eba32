package restore

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Preflight checks a restore's plan before anything is created in the cluster; its error stops
// the restore (Deps.Preflight, DataDeps.Preflight; nil: no check).
type Preflight func(context.Context, PreflightPlan) error

// PreflightPlan is what a restore fills with movers, decided by the rule the fill itself
// follows (moverFills, dataTarget.moverFills): a check cannot disagree with the restore.
type PreflightPlan struct {
	Volumes []PlannedVolume
}

// PlannedVolume is one claim a mover fills, as restored.
type PlannedVolume struct {
	// Namespace and PVC name the claim; its mover runs in Namespace.
	Namespace, PVC string
	// StorageClass is the claim's class here (mapped); BackedUpClass the class it had.
	StorageClass, BackedUpClass string
}

// moverFills says whether a restore of objects fills a claim whose data v records with a mover
// (when the claim is created): fillClaims' rule.
func moverFills(v catalog.Volume, cfg Config) bool {
	return v.Status == catalog.VolumeCompleted && cfg.RestoreVolumes && v.Mode != string(volumes.ModeSnapshot) && v.KopiaSnapshot != ""
}

// moverFills says whether a data-only (or, inPlace, an in-place) restore runs a mover for t:
// always in place; for data only, unless a kept VolumeSnapshot provisions the claim.
func (t *dataTarget) moverFills(inPlace bool) bool {
	return inPlace || !t.kept
}

// preflight hands the claims that this restore's movers fill, among the selected objects (after
// mappings), to d.Preflight.
func (r *run) preflight(ctx context.Context, entries []*entry) error {
	if r.d.Preflight == nil || r.d.Volumes == nil {
		return nil
	}
	var plan PreflightPlan
	for _, e := range entries {
		if e.skip != "" || e.gr != grPVC {
			continue
		}
		if v, ok := r.volumeOf(e); ok && moverFills(v, r.cfg) {
			class, _, _ := unstructured.NestedString(e.obj.Object, "spec", "storageClassName")
			plan.Volumes = append(plan.Volumes, PlannedVolume{Namespace: e.obj.GetNamespace(), PVC: e.obj.GetName(), StorageClass: class, BackedUpClass: v.StorageClass})
		}
	}
	return r.d.Preflight(ctx, plan)
}

// dataPreflight hands the targets a data-only or in-place restore fills with movers to
// d.Preflight.
func dataPreflight(ctx context.Context, d DataDeps, targets []dataTarget, cfg DataConfig, inPlace bool) error {
	if d.Preflight == nil || d.Volumes == nil {
		return nil
	}
	var plan PreflightPlan
	for i := range targets {
		t := &targets[i]
		if !t.moverFills(inPlace) {
			continue
		}
		class := cfg.StorageClassMapping.Lookup(t.vol.StorageClass)
		plan.Volumes = append(plan.Volumes, PlannedVolume{Namespace: t.ns, PVC: t.pvc, StorageClass: class, BackedUpClass: t.vol.StorageClass})
	}
	return d.Preflight(ctx, plan)
}
