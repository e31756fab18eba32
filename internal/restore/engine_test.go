package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/modifiers"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

const testPassword = "engine test password"

// served is what the fake cluster serves: kind → resource, namespaced.
var served = []struct {
	gv, kind, resource string
	namespaced         bool
}{
	{"v1", "Namespace", "namespaces", false},
	{"v1", "PersistentVolume", "persistentvolumes", false},
	{"storage.k8s.io/v1", "StorageClass", "storageclasses", false},
	{"v1", "ConfigMap", "configmaps", true},
	{"v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
	{"v1", "Pod", "pods", true},
	{"apps/v1", "StatefulSet", "statefulsets", true},
	{"batch/v1", "Job", "jobs", true},
	{"batch/v1", "CronJob", "cronjobs", true},
}

func gvrOf(apiVersion, kind string) (schema.GroupVersionResource, bool) {
	for _, s := range served {
		if s.gv == apiVersion && s.kind == kind {
			gv, _ := schema.ParseGroupVersion(s.gv)
			return gv.WithResource(s.resource), s.namespaced
		}
	}
	return schema.GroupVersionResource{}, false
}

// writeBackup stores testdata/restore/backup.yaml as backup "shop-1" in a file:// location.
func writeBackup(t *testing.T) *catalog.Catalog {
	t.Helper()
	data, err := os.ReadFile(golden.Path("restore/backup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return writeBackupOf(t, data)
}

// writeBackupOf stores the objects of a multi-document YAML as backup "shop-1" of namespace shop.
func writeBackupOf(t *testing.T, data []byte) *catalog.Catalog {
	t.Helper()
	return writeBackupWith(t, data, nil)
}

// writeBackupWith is writeBackupOf with the volumes the backup's manifest records.
func writeBackupWith(t *testing.T, data []byte, vols []catalog.Volume) *catalog.Catalog {
	t.Helper()
	ctx := context.Background()
	loc, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	cat := catalog.New(loc)
	w, err := cat.NewWriter(ctx, "shop-1", catalog.ResourcesFile, "")
	if err != nil {
		t.Fatal(err)
	}
	aw, err := archive.NewWriter(w, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlutil.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var o unstructured.Unstructured
		if err := dec.Decode(&o.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		gvr, _ := gvrOf(o.GetAPIVersion(), o.GetKind())
		b, _ := json.Marshal(o.Object)
		if err := aw.Add(archive.Key{GVR: gvr, Namespace: o.GetNamespace(), Name: o.GetName()}, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "shop-1", Status: catalog.Completed, Namespaces: []string{"shop"}, Volumes: vols}
	if err := cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return cat
}

// fakeCluster serves the resources above and holds the StorageClasses named.
func fakeCluster(classes ...string) (*dynamicfake.FakeDynamicClient, *fakediscovery.FakeDiscovery) {
	listKinds := map[schema.GroupVersionResource]string{}
	byGV := map[string]*metav1.APIResourceList{}
	var lists []*metav1.APIResourceList
	for _, s := range served {
		gv, _ := schema.ParseGroupVersion(s.gv)
		listKinds[gv.WithResource(s.resource)] = s.kind + "List"
		l := byGV[s.gv]
		if l == nil {
			l = &metav1.APIResourceList{GroupVersion: s.gv}
			byGV[s.gv] = l
			lists = append(lists, l)
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: s.resource, Kind: s.kind, Namespaced: s.namespaced, Verbs: metav1.Verbs{"get", "list", "create", "update"}})
	}
	var objs []runtime.Object
	for _, c := range classes {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": map[string]any{"name": c}, "provisioner": "csi.example.com"}})
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	disc := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{Resources: lists}}
	return dyn, disc
}

func loadModifiers(t *testing.T) *modifiers.Modifiers {
	t.Helper()
	data, err := os.ReadFile(golden.Path("restore/modifiers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := modifiers.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// created returns what the restore created, in order, as YAML.
func created(dyn *dynamicfake.FakeDynamicClient) string {
	var b strings.Builder
	for _, a := range dyn.Actions() {
		ca, ok := a.(k8stesting.CreateAction)
		if !ok {
			continue
		}
		y, _ := yaml.Marshal(ca.GetObject().(*unstructured.Unstructured).Object)
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.String()
}

// TestRunGolden restores one backup (finished, failed, running and suspended Jobs and Pods, a
// StatefulSet whose claims name their class by the beta annotation, a resource modifier of each
// kind) under each choice, on a fake cluster, and compares the outcome and every created object
// with testdata/restore/*.golden.
func TestRunGolden(t *testing.T) {
	cat := writeBackup(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"default", Config{}},
		{"mapped", Config{NamespaceMapping: map[string]string{"shop": "shop-copy"}, StorageClassMapping: map[string]string{"standard": "fast-wffc"}}},
		{"include-finished", Config{IncludeFinishedJobs: true, RunningJobs: RunningRestore}},
		{"skip-running", Config{RunningJobs: RunningSkip}},
		{"modifiers", Config{NamespaceMapping: map[string]string{"shop": "shop-copy"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dyn, disc := fakeCluster("standard", "archive", "fast-wffc")
			cfg := tc.cfg
			cfg.Backup, cfg.ArchiveKey = "shop-1", testPassword
			cfg.Parallel = 1 // the golden lists creates in the order they were made
			if tc.name == "modifiers" {
				cfg.Modifiers = loadModifiers(t)
			}
			res, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := json.MarshalIndent(res, "", "  ")
			golden.Assert(t, "restore/"+tc.name+".golden", append(append(out, '\n'), created(dyn)...))
		})
	}
}

// TestRunRefusesBeforeCreating: a storage class mapping that names nothing, or a class that
// will not exist, and a modifier that cannot apply, fail before the first object is created.
func TestRunRefusesBeforeCreating(t *testing.T) {
	cat := writeBackup(t)
	badPatch, err := modifiers.Load([]byte("version: v1\nresourceModifierRules:\n- conditions: {groupResource: persistentvolumeclaims}\n  patches: [{operation: replace, path: /spec/storageClassName, value: x}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"from an unused class", Config{StorageClassMapping: map[string]string{"gp2": "archive"}},
			`--storage-class-mapping gp2:archive: no restored PVC, PV or StatefulSet uses StorageClass "gp2" (they use: archive, standard); nothing was restored`},
		{"to a missing class", Config{StorageClassMapping: map[string]string{"standard": "fast"}},
			`--storage-class-mapping standard:fast: StorageClass "fast" does not exist in this cluster and the backup does not bring it (this cluster has: archive, fast-wffc, standard); nothing was restored`},
		{"used only by a claim left out", Config{StorageClassMapping: map[string]string{"archive": "fast-wffc"}, LabelSelector: "app=db", Resources: selection.ResourceFilter{Include: []string{"persistentvolumeclaims"}}},
			`--storage-class-mapping archive:fast-wffc: no restored PVC, PV or StatefulSet uses StorageClass "archive" (they use: standard)`},
		{"a patch that cannot apply", Config{Modifiers: badPatch},
			"--resource-modifiers: 1 of the objects to restore cannot be modified, nothing was restored: persistentvolumeclaims shop/data-db-0: resourceModifierRules[0]: JSON patch: replace operation does not apply: doc is missing key: /spec/storageClassName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dyn, disc := fakeCluster("standard", "archive", "fast-wffc")
			cfg := tc.cfg
			cfg.Backup, cfg.ArchiveKey = "shop-1", testPassword
			_, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant %q", err, tc.want)
			}
			for _, a := range dyn.Actions() {
				if a.GetVerb() == "create" {
					t.Fatalf("created %s before failing", a.GetResource())
				}
			}
		})
	}
}

func TestParseRunningJobs(t *testing.T) {
	for _, s := range []string{"suspend", "restore", "skip"} {
		if p, err := ParseRunningJobs(s); err != nil || string(p) != s {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseRunningJobs("rerun"); err == nil || err.Error() != fmt.Sprintf("--running-jobs=%q: use suspend, restore or skip", "rerun") {
		t.Errorf("rerun: %v", err)
	}
}
