package removal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

const testPassword = "removal-test"

// location is a file:// location with backup "good": one volume, shop/data, a real Kopia snapshot.
type location struct {
	t    *testing.T
	url  string
	dir  string
	cat  *catalog.Catalog
	good *catalog.Manifest
}

func newLocation(t *testing.T) *location {
	t.Helper()
	dir := t.TempDir()
	l := &location{t: t, url: "file://" + dir, dir: dir}
	loc, err := store.Open(context.Background(), l.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	l.cat = catalog.New(loc)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("the good data"), 0o644); err != nil {
		t.Fatal(err)
	}
	l.good = l.backup("good", "shop", "data", src)
	return l
}

func (l *location) settings(ns string) mover.Settings {
	return mover.Settings{Location: l.url, Namespace: ns, Password: testPassword, CacheDir: l.t.TempDir()}
}

// backup uploads src as volume ns/pvc of backup name and writes its manifest.
func (l *location) backup(name, ns, pvc, src string) *catalog.Manifest {
	l.t.Helper()
	res, err := mover.RunBackup(context.Background(), l.settings(ns), mover.BackupConfig{Source: src, PVC: pvc, Backup: name}, func(mover.Event) {})
	if err != nil {
		l.t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: name, Status: catalog.Completed, StartTime: time.Now().UTC(),
		Volumes: []catalog.Volume{{Namespace: ns, PVC: pvc, Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID}}}
	l.plant(name, m)
	return m
}

// plant writes backups/<dir>/backup.json as a bucket writer can: any content, in any directory.
func (l *location) plant(dir string, m *catalog.Manifest) {
	l.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		l.t.Fatal(err)
	}
	p := filepath.Join(l.dir, "backups", dir, catalog.ManifestFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		l.t.Fatal(err)
	}
}

func (l *location) deps() Deps {
	return Deps{Catalog: l.cat, Repos: &repo.Service{Location: l.url, Key: repo.OneKey(testPassword)}}
}

// snapshotExists reports whether Kopia snapshot id is still in ns's repository.
func (l *location) snapshotExists(ns, id string) bool {
	l.t.Helper()
	ctx := context.Background()
	r, closeFn, err := l.settings(ns).Repos().Open(ctx, ns)
	if err != nil {
		l.t.Fatal(err)
	}
	defer closeFn()
	_, err = snapshot.LoadSnapshot(ctx, r, manifest.ID(id))
	if errors.Is(err, snapshot.ErrSnapshotNotFound) {
		return false
	}
	if err != nil {
		l.t.Fatal(err)
	}
	return true
}

// A backup directory copied under another name, its "name" edited to pass delete's copy check:
// deleting it must not delete the original's Kopia snapshot.
func TestRemoveRefusesAnotherBackupsSnapshots(t *testing.T) {
	l := newLocation(t)
	ctx := context.Background()
	copied := *l.good
	copied.Name = "copy"
	l.plant("copy", &copied)
	id := l.good.Volumes[0].KopiaSnapshot

	res, err := Remove(ctx, l.deps(), "copy", &copied, true)
	if !errors.Is(err, ErrForeignSnapshot) || !strings.Contains(err.Error(), `belongs to backup "good", volume shop/data`) || !strings.Contains(err.Error(), id) {
		t.Fatalf("remove the copy: %v; want a refusal naming snapshot %s of backup good", err, id)
	}
	if !l.snapshotExists("shop", id) {
		t.Fatal("removing the copy deleted the original's snapshot")
	}
	if ok, _ := l.cat.Exists(ctx, "copy"); !ok || res.Files != 0 {
		t.Error("a refused removal deleted the copy's files")
	}
	// Not strict (delete --force): the copy's files go, the snapshot stays, and it is said.
	res, err = Remove(ctx, l.deps(), "copy", &copied, false)
	if err != nil || res.Files != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "was kept") {
		t.Fatalf("remove the copy, not strict: %+v, %v", res, err)
	}
	if !l.snapshotExists("shop", id) {
		t.Fatal("removing the copy (not strict) deleted the original's snapshot")
	}
	// Another volume's snapshot of the same backup name in another namespace, or another claim:
	// the tags name namespace and claim too.
	other := *l.good
	other.Volumes = []catalog.Volume{{Namespace: "shop", PVC: "logs", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: id}}
	if _, err := Remove(ctx, l.deps(), "good", &other, true); !errors.Is(err, ErrForeignSnapshot) || !strings.Contains(err.Error(), "lists it for volume shop/logs") {
		t.Fatalf("remove with the snapshot under another claim: %v", err)
	}
	// The backup itself is removed, snapshot and all.
	res, err = Remove(ctx, l.deps(), "good", l.good, true)
	if err != nil || res.KopiaSnapshots["shop"] != 1 {
		t.Fatalf("remove good: %+v, %v", res, err)
	}
	if l.snapshotExists("shop", id) {
		t.Error("good's own snapshot was not deleted")
	}
}
