package velero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// servedKinds is what the fake cluster serves: every kind in the fixtures' tarballs but Velero's.
var servedKinds = []struct {
	gv, kind, resource string
	namespaced         bool
}{
	{"v1", "Namespace", "namespaces", false},
	{"v1", "PersistentVolume", "persistentvolumes", false},
	{"v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
	{"v1", "Pod", "pods", true},
	{"v1", "Event", "events", true},
	{"v1", "ServiceAccount", "serviceaccounts", true},
	{"v1", "ConfigMap", "configmaps", true},
	{"v1", "Secret", "secrets", true},
	{"v1", "Endpoints", "endpoints", true},
	{"v1", "Service", "services", true},
	{"apps/v1", "ControllerRevision", "controllerrevisions", true},
	{"apps/v1", "StatefulSet", "statefulsets", true},
	{"apps/v1", "ReplicaSet", "replicasets", true},
	{"apps/v1", "Deployment", "deployments", true},
	{"discovery.k8s.io/v1", "EndpointSlice", "endpointslices", true},
	{"snapshot.storage.k8s.io/v1", "VolumeSnapshot", "volumesnapshots", true},
	{"storage.k8s.io/v1", "StorageClass", "storageclasses", false}, // --storage-class-mapping looks them up
}

func fakeCluster() (*dynamicfake.FakeDynamicClient, *fakediscovery.FakeDiscovery) {
	listKinds := map[schema.GroupVersionResource]string{}
	byGV := map[string]*metav1.APIResourceList{}
	var lists []*metav1.APIResourceList
	for _, s := range servedKinds {
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
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	return dyn, &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{Resources: lists}}
}

// fakeVolumes records what the engine asks the movers to restore.
type fakeVolumes struct{ items []volumes.RestoreItem }

func (f *fakeVolumes) Restore(_ context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error) {
	f.items = append(f.items, items...)
	out := make([]volumes.RestoreOutcome, len(items))
	for i, it := range items {
		out[i] = volumes.RestoreOutcome{RestoreItem: it, Result: &mover.Result{OK: true, Files: 3, Bytes: 4096 + 14 + 692}}
	}
	return out, nil
}

// restoreFixture restores Velero backup name from the fixtures into a fake cluster.
func restoreFixture(t *testing.T, name string, allowPartial bool, cfg restore.Config) (*restore.Result, *dynamicfake.FakeDynamicClient, *fakeVolumes, error) {
	t.Helper()
	loc := openFixture(t, fixtureDir(t))
	d, err := loc.Describe(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	dyn, disc := fakeCluster()
	vols := &fakeVolumes{}
	cfg.Backup, cfg.RestoreVolumes = name, true
	res, err := restore.Run(context.Background(), restore.Deps{Dynamic: dyn, Discovery: disc, Source: NewSource(d, allowPartial), Volumes: vols}, cfg)
	return res, dyn, vols, err
}

// createdObjects lists what the restore created, in order, as YAML.
func createdObjects(dyn *dynamicfake.FakeDynamicClient) string {
	var b strings.Builder
	for _, a := range dyn.Actions() {
		if ca, ok := a.(k8stesting.CreateAction); ok {
			y, _ := yaml.Marshal(ca.GetObject().(*unstructured.Unstructured).Object)
			b.WriteString("---\n")
			b.Write(y)
		}
	}
	return b.String()
}

// TestSourceRestoreGolden restores each fixture backup through our engine on a fake cluster: what
// is created, in which order, sanitised how, which claims are filled from which Kopia snapshot.
func TestSourceRestoreGolden(t *testing.T) {
	for _, tc := range []struct {
		golden, backup string
		cfg            restore.Config
	}{
		{"resources-only", fixtureResources, restore.Config{}},
		{"fs-deploy", fixtureFS, restore.Config{}},
		{"datamover-sts", fixtureMover, restore.Config{}},
		{"fs-deploy-mapped", fixtureFS, restore.Config{NamespaceMapping: map[string]string{"vl-fs": "vl-fs-copy"}}},
		{"datamover-sts-dry-run", fixtureMover, restore.Config{DryRun: true}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			res, dyn, _, err := restoreFixture(t, tc.backup, false, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			out, _ := json.MarshalIndent(res, "", "  ")
			golden.Assert(t, "velero/restore/"+tc.golden+".golden", append(append(out, '\n'), createdObjects(dyn)...))
		})
	}
}

// TestSourceVolumes: each claim is filled from the snapshot Velero recorded, read from the
// repository of the namespace it was backed up from, also under --namespace-mapping.
func TestSourceVolumes(t *testing.T) {
	for _, tc := range []struct {
		backup  string
		mapping map[string]string
		want    string
	}{
		{fixtureFS, nil, "vl-fs/data from kopia/vl-fs/"},
		{fixtureFS, map[string]string{"vl-fs": "other"}, "other/data from kopia/vl-fs/"},
		{fixtureMover, nil, "vl-dm/data-db-0 from kopia/vl-dm/"},
	} {
		res, _, vols, err := restoreFixture(t, tc.backup, false, restore.Config{NamespaceMapping: tc.mapping})
		if err != nil {
			t.Fatal(err)
		}
		if len(vols.items) != 1 || len(res.Volumes) != 1 {
			t.Fatalf("%s: movers %+v, volumes %+v", tc.backup, vols.items, res.Volumes)
		}
		it := vols.items[0]
		if got := fmt.Sprintf("%s/%s from %s", it.Namespace, it.PVC, RepositoryPrefix(it.SourceNamespace)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.backup, got, tc.want)
		}
		d, _ := openFixture(t, fixtureDir(t)).Describe(context.Background(), tc.backup)
		if it.KopiaSnapshot == "" || it.KopiaSnapshot != d.Volumes[0].SnapshotID {
			t.Errorf("%s: snapshot %q, Velero recorded %q", tc.backup, it.KopiaSnapshot, d.Volumes[0].SnapshotID)
		}
		if v := res.Volumes[0]; v.Action != restore.Restored || v.Files != 3 {
			t.Errorf("%s: %+v", tc.backup, v)
		}
	}
}

// TestSourcePartiallyFailed: refused, nothing created, unless allowed; then restored with a warning.
func TestSourcePartiallyFailed(t *testing.T) {
	_, dyn, _, err := restoreFixture(t, fixturePartial, false, restore.Config{})
	if !errors.Is(err, ErrPartiallyFailed) || !strings.Contains(err.Error(), "--allow-partially-failed") {
		t.Fatalf("error %v, want a refusal naming --allow-partially-failed", err)
	}
	if n := len(dyn.Actions()); n != 0 {
		t.Fatalf("%d calls to the cluster before the refusal", n)
	}
	res, _, vols, err := restoreFixture(t, fixturePartial, true, restore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0], `Velero backup "partial" is PartiallyFailed (1 error`) {
		t.Errorf("warnings %q", res.Warnings)
	}
	if len(vols.items) != 1 {
		t.Errorf("movers %+v", vols.items)
	}
}

// TestSourceMappingUnknownNamespace: a mapping of a namespace the backup does not hold is refused.
func TestSourceMappingUnknownNamespace(t *testing.T) {
	_, dyn, _, err := restoreFixture(t, fixtureFS, false, restore.Config{NamespaceMapping: map[string]string{"velero": "x"}})
	if err == nil || !strings.Contains(err.Error(), `has no namespace "velero" (it has vl-fs)`) {
		t.Fatalf("error %v", err)
	}
	if n := len(dyn.Actions()); n != 0 {
		t.Fatalf("%d calls to the cluster before the refusal", n)
	}
}

func parse(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	var o unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(s), &o.Object); err != nil {
		t.Fatal(err)
	}
	return &o
}

// TestSourcePrepare: Velero's leftovers are removed, Velero's own objects left out.
func TestSourcePrepare(t *testing.T) {
	s := &Source{}
	pod := parse(t, `
metadata: {name: p, namespace: a, labels: {app: x, velero.io/backup-name: b1, velero.io/restore-name: r1}}
spec:
  initContainers:
  - {name: restore-wait, image: velero/velero-restore-helper}
  - {name: setup, image: busybox}
  containers: [{name: main, image: busybox}]`)
	if skip := s.Prepare(schema.GroupResource{Resource: "pods"}, pod); skip != "" {
		t.Fatal(skip)
	}
	y, _ := yaml.Marshal(pod.Object)
	want := `metadata:
  labels:
    app: x
  name: p
  namespace: a
spec:
  containers:
  - image: busybox
    name: main
  initContainers:
  - image: busybox
    name: setup
`
	if string(y) != want {
		t.Errorf("pod:\n%s\nwant:\n%s", y, want)
	}
	only := parse(t, `{metadata: {name: p, namespace: a}, spec: {initContainers: [{name: restore-wait}], containers: [{name: c}]}}`)
	s.Prepare(schema.GroupResource{Resource: "pods"}, only)
	if _, ok := only.Object["spec"].(map[string]any)["initContainers"]; ok {
		t.Errorf("an empty initContainers was left: %v", only.Object)
	}
	claim := parse(t, `
metadata:
  name: c
  namespace: a
  annotations: {velero.io/data-upload-name: velero/du-1, backup.velero.io/must-include-additional-items: "true", keep: "1"}
  labels: {velero.io/volume-snapshot-name: velero-c-abcde, app: db}
spec:
  dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: velero-c-abcde}
  dataSourceRef: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: velero-c-abcde}
  resources: {requests: {storage: 1Gi}}`)
	s.Prepare(schema.GroupResource{Resource: "persistentvolumeclaims"}, claim)
	y, _ = yaml.Marshal(claim.Object)
	want = `metadata:
  annotations:
    keep: "1"
  labels:
    app: db
  name: c
  namespace: a
spec:
  resources:
    requests:
      storage: 1Gi
`
	if string(y) != want {
		t.Errorf("claim:\n%s\nwant:\n%s", y, want)
	}
	mine := parse(t, `{metadata: {name: mine, namespace: a}, spec: {dataSource: {kind: VolumeSnapshot, name: mine-1}}}`)
	s.Prepare(schema.GroupResource{Resource: "persistentvolumeclaims"}, mine)
	if _, ok, _ := unstructured.NestedMap(mine.Object, "spec", "dataSource"); !ok {
		t.Error("a claim's own VolumeSnapshot source was removed")
	}
	for _, tc := range []struct {
		gr   schema.GroupResource
		obj  string
		skip bool
	}{
		{schema.GroupResource{Group: "velero.io", Resource: "datauploads"}, `{metadata: {name: d, namespace: velero}}`, true},
		{schema.GroupResource{Resource: "events"}, `{metadata: {name: e, namespace: a}}`, true},
		{grVolumeSnapshot, `{metadata: {name: velero-c-x, namespace: a, labels: {velero.io/backup-name: b1}}}`, true},
		{grVolumeSnapshot, `{metadata: {name: mine, namespace: a}}`, false},
		{schema.GroupResource{Resource: "configmaps"}, `{metadata: {name: c, namespace: a}}`, false},
	} {
		if got := s.Prepare(tc.gr, parse(t, tc.obj)) != ""; got != tc.skip {
			t.Errorf("%s %s: skipped %v, want %v", tc.gr, tc.obj, got, tc.skip)
		}
	}
}

// TestClaimVolumes: a volume that cannot be restored is recorded skipped with Velero's verdict;
// a pod volume that is no claim's is a warning.
func TestClaimVolumes(t *testing.T) {
	in := []Volume{
		{Namespace: "a", PVC: "ok", Method: MethodFSBackup, Uploader: "kopia", SnapshotID: "k1"},
		{Namespace: "a", PVC: "csi", Method: MethodCSISnapshot, SnapshotHandle: "h", Driver: "d"},
		{Namespace: "a", PVC: "empty", Method: MethodFSBackup, Uploader: "kopia", Empty: true},
		{Namespace: "a", Pod: "p", PodVolume: "cache", Method: MethodFSBackup, Uploader: "kopia", SnapshotID: "k2"},
	}
	for i := range in {
		in[i].judge()
	}
	got, warns := ClaimVolumes(in)
	var lines []string
	for _, v := range got {
		lines = append(lines, fmt.Sprintf("%s/%s %s %s %q", v.Namespace, v.PVC, v.Status, v.KopiaSnapshot, v.Reason))
	}
	want := []string{
		`a/ok Completed k1 ""`,
		`a/csi Skipped  "a CSI snapshot (handle \"h\", driver \"d\"): its data stays in the storage system, not in the bucket"`,
		`a/empty Completed  "Velero found the volume empty: restored as an empty volume"`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "a/p:cache") {
		t.Errorf("warnings %q", warns)
	}
}

// TestSourceNoTarball: a backup without its resources tarball is refused before anything.
func TestSourceNoTarball(t *testing.T) {
	dir := fixtureDir(t)
	if err := os.Remove(filepath.Join(dir, "backups", fixtureFS, fixtureFS+".tar.gz")); err != nil {
		t.Fatal(err)
	}
	d, err := openFixture(t, dir).Describe(context.Background(), fixtureFS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSource(d, false).Header(context.Background()); !errors.Is(err, ErrNoTarball) {
		t.Fatalf("error %v, want ErrNoTarball", err)
	}
}
