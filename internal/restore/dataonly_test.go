package restore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	"gocloud.dev/blob/memblob"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// fillRecorder is the volume engine: it records the fills and fails those named.
type fillRecorder struct {
	items []volumes.RestoreItem
	fail  map[string]bool
}

func (f *fillRecorder) Restore(_ context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error) {
	f.items = append(f.items, items...)
	var out []volumes.RestoreOutcome
	for _, it := range items {
		o := volumes.RestoreOutcome{RestoreItem: it, Result: &mover.Result{Files: 3, Bytes: 30}}
		if f.fail[it.PVC] {
			o.Result, o.Err = nil, errors.New("mover failed")
		}
		out = append(out, o)
	}
	return out, nil
}

const dataPW = "data-only-pw"

func dataCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	ctx := context.Background()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	w, err := cat.NewWriter(ctx, "b1", catalog.ResourcesFile, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	aw, err := archive.NewWriter(w, dataPW)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"data", "logs", "kept"} {
		pvc := corev1.PersistentVolumeClaim{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: "u-1", ResourceVersion: "9",
				Annotations: map[string]string{"pv.kubernetes.io/bind-completed": "yes", "team": "a"}},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr("gp2"), VolumeName: "pv-" + name, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				DataSource: &corev1.TypedLocalObjectReference{Kind: "VolumeSnapshot", Name: "old"}}}
		b, _ := json.Marshal(pvc)
		if err := aw.Add(archive.Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, Namespace: "shop", Name: name}, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed, Namespaces: []string{"shop"}, Volumes: []catalog.Volume{
		{Namespace: "shop", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k-data"},
		{Namespace: "shop", PVC: "logs", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k-logs"},
		{Namespace: "shop", PVC: "kept", Mode: "snapshot", Status: catalog.VolumeCompleted, VolumeSnapshot: "vs1"},
	}}
	if err := cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return cat
}

func ptr(s string) *string { return &s }

func ns(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func TestDataOnly(t *testing.T) {
	ctx := context.Background()
	cat := dataCatalog(t)
	existing := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "logs", Namespace: "shop"}}
	t.Run("new claim, mapped, and an existing one that must be empty", func(t *testing.T) {
		kube := fake.NewSimpleClientset(ns("shop"), ns("copy"), existing.DeepCopy(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "untouched", Namespace: "shop"}})
		rec := &fillRecorder{}
		res, err := DataOnly(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, Target: "copy/data2",
			StorageClassMapping: map[string]string{"gp2": "gp3"}, IncludePath: "/sub", ArchiveKey: dataPW})
		if err != nil {
			t.Fatal(err)
		}
		c, err := kube.CoreV1().PersistentVolumeClaims("copy").Get(ctx, "data2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if *c.Spec.StorageClassName != "gp3" || c.Spec.VolumeName != "" || c.Spec.DataSource != nil || c.Annotations["pv.kubernetes.io/bind-completed"] != "" || c.Annotations["team"] != "a" || c.UID != "" {
			t.Errorf("new claim %+v", c)
		}
		if len(rec.items) != 1 || rec.items[0] != (volumes.RestoreItem{Namespace: "copy", SourceNamespace: "shop", PVC: "data2", KopiaSnapshot: "k-data", SubPath: "/sub"}) {
			t.Errorf("fills %+v", rec.items)
		}
		if res.Volumes[0].Action != Restored || res.Summary[Created] != 1 {
			t.Errorf("result %+v", res)
		}
		res, err = DataOnly(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/logs"}, ArchiveKey: dataPW})
		if err != nil || len(rec.items) != 2 || !rec.items[1].RequireEmpty || rec.items[1].PVC != "logs" || len(res.Items) != 0 {
			t.Errorf("existing claim: %v, fills %+v, items %+v", err, rec.items, res.Items)
		}
		acts := kube.Actions()
		for _, a := range acts {
			if a.GetVerb() != "get" && a.GetVerb() != "create" {
				t.Errorf("a data-only restore did %s %s", a.GetVerb(), a.GetResource().Resource)
			}
			if a.GetVerb() == "create" && a.GetResource().Resource != "persistentvolumeclaims" {
				t.Errorf("created a %s", a.GetResource().Resource)
			}
		}
	})
	t.Run("a new claim whose fill fails is deleted again", func(t *testing.T) {
		kube := fake.NewSimpleClientset(ns("shop"))
		rec := &fillRecorder{fail: map[string]bool{"data": true}}
		res, err := DataOnly(ctx, DataDeps{Kube: kube, Catalog: cat, Volumes: rec}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, ArchiveKey: dataPW})
		if err != nil || res.Volumes[0].Action != Failed || !res.Failed() {
			t.Fatalf("%v %+v", err, res)
		}
		if _, err := kube.CoreV1().PersistentVolumeClaims("shop").Get(ctx, "data", metav1.GetOptions{}); err == nil {
			t.Error("the unfilled claim was left")
		}
	})
	t.Run("dry run changes nothing", func(t *testing.T) {
		kube := fake.NewSimpleClientset(ns("shop"))
		res, err := DataOnly(ctx, DataDeps{Kube: kube, Catalog: cat}, DataConfig{Backup: "b1", Volumes: []string{"shop/data"}, ArchiveKey: dataPW, DryRun: true})
		if err != nil || res.Volumes[0].Action != WouldRestore || res.Summary[WouldCreate] != 1 {
			t.Fatalf("%v %+v", err, res)
		}
		for _, a := range kube.Actions() {
			if a.GetVerb() != "get" {
				t.Errorf("dry run did %s", a.GetVerb())
			}
		}
	})
	t.Run("kept VolumeSnapshot", testKeptSnapshot)
	for _, tc := range []struct {
		name string
		cfg  DataConfig
		kube *fake.Clientset
		want string
	}{
		{"unknown volume", DataConfig{Volumes: []string{"shop/nope"}}, fake.NewSimpleClientset(), "has no volume shop/nope"},
		{"target with two volumes", DataConfig{Volumes: []string{"shop/data", "shop/logs"}, Target: "a/b"}, fake.NewSimpleClientset(), "takes one volume"},
		{"missing namespace", DataConfig{Volumes: []string{"shop/data"}, NamespaceMapping: map[string]string{"shop": "gone"}}, fake.NewSimpleClientset(), "namespace gone does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Backup, tc.cfg.ArchiveKey = "b1", dataPW
			res, err := DataOnly(ctx, DataDeps{Kube: tc.kube, Catalog: cat, Volumes: &fillRecorder{}}, tc.cfg)
			msg := ""
			if err != nil {
				msg = err.Error()
			} else if len(res.Volumes) > 0 {
				msg = res.Volumes[0].Reason
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("got %q, want %q", msg, tc.want)
			}
		})
	}
}

// A snapshot-mode volume provisions a new claim of its namespace from the kept VolumeSnapshot,
// with no mover; what a snapshot cannot do is refused before anything is created.
func testKeptSnapshot(t *testing.T) {
	ctx := context.Background()
	cat := dataCatalog(t)
	ready := func(name string, ok bool) *snapv1.VolumeSnapshot {
		return &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Status: &snapv1.VolumeSnapshotStatus{ReadyToUse: &ok}}
	}
	kube := fake.NewSimpleClientset(ns("shop"), ns("copy"))
	rec := &fillRecorder{}
	deps := DataDeps{Kube: kube, Snap: snapfake.NewSimpleClientset(ready("vs1", true)), Catalog: cat, Volumes: rec}
	res, err := DataOnly(ctx, deps, DataConfig{Backup: "b1", Volumes: []string{"shop/kept"}, Target: "shop/kept-copy", ArchiveKey: dataPW})
	if err != nil || res.Volumes[0].Action != FromSnapshot || len(rec.items) != 0 || res.Summary[Created] != 1 {
		t.Fatalf("%v %+v, fills %+v", err, res, rec.items)
	}
	c, err := kube.CoreV1().PersistentVolumeClaims("shop").Get(ctx, "kept-copy", metav1.GetOptions{})
	if err != nil || c.Spec.DataSource == nil || c.Spec.DataSource.Name != "vs1" || c.Spec.DataSource.Kind != "VolumeSnapshot" || *c.Spec.DataSourceRef.APIGroup != "snapshot.storage.k8s.io" || c.Spec.VolumeName != "" {
		t.Fatalf("claim from the snapshot: %v %+v", err, c)
	}
	for _, tc := range []struct {
		name string
		snap *snapv1.VolumeSnapshot
		cfg  DataConfig
		want string
	}{
		{"exists", ready("vs1", true), DataConfig{Target: "shop/kept-copy"}, "can only provision a new claim, and PVC shop/kept-copy exists"},
		{"other namespace", ready("vs1", true), DataConfig{Target: "copy/kept"}, "a claim in namespace copy cannot use"},
		{"path", ready("vs1", true), DataConfig{Target: "shop/x", IncludePath: "/a"}, "--include-path needs"},
		{"gone", ready("other", true), DataConfig{Target: "shop/x"}, "no longer exists"},
		{"not ready", ready("vs1", false), DataConfig{Target: "shop/x"}, "not ready to use"},
	} {
		tc.cfg.Backup, tc.cfg.ArchiveKey, tc.cfg.Volumes = "b1", dataPW, []string{"shop/kept"}
		deps.Snap = snapfake.NewSimpleClientset(tc.snap)
		res, err := DataOnly(ctx, deps, tc.cfg)
		if err != nil || res.Volumes[0].Action != Failed || !strings.Contains(res.Volumes[0].Reason, tc.want) {
			t.Errorf("%s: %v %+v, want %q", tc.name, err, res.Volumes, tc.want)
		}
	}
	if _, err := kube.CoreV1().PersistentVolumeClaims("shop").Get(ctx, "x", metav1.GetOptions{}); err == nil {
		t.Error("a refused restore created a claim")
	}
	// In place, a mover syncs the claim from a temporary claim made from the snapshot (the
	// whole volume or --include-path), once the snapshot is checked.
	deps.Snap = snapfake.NewSimpleClientset(ready("vs1", false))
	res, err = InPlace(ctx, deps, DataConfig{Backup: "b1", Volumes: []string{"shop/kept"}, ArchiveKey: dataPW})
	if err != nil || res.Volumes[0].Action != Failed || !strings.Contains(res.Volumes[0].Reason, "not ready to use") || len(rec.items) != 0 {
		t.Errorf("in place from a snapshot not ready: %v %+v, fills %+v", err, res.Volumes, rec.items)
	}
	deps.Snap = snapfake.NewSimpleClientset(ready("vs1", true))
	res, err = InPlace(ctx, deps, DataConfig{Backup: "b1", Volumes: []string{"shop/kept"}, ArchiveKey: dataPW, NamespaceMapping: map[string]string{"shop": "copy"}})
	if err != nil || res.Volumes[0].Action != Failed || !strings.Contains(res.Volumes[0].Reason, "a claim in namespace copy cannot be filled from") || len(rec.items) != 0 {
		t.Errorf("in place from a kept snapshot into another namespace: %v %+v, fills %+v", err, res.Volumes, rec.items)
	}
	if _, err := kube.CoreV1().PersistentVolumeClaims("shop").Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "kept", Namespace: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = InPlace(ctx, deps, DataConfig{Backup: "b1", Volumes: []string{"shop/kept"}, ArchiveKey: dataPW, IncludePath: "/a"})
	if err != nil || res.Volumes[0].Action != Synced || len(rec.items) != 1 {
		t.Fatalf("in place from a kept snapshot: %v %+v, fills %+v", err, res.Volumes, rec.items)
	}
	if it := rec.items[0]; it.FromSnapshot != "vs1" || it.KopiaSnapshot != "" || !it.Sync || it.SubPath != "/a" || it.Namespace != "shop" || it.PVC != "kept" {
		t.Errorf("fill %+v, want a sync of shop/kept from VolumeSnapshot vs1, /a only", it)
	}
}
