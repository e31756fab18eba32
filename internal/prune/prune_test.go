package prune

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/removal"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/verify"
)

const testPassword = "pw-prune"

// world is a location with backups of one volume (namespace team-a, PVC data) taken by the mover
// in process, as `create` records them.
type world struct {
	t     *testing.T
	url   string
	src   string
	files []string
	size  int
	rng   *rand.Rand
	loc   *store.Location
	cat   *catalog.Catalog
}

func newWorld(t *testing.T, url string, files, size int) *world {
	t.Helper()
	loc, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	w := &world{t: t, url: url, src: t.TempDir(), size: size, rng: rand.New(rand.NewPCG(7, 8)), loc: loc, cat: catalog.New(loc)}
	for i := range files {
		w.files = append(w.files, filepath.Join(w.src, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%05d.bin", i)))
		w.write(w.files[i])
	}
	return w
}

func (w *world) write(p string) {
	data := make([]byte, w.size)
	for i := 0; i < len(data); i += 8 {
		v := w.rng.Uint64()
		for j := 0; j < 8 && i+j < len(data); j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// change rewrites a fraction of the files with new random data.
func (w *world) change(fraction float64) {
	for _, i := range w.rng.Perm(len(w.files))[:int(fraction*float64(len(w.files)))] {
		w.write(w.files[i])
	}
}

func (w *world) settings(ns string) mover.Settings {
	return mover.Settings{Location: w.url, Namespace: ns, Password: testPassword, CacheDir: w.t.TempDir()}
}

// backup backs the tree up into namespace ns's repository and records backup name, taken at start.
func (w *world) backup(ctx context.Context, ns, name string, start time.Time) *catalog.Manifest {
	w.t.Helper()
	res, err := mover.RunBackup(ctx, w.settings(ns), mover.BackupConfig{Source: w.src, PVC: "data", Backup: name}, func(mover.Event) {})
	if err != nil {
		w.t.Fatalf("backup %s: %v", name, err)
	}
	return w.record(ctx, ns, name, start, res.SnapshotID)
}

// record writes the catalog files of a backup whose volume is Kopia snapshot id.
func (w *world) record(ctx context.Context, ns, name string, start time.Time, id string) *catalog.Manifest {
	w.t.Helper()
	aw, err := w.cat.NewWriter(ctx, name, catalog.ResourcesFile, "")
	if err != nil {
		w.t.Fatal(err)
	}
	ar, err := archive.NewWriter(aw, testPassword)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := ar.Close(); err != nil {
		w.t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		w.t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: name, Status: catalog.Completed, Namespaces: []string{ns}, StartTime: start, CompletionTime: start,
		Archive: catalog.ArchiveRef{File: catalog.ResourcesFile, Encrypted: "age-scrypt"},
		Volumes: []catalog.Volume{{Namespace: ns, PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: id}}}
	if err := w.cat.WriteManifest(ctx, m); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// repoBytes is what the namespace's repository holds in the bucket.
func (w *world) repoBytes(ctx context.Context, ns string) int64 {
	w.t.Helper()
	var n int64
	it := w.loc.Bucket().List(&blob.ListOptions{Prefix: "kopia/" + ns + "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n
		}
		if err != nil {
			w.t.Fatal(err)
		}
		n += obj.Size
	}
}

func (w *world) repos() *repo.Service {
	return &repo.Service{Location: w.url, Key: repo.OneKey(testPassword)}
}

func (w *world) deps() Deps {
	return Deps{Catalog: w.cat, Removal: removal.Deps{Repos: w.repos()}, Maintain: maintenance.Deps{Repos: w.repos()}}
}

func (w *world) verify(ctx context.Context, names ...string) *verify.Result {
	w.t.Helper()
	res, err := verify.Run(ctx, verify.Deps{Catalog: w.cat, Repos: w.repos(), ArchivePassword: func() (string, error) { return testPassword, nil }},
		verify.Config{Names: names, ReadPercent: 100})
	if err != nil {
		w.t.Fatal(err)
	}
	return res
}

// pruneToNewest takes n backups with changed files in between, prunes to the newest with full
// maintenance (safety none), and checks the repository shrank to about one fresh backup and the
// kept backup restores and verifies in full.
func pruneToNewest(t *testing.T, w *world, n int, changed float64) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second).Add(-time.Duration(n) * time.Hour)
	for i := range n {
		if i > 0 {
			w.change(changed)
		}
		w.backup(ctx, "team-a", fmt.Sprintf("b%d", i), t0.Add(time.Duration(i)*time.Hour))
	}
	want := treeSums(t, w.src)
	before := w.repoBytes(ctx, "team-a")
	w.backup(ctx, "fresh", "fresh", t0.Add(time.Duration(n)*time.Hour))
	fresh := w.repoBytes(ctx, "fresh")
	if _, err := w.cat.Delete(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}

	res, err := Run(ctx, w.deps(), Config{Options: retention.Options{Policy: retention.Policy{Last: 1}, Now: time.Now()}, Maintenance: maintenance.Full, Safety: maintenance.SafetyNone})
	if err != nil {
		t.Fatal(err)
	}
	kept, removed, failed := res.Counts()
	if kept != 1 || removed != n-1 || failed != 0 || res.Failed() {
		t.Fatalf("prune: %d kept, %d removed, %d failed; maintenance %+v", kept, removed, failed, res.Maintenance)
	}
	if len(res.Maintenance) != 1 || res.Maintenance[0].Namespace != "team-a" || res.Maintenance[0].Deleted.Blobs == 0 {
		t.Fatalf("maintenance after prune: %+v", res.Maintenance)
	}
	after := w.repoBytes(ctx, "team-a")
	t.Logf("MEASURE kopia/team-a/: %d bytes before prune, %d after; one fresh backup %d (%.2fx)", before, after, fresh, float64(after)/float64(fresh))
	if ratio := float64(after) / float64(fresh); ratio > 1.3 {
		t.Fatalf("kopia/team-a/ holds %.2fx one fresh backup after prune and full maintenance (%d vs %d bytes); want at most 1.3x", ratio, after, fresh)
	}
	last := fmt.Sprintf("b%d", n-1)
	vr := w.verify(ctx, last)
	if len(vr.Failed()) > 0 || vr.Backups[0].Volumes[0].ReadFiles != int64(len(w.files)) {
		t.Fatalf("kept backup does not verify at 100%%: %+v", vr.Backups)
	}
	m, err := w.cat.Manifest(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if _, err := mover.RunRestore(ctx, w.settings("team-a"), mover.RestoreConfig{SnapshotID: m.Volumes[0].KopiaSnapshot, Target: dst}, func(mover.Event) {}); err != nil {
		t.Fatalf("restore the kept backup: %v", err)
	}
	if got := treeSums(t, dst); !equalSums(got, want) {
		t.Fatalf("restored tree differs from the source (%d vs %d files)", len(got), len(want))
	}
}

func TestPruneToNewestFile(t *testing.T) {
	// Big enough for several packs, and as many backups as the scenario: Kopia frees a
	// pack only by rewriting its live contents elsewhere, and only once they are under 60 % of
	// the pack size (after 5 backups with 20 % changed each, 0.8^4 = 41 % of the first's remain).
	w := newWorld(t, "file://"+t.TempDir(), 120, 256<<10)
	pruneToNewest(t, w, 5, 0.2)
}

// treeSums maps each regular file's path in dir to its SHA-256.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		out[rel] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalSums(a, b map[string]string) bool { return maps.Equal(a, b) }

// backupDuringMaintenance runs a backup while full and quick maintenance (default safety) run
// over and over on the same repository, and checks the backup restores intact.
func backupDuringMaintenance(t *testing.T, w *world) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second).Add(-3 * time.Hour)
	w.backup(ctx, "team-a", "b0", t0)
	w.change(0.5)
	w.backup(ctx, "team-a", "b1", t0.Add(time.Hour))
	// b0's snapshot goes, so maintenance has unreferenced contents to work on.
	if _, err := Run(ctx, w.deps(), Config{Options: retention.Options{Policy: retention.Policy{Last: 1}, Now: time.Now()}, Maintenance: NoMaintenance}); err != nil {
		t.Fatal(err)
	}
	w.change(0.5)
	want := treeSums(t, w.src)
	done := make(chan *catalog.Manifest)
	go func() { done <- w.backup(ctx, "team-a", "b2", t0.Add(2*time.Hour)) }()
	d := w.deps().Maintain
	d.Location = w.loc
	runs := 0
	var m *catalog.Manifest
	for m == nil {
		mode := maintenance.Full
		if runs%2 == 1 {
			mode = maintenance.Quick
		}
		if rr := maintenance.MaintainRepository(ctx, d, "team-a", mode, maintenance.SafetyFull); rr.Error != "" {
			t.Fatalf("maintenance while a backup runs: %s", rr.Error)
		}
		runs++
		select {
		case m = <-done:
		default:
		}
	}
	t.Logf("%d maintenance runs during the backup", runs)
	dst := t.TempDir()
	if _, err := mover.RunRestore(ctx, w.settings("team-a"), mover.RestoreConfig{SnapshotID: m.Volumes[0].KopiaSnapshot, Target: dst}, func(mover.Event) {}); err != nil {
		t.Fatalf("restore the backup taken during maintenance: %v", err)
	}
	if got := treeSums(t, dst); !equalSums(got, want) {
		t.Fatalf("restored tree differs from the source (%d vs %d files)", len(got), len(want))
	}
	if vr := w.verify(ctx, "b1", "b2"); len(vr.Failed()) > 0 {
		t.Fatalf("backups do not verify after maintenance: %+v", vr.Backups)
	}
}

func TestBackupDuringMaintenanceFile(t *testing.T) {
	backupDuringMaintenance(t, newWorld(t, "file://"+t.TempDir(), 200, 64<<10))
}

// A bucket writer plants backups/evil/backup.json naming a good backup's Kopia snapshot, expired:
// the scheduled prune removes evil, and must not take good's volume data with it.
func TestPruneKeepsSnapshotsAPlantedManifestNames(t *testing.T) {
	w := newWorld(t, "file://"+t.TempDir(), 20, 4<<10)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	good := w.backup(ctx, "team-a", "good", now.Add(-time.Hour))
	evil := *good
	evil.Name, evil.TTL, evil.ExpiresAt = "evil", "1h0m0s", now.Add(-time.Minute)
	if err := w.cat.WriteManifest(ctx, &evil); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, w.deps(), Config{Options: retention.Options{Now: now}, Maintenance: maintenance.Full, Safety: maintenance.SafetyNone})
	if err != nil {
		t.Fatal(err)
	}
	var evilItem *Item
	for i := range res.Items {
		if res.Items[i].Name == "evil" {
			evilItem = &res.Items[i]
		}
	}
	if evilItem == nil || !strings.Contains(evilItem.Error, `belongs to backup "good", volume team-a/data`) || !res.Failed() {
		t.Fatalf("prune: %+v; want evil refused, naming good's snapshot", res.Items)
	}
	if ok, _ := w.cat.Exists(ctx, "evil"); !ok {
		t.Error("evil's files were deleted: the next prune would not say it again")
	}
	if vr := w.verify(ctx, "good"); len(vr.Failed()) > 0 || vr.Backups[0].Volumes[0].ReadFiles != int64(len(w.files)) {
		t.Fatalf("good does not verify after the prune: %+v", vr.Backups)
	}
}
