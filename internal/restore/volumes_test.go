package restore

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

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

// placementBackup: a Pod pinned to node-c (zone-b) mounts a claim of a class whose volumes
// exist in zone-a only; another, pinned to node-a, mounts a claim of the default class.
const placementBackup = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db, namespace: shop}
spec: {storageClassName: zonal-a, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: web, namespace: shop}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop}
spec: {nodeSelector: {kubernetes.io/hostname: node-c}, containers: [{name: db, image: busybox}], volumes: [{name: d, persistentVolumeClaim: {claimName: db}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec: {nodeSelector: {kubernetes.io/hostname: node-a}, containers: [{name: web, image: busybox}], volumes: [{name: d, persistentVolumeClaim: {claimName: web}}]}
`

// checkingRecorder fills claims as recorder does, and checks their placement with the real
// volumes.CheckPlacement against a typed fake cluster.
type checkingRecorder struct {
	recorder
	kube *fake.Clientset
}

func (c *checkingRecorder) CheckPlacement(ctx context.Context, claims []volumes.PlannedClaim) ([]error, error) {
	return volumes.CheckPlacement(ctx, volumes.Deps{Kube: c.kube}, claims)
}

// A claim whose workload no schedulable node can run with the claim's volume topology is refused
// before it is created — its PVC and its volume fail naming both — and its data is not filled;
// the other claim is created and filled.
func TestRestoreRefusesUnplaceableClaimBeforeCreating(t *testing.T) {
	ctx := context.Background()
	cat := writeBackupWith(t, []byte(placementBackup), []catalog.Volume{
		{Namespace: "shop", PVC: "db", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k-db"},
		{Namespace: "shop", PVC: "web", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k-web"},
	})
	node := func(name, zone string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name, corev1.LabelTopologyZone: zone}},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
	}
	zonal := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "zonal-a"}, Provisioner: "zonal.csi",
		AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: corev1.LabelTopologyZone, Values: []string{"zone-a"}}}}}}
	rec := &checkingRecorder{kube: fake.NewSimpleClientset(node("node-a", "zone-a"), node("node-c", "zone-b"), zonal)}
	dyn, disc := fakeCluster("zonal-a")
	res, err := Run(ctx, Deps{Dynamic: dyn, Discovery: disc, Catalog: cat, Volumes: rec}, Config{Backup: "shop-1", ArchiveKey: testPassword, RestoreVolumes: true})
	if err != nil {
		t.Fatal(err)
	}
	const want = "no schedulable node satisfies both Pod shop/db (nodes with kubernetes.io/hostname In node-c) and PVC shop/db (StorageClass zonal-a: nodes with topology.kubernetes.io/zone In zone-a)"
	for _, a := range dyn.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok && ca.GetResource().Resource == "persistentvolumeclaims" && ca.GetObject().(*unstructured.Unstructured).GetName() == "db" {
			t.Error("PVC shop/db was created, and no node can use it for Pod shop/db")
		}
	}
	pvcs := map[string]Item{}
	for _, it := range res.Items {
		if it.Resource == "persistentvolumeclaims" {
			pvcs[it.Name] = it
		}
	}
	if it := pvcs["db"]; it.Action != Failed || !strings.Contains(it.Reason, want) {
		t.Errorf("PVC db: %s (%s), want failed saying %q", it.Action, it.Reason, want)
	}
	if it := pvcs["web"]; it.Action != Created {
		t.Errorf("PVC web: %s (%s), want created", it.Action, it.Reason)
	}
	vols := map[string]VolumeItem{}
	for _, v := range res.Volumes {
		vols[v.PVC] = v
	}
	if v := vols["db"]; v.Action != Failed || !strings.Contains(v.Reason, want) {
		t.Errorf("volume db: %s (%s), want failed saying %q", v.Action, v.Reason, want)
	}
	if v := vols["web"]; v.Action != Restored {
		t.Errorf("volume web: %s (%s), want restored", v.Action, v.Reason)
	}
	if len(rec.items) != 1 || rec.items[0].PVC != "web" {
		t.Errorf("filled %+v, want web alone", rec.items)
	}
	if !res.Failed() {
		t.Error("a refused claim must fail the restore")
	}
}
