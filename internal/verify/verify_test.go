package verify

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

const testPassword = "pw-verify"

// fixture is a location on disk with one backup "b1": three objects in its archive and one
// volume team-a/data backed up by the mover (in process) into kopia/team-a/.
type fixture struct {
	dir, url string
	cat      *catalog.Catalog
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &fixture{dir: dir, url: "file://" + dir}
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		data := make([]byte, 10<<10+rng.IntN(200<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		p := filepath.Join(src, "d"+string(rune('a'+i%4)), "f"+string(rune('a'+i))+".bin")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := mover.RunBackup(ctx, mover.Settings{Location: f.url, Namespace: "team-a", Password: testPassword, CacheDir: t.TempDir()},
		mover.BackupConfig{Source: src, PVC: "data", Backup: "b1"}, func(mover.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	loc, err := store.Open(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	f.cat = catalog.New(loc)
	w, err := f.cat.NewWriter(ctx, "b1", catalog.ResourcesFile, "")
	if err != nil {
		t.Fatal(err)
	}
	aw, err := archive.NewWriter(w, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		k := archive.Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: "team-a", Name: name}
		if err := aw.Add(k, []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"`+name+`"}}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(f.path(catalog.Key("b1", catalog.ResourcesFile)))
	if err != nil {
		t.Fatal(err)
	}
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: "b1", Status: catalog.Completed, Namespaces: []string{"team-a"}, Items: 3,
		Archive: catalog.ArchiveRef{File: catalog.ResourcesFile, Size: st.Size(), Encrypted: "age-scrypt"},
		Volumes: []catalog.Volume{
			{Namespace: "team-a", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID},
			{Namespace: "team-a", PVC: "fast", Mode: "snapshot", Status: catalog.VolumeCompleted, VolumeSnapshot: "fast-b1"},
		}}
	if err := f.cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) path(key string) string { return filepath.Join(f.dir, filepath.FromSlash(key)) }

// blobs returns the repository's blob files whose names start with prefix, largest first.
func (f *fixture) blobs(t *testing.T, prefix string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(f.dir, "kopia", "team-a", prefix+"*"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("no %s* blobs in the repository (%v)", prefix, err)
	}
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	sort.Slice(matches, func(i, j int) bool { return size(matches[i]) > size(matches[j]) })
	return matches
}

func (f *fixture) verify(t *testing.T, pct float64) *Result {
	t.Helper()
	pw := func() (string, error) { return testPassword, nil }
	d := Deps{Catalog: f.cat, Repos: &repo.Service{Location: f.url, Key: repo.OneKey(testPassword)}, ArchivePassword: pw}
	res, err := Run(context.Background(), d, Config{All: true, ReadPercent: pct})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestIntactBackupVerifiesAt100Percent(t *testing.T) {
	f := newFixture(t)
	res := f.verify(t, 100)
	if failed := res.Failed(); len(failed) > 0 {
		t.Fatalf("intact backup failed: %+v", res.Backups)
	}
	b := res.Backups[0]
	if b.ArchiveObjects != 3 || len(b.Volumes) != 2 {
		t.Fatalf("backup result %+v", b)
	}
	v := b.Volumes[0]
	if !v.OK || v.Files != 40 || v.ReadFiles != 40 || v.ReadBytes != v.Bytes || v.Bytes == 0 {
		t.Errorf("volume: ok %v, %d files, %d read (%d of %d bytes); want all 40 read back", v.OK, v.Files, v.ReadFiles, v.ReadBytes, v.Bytes)
	}
	if b.Volumes[1].Skipped == "" || !strings.Contains(b.Volumes[1].Skipped, "snapshot mode") {
		t.Errorf("the snapshot-mode volume: %+v; want skipped", b.Volumes[1])
	}
}

func TestDamageIsFound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, f *fixture)
		pct    float64
		want   []string // in the volume's error, or the backup's problems
	}{
		{"deleted pack blob", func(t *testing.T, f *fixture) {
			if err := os.Remove(f.blobs(t, "p")[0]); err != nil {
				t.Fatal(err)
			}
		}, 0, []string{".bin", "which is missing"}},
		{"truncated pack", func(t *testing.T, f *fixture) {
			p := f.blobs(t, "p")[0]
			st, _ := os.Stat(p)
			if err := os.Truncate(p, st.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, 0, []string{".bin", "which is truncated"}},
		{"deleted index", func(t *testing.T, f *fixture) {
			for _, p := range f.blobs(t, "x") {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
		}, 0, []string{"not found"}},
		{"damaged pack read back", func(t *testing.T, f *fixture) {
			p := f.blobs(t, "p")[0]
			b, _ := os.ReadFile(p)
			for i := len(b) / 4; i < len(b)/2; i += 512 {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 100, []string{".bin", "message authentication failed"}},
		{"damaged archive", func(t *testing.T, f *fixture) {
			p := f.path(catalog.Key("b1", catalog.ResourcesFile))
			b, _ := os.ReadFile(p)
			b[len(b)-20] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, 0, []string{"resources.tar.gz.age"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.damage(t, f)
			res := f.verify(t, tc.pct)
			if len(res.Failed()) != 1 {
				t.Fatalf("damage not found: %+v", res.Backups)
			}
			b := res.Backups[0]
			archiveDamaged := tc.name == "damaged archive"
			if b.Volumes[0].OK != archiveDamaged || (len(b.Problems) > 0) != archiveDamaged {
				t.Fatalf("wrong part failed: archive problems %q, volume team-a/data ok=%v %q", b.Problems, b.Volumes[0].OK, b.Volumes[0].Error)
			}
			text := b.Volumes[0].Error + " " + strings.Join(b.Problems, " ")
			if st := b.Volumes[0].VerifyStats; st != nil {
				for _, p := range st.Problems {
					text += " " + p.Path + ": " + p.Error
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("result does not name %q: %s", w, text)
				}
			}
		})
	}
}

// A damaged backup.json is a failed backup under --all, not one skipped as still being written.
func TestDamagedManifestFailsAll(t *testing.T) {
	f := newFixture(t)
	if err := os.WriteFile(f.path(catalog.Key("b1", catalog.ManifestFile)), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := f.verify(t, 0)
	if len(res.Failed()) != 1 || res.Backups[0].Skipped != "" {
		t.Fatalf("damaged backup.json not failed: %+v", res.Backups)
	}
	if text := strings.Join(res.Backups[0].Problems, " "); !strings.Contains(text, "backup.json") {
		t.Errorf("the failure does not name backup.json: %q", text)
	}
}
