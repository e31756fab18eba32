package restore

import (
	"context"
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

type recorder struct {
	items []volumes.RestoreItem
	fail  string
}

func (r *recorder) Restore(_ context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error) {
	r.items = items
	out := make([]volumes.RestoreOutcome, len(items))
	for i, it := range items {
		out[i].RestoreItem = it
		if it.PVC == r.fail {
			out[i].Err = errors.New("mover pod x: ImagePullBackOff")
		} else {
			out[i].Result = &mover.Result{OK: true, Files: 7, Bytes: 70}
		}
	}
	return out, nil
}

func claimEntry(ns, name, class string, created bool) *entry {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"storageClassName": class, "dataSource": map[string]any{"kind": "PersistentVolumeClaim", "name": "origin"}}}}
	return &entry{key: archive.Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, Namespace: ns, Name: name}, gr: grPVC, obj: o, created: created}
}

func TestFillClaims(t *testing.T) {
	rec := &recorder{fail: "broken"}
	r := &run{d: Deps{Volumes: rec}, cfg: Config{RestoreVolumes: true, StorageClassMapping: map[string]string{"gp2": "gp3"}}, res: &Result{Summary: map[Action]int{}}, vols: map[string]catalog.Volume{}}
	for _, v := range []catalog.Volume{
		{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k1"},
		{Namespace: "shop", PVC: "broken", Mode: "snapshot-move", Status: catalog.VolumeCompleted, KopiaSnapshot: "k2"},
		{Namespace: "shop", PVC: "exists", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k3"},
		{Namespace: "shop", PVC: "failed", Mode: "fs", Status: catalog.VolumeFailed, Reason: "--volumes=fs", Error: "OOMKilled"},
		{Namespace: "shop", PVC: "kept", Mode: "snapshot", Status: catalog.VolumeCompleted, VolumeSnapshot: "pvb-keep-x"},
	} {
		r.vols[v.Namespace+"/"+v.PVC] = v
	}
	// Restored into shop-copy: the Kopia data comes from shop's repository.
	var claims []*entry
	for _, n := range []string{"data", "broken", "exists", "failed", "kept", "unknown"} {
		e := claimEntry("shop", n, "gp2", n != "exists")
		MapNamespace(grPVC, e.obj, map[string]string{"shop": "shop-copy"})
		mapStorageClass(grPVC, e.obj, r.cfg.StorageClassMapping)
		r.prepareClaim(e)
		claims = append(claims, e)
	}
	r.claims = claims
	if sc, _, _ := unstructured.NestedString(claims[0].obj.Object, "spec", "storageClassName"); sc != "gp3" {
		t.Errorf("storage class %q, want the mapped gp3", sc)
	}
	if _, found, _ := unstructured.NestedMap(claims[0].obj.Object, "spec", "dataSource"); found {
		t.Error("a claim filled by a mover keeps its old dataSource")
	}
	if ds, _, _ := unstructured.NestedString(claims[4].obj.Object, "spec", "dataSource", "kind"); ds != "PersistentVolumeClaim" {
		t.Errorf("a snapshot-mode claim mapped to another namespace cannot use the VolumeSnapshot; dataSource %q", ds)
	}
	if err := r.fillClaims(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.items) != 2 || rec.items[0] != (volumes.RestoreItem{Namespace: "shop-copy", SourceNamespace: "shop", PVC: "data", KopiaSnapshot: "k1"}) {
		t.Fatalf("restore items %+v", rec.items)
	}
	want := map[string]Action{"data": Restored, "broken": Failed, "exists": Skipped, "failed": Skipped, "kept": Failed}
	if len(r.res.Volumes) != len(want) {
		t.Fatalf("volumes %+v", r.res.Volumes)
	}
	for _, v := range r.res.Volumes {
		if v.Action != want[v.PVC] {
			t.Errorf("%s: %s (%s), want %s", v.PVC, v.Action, v.Reason, want[v.PVC])
		}
	}
	if !r.res.Failed() {
		t.Error("a failed volume must fail the restore")
	}

	// Same namespace: the snapshot-mode claim is provisioned from its VolumeSnapshot.
	e := claimEntry("shop", "kept", "gp2", true)
	r.prepareClaim(e)
	if name, _, _ := unstructured.NestedString(e.obj.Object, "spec", "dataSource", "name"); name != "pvb-keep-x" {
		t.Errorf("dataSource %q", name)
	}
}
