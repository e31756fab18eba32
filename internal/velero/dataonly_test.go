package velero

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// dataOnlyFixture runs a data-only restore of Velero backup name from the fixtures on a fake
// cluster holding objs.
func dataOnlyFixture(t *testing.T, name string, cfg restore.DataConfig, objs ...*corev1.Namespace) (*restore.Result, *fake.Clientset, *fakeVolumes, error) {
	t.Helper()
	d, err := openFixture(t, fixtureDir(t)).Describe(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	kube := fake.NewSimpleClientset()
	for _, ns := range objs {
		if _, err := kube.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kube.ClearActions() // what follows is the restore's
	vols := &fakeVolumes{}
	cfg.Backup = name
	res, err := restore.DataOnly(context.Background(), restore.DataDeps{Kube: kube, Source: NewSource(d, false), Volumes: vols}, cfg)
	return res, kube, vols, err
}

// TestSourceDataOnly: --data-only fills a claim from the Kopia snapshot Velero recorded, read from
// the repository of the namespace it was backed up from; a claim that does not exist is created
// from Velero's copy of it, without Velero's marks; nothing else is created.
func TestSourceDataOnly(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "copy"}}
	d, _ := openFixture(t, fixtureDir(t)).Describe(context.Background(), fixtureMover)
	snapshot := d.Volumes[0].SnapshotID

	res, kube, vols, err := dataOnlyFixture(t, fixtureMover, restore.DataConfig{Volumes: []string{"vl-dm/data-db-0"},
		NamespaceMapping: map[string]string{"vl-dm": "copy"}, DryRun: true}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Volumes) != 1 || res.Volumes[0].Action != restore.WouldRestore ||
		res.Volumes[0].Reason != "from Kopia snapshot "+snapshot+" into a new claim (StorageClass csi-dir)" || len(vols.items) != 0 {
		t.Errorf("dry run: %+v, movers %+v", res.Volumes, vols.items)
	}
	if l, _ := kube.CoreV1().PersistentVolumeClaims("copy").List(context.Background(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Errorf("a dry run created %d claims", len(l.Items))
	}

	res, kube, vols, err = dataOnlyFixture(t, fixtureMover, restore.DataConfig{Volumes: []string{"vl-dm/data-db-0"},
		NamespaceMapping: map[string]string{"vl-dm": "copy"}}, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.items) != 1 || vols.items[0].SourceNamespace != "vl-dm" || vols.items[0].Namespace != "copy" ||
		vols.items[0].KopiaSnapshot != snapshot || vols.items[0].RequireEmpty {
		t.Errorf("movers %+v", vols.items)
	}
	if len(res.Volumes) != 1 || res.Volumes[0].Action != restore.Restored {
		t.Errorf("volumes %+v", res.Volumes)
	}
	c, err := kube.CoreV1().PersistentVolumeClaims("copy").Get(context.Background(), "data-db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range c.Annotations {
		if strings.Contains(k, "velero.io") {
			t.Errorf("the new claim keeps Velero's annotation %s", k)
		}
	}
	for k := range c.Labels {
		if strings.Contains(k, "velero.io") {
			t.Errorf("the new claim keeps Velero's label %s", k)
		}
	}
	if c.Spec.DataSource != nil || c.Spec.VolumeName != "" || c.Spec.StorageClassName == nil || *c.Spec.StorageClassName != "csi-dir" {
		t.Errorf("the new claim's spec: %+v", c.Spec)
	}
	for _, a := range kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource != "persistentvolumeclaims" {
			t.Errorf("a data-only restore created %s", a.GetResource().Resource)
		}
	}
}

// TestSourceDataOnlyRefusals: a volume the backup does not have, or whose data is not in the
// bucket, is refused before anything is created.
func TestSourceDataOnlyRefusals(t *testing.T) {
	_, _, _, err := dataOnlyFixture(t, fixtureFS, restore.DataConfig{Volumes: []string{"vl-fs/nope"}})
	if err == nil || !strings.Contains(err.Error(), `backup "fs-deploy" has no volume vl-fs/nope (it has vl-fs/data)`) {
		t.Errorf("unknown volume: %v", err)
	}
}

// TestSourceClaimClasses: the claims' StorageClasses come with the volumes (the restore preflight
// checks them in the target cluster).
func TestSourceClaimClasses(t *testing.T) {
	for _, name := range []string{fixtureFS, fixtureMover} {
		d, _ := openFixture(t, fixtureDir(t)).Describe(context.Background(), name)
		h, err := NewSource(d, false).Header(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Volumes) != 1 || h.Volumes[0].StorageClass != "csi-dir" {
			t.Errorf("%s: %+v", name, h.Volumes)
		}
	}
}

// TestSourcePreflightPlan: the restore engine hands the preflight the claims of a Velero backup its
// movers fill, with the class Velero's copy of each claim had, as for a backup of ours; and so
// does --data-only. Nothing is created when the preflight says no.
func TestSourcePreflightPlan(t *testing.T) {
	want := []restore.PlannedVolume{{Namespace: "copy", PVC: "data", StorageClass: "csi-dir", BackedUpClass: "csi-dir"}}
	var got []restore.PlannedVolume
	check := func(_ context.Context, p restore.PreflightPlan) error {
		got = p.Volumes
		return errors.New("stop here")
	}
	d, _ := openFixture(t, fixtureDir(t)).Describe(context.Background(), fixtureFS)
	dyn, disc := fakeCluster()
	_, err := restore.Run(context.Background(), restore.Deps{Dynamic: dyn, Discovery: disc, Source: NewSource(d, false), Volumes: &fakeVolumes{}, Preflight: check},
		restore.Config{Backup: fixtureFS, RestoreVolumes: true, NamespaceMapping: mapping.Map{"vl-fs": "copy"}})
	if err == nil || !reflect.DeepEqual(got, want) {
		t.Errorf("restore: %v, plan %+v, want %+v", err, got, want)
	}
	if created := createdObjects(dyn); created != "" {
		t.Errorf("created before the preflight:\n%s", created)
	}
	got = nil
	_, err = restore.DataOnly(context.Background(), restore.DataDeps{Kube: fake.NewSimpleClientset(), Source: NewSource(d, false), Volumes: &fakeVolumes{}, Preflight: check},
		restore.DataConfig{Backup: fixtureFS, Volumes: []string{"vl-fs/data"}, NamespaceMapping: mapping.Map{"vl-fs": "copy"}})
	if err == nil || !reflect.DeepEqual(got, want) {
		t.Errorf("--data-only: %v, plan %+v, want %+v", err, got, want)
	}
}
