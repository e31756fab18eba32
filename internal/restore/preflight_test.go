package restore

import (
	"context"
	"reflect"
	"sort"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// planOf runs the preflight hook of r on entries and returns the claims it was handed.
func planned(t *testing.T, check func(context.Context, Preflight) error) []PlannedVolume {
	t.Helper()
	var got []PlannedVolume
	called := false
	if err := check(context.Background(), func(_ context.Context, p PreflightPlan) error {
		called, got = true, p.Volumes
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Fatal("the preflight hook was not called")
	}
	return got
}

// The preflight of a restore of objects is handed exactly the claims fillClaims gives the
// movers: selected, created, with their data in the location, --restore-volumes on.
func TestPreflightPlanIsWhatIsFilled(t *testing.T) {
	vols := []catalog.Volume{
		{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k1", StorageClass: "gp2"},
		{Namespace: "shop", PVC: "move", Mode: "snapshot-move", Status: catalog.VolumeCompleted, KopiaSnapshot: "k2", StorageClass: "gp2"},
		{Namespace: "shop", PVC: "failed", Mode: "fs", Status: catalog.VolumeFailed, KopiaSnapshot: "partial", StorageClass: "gp2"},
		{Namespace: "shop", PVC: "kept", Mode: "snapshot", Status: catalog.VolumeCompleted, VolumeSnapshot: "pvb-keep-x", StorageClass: "gp2"},
		{Namespace: "shop", PVC: "filtered", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k3", StorageClass: "gp2"},
	}
	for _, restoreVolumes := range []bool{true, false} {
		rec := &recorder{}
		r := &run{d: Deps{Volumes: rec}, cfg: Config{RestoreVolumes: restoreVolumes, StorageClassMapping: map[string]string{"gp2": "gp3"}}, res: &Result{Summary: map[Action]int{}}, vols: map[string]catalog.Volume{}}
		var entries []*entry
		for _, v := range vols {
			r.vols[v.Namespace+"/"+v.PVC] = v
			e := claimEntry("shop", v.PVC, "gp2", true)
			MapNamespace(grPVC, e.obj, map[string]string{"shop": "shop-copy"})
			mapStorageClass(grPVC, e.obj, r.cfg.StorageClassMapping)
			if v.PVC == "filtered" {
				e.skip = "-" // left out by a filter (-l, --include-resources)
			} else {
				r.claims = append(r.claims, e)
			}
			entries = append(entries, e)
		}
		got := planned(t, func(ctx context.Context, p Preflight) error {
			r.d.Preflight = p
			return r.preflight(ctx, entries)
		})
		if err := r.fillClaims(context.Background()); err != nil {
			t.Fatal(err)
		}
		var filled, checked []string
		for _, it := range rec.items {
			filled = append(filled, it.Namespace+"/"+it.PVC)
		}
		for _, v := range got {
			checked = append(checked, v.Namespace+"/"+v.PVC)
			if v.StorageClass != "gp3" || v.BackedUpClass != "gp2" {
				t.Errorf("%s: classes %q (was %q), want gp3 (mapped from gp2)", v.PVC, v.StorageClass, v.BackedUpClass)
			}
		}
		sort.Strings(filled)
		sort.Strings(checked)
		if !reflect.DeepEqual(filled, checked) {
			t.Errorf("--restore-volumes=%v: preflight checked %v, the movers fill %v", restoreVolumes, checked, filled)
		}
		if restoreVolumes && len(filled) != 2 {
			t.Errorf("filled %v, want shop-copy/data and shop-copy/move", filled)
		}
	}
}

// The preflight of --data-only / --in-place is handed the named volumes a mover fills, in the
// namespace of --target-pvc or the mapped one; a kept VolumeSnapshot provisions a new claim
// without a mover, and in place a mover copies it.
func TestDataPreflightPlan(t *testing.T) {
	m := &catalog.Manifest{Volumes: []catalog.Volume{
		{Namespace: "shop", PVC: "db", StorageClass: "fast", KopiaSnapshot: "k1", Status: catalog.VolumeCompleted},
		{Namespace: "shop", PVC: "cache", StorageClass: "slow", KopiaSnapshot: "k2", Status: catalog.VolumeCompleted},
		{Namespace: "blog", PVC: "data", StorageClass: "slow", KopiaSnapshot: "k3", Status: catalog.VolumeCompleted},
		{Namespace: "shop", PVC: "snap", StorageClass: "csi", VolumeSnapshot: "vs1", Status: catalog.VolumeCompleted},
	}}
	for _, tc := range []struct {
		name    string
		cfg     DataConfig
		inPlace bool
		want    []PlannedVolume
	}{
		{"one volume", DataConfig{Volumes: []string{"shop/db"}}, false,
			[]PlannedVolume{{Namespace: "shop", PVC: "db", StorageClass: "fast", BackedUpClass: "fast"}}},
		{"mapped namespace and class", DataConfig{Volumes: []string{"shop/db", "blog/data"}, NamespaceMapping: map[string]string{"shop": "stage"}, StorageClassMapping: map[string]string{"fast": "cheap"}}, false,
			[]PlannedVolume{{Namespace: "stage", PVC: "db", StorageClass: "cheap", BackedUpClass: "fast"}, {Namespace: "blog", PVC: "data", StorageClass: "slow", BackedUpClass: "slow"}}},
		{"target claim", DataConfig{Volumes: []string{"shop/cache"}, Target: "copy/cache2"}, false,
			[]PlannedVolume{{Namespace: "copy", PVC: "cache2", StorageClass: "slow", BackedUpClass: "slow"}}},
		{"kept snapshot: no mover for a new claim", DataConfig{Volumes: []string{"shop/snap"}, Target: "shop/new"}, false, nil},
		{"kept snapshot in place: a mover copies", DataConfig{Volumes: []string{"shop/snap"}}, true,
			[]PlannedVolume{{Namespace: "shop", PVC: "snap", StorageClass: "csi", BackedUpClass: "csi"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			targets, err := dataTargets(m.Volumes, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := planned(t, func(ctx context.Context, p Preflight) error {
				return dataPreflight(ctx, DataDeps{Volumes: &recorder{}, Preflight: p}, targets, tc.cfg, tc.inPlace)
			})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan %+v, want %+v", got, tc.want)
			}
		})
	}
}
