//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

// TestStoreRoundTrip runs the commands a user runs against each object store for real: S3
// (SeaweedFS), GCS (fake-gcs-server) and Azure Blob (Azurite). Resources go through `create` and
// `restore`; volume data through the mover in process (the cluster here has no CSI driver), then
// `verify --read-data 100`, `ls`, `cp` (every checksum equal), and `prune`.
func TestStoreRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (url func(string) string, setEnv func(testing.TB))
	}{
		{"s3", func(t *testing.T) (func(string) string, func(testing.TB)) {
			s := s3server.SeaweedFS(t)
			return s.URL, s.SetEnv
		}},
		{"gcs", func(t *testing.T) (func(string) string, func(testing.TB)) { s := stores.GCS(t); return s.URL, s.SetEnv }},
		{"azure", func(t *testing.T) (func(string) string, func(testing.TB)) {
			s := stores.Azure(t)
			return s.URL, s.SetEnv
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, setEnv := tc.start(t)
			setEnv(t)
			storeRoundTrip(t, url("team/prod"), "st-"+tc.name)
		})
	}
}

func storeRoundTrip(t *testing.T, url, ns string) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "store-round-trip")
	t.Setenv("PVBACKUP_LOCATION", url)
	createNamespace(t, ns, "one", "two")
	if r := run(t, "create", "res-1", "-n", ns); r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	src := writeTree(t, 40)
	volumeBackup(t, url, "store-round-trip", ns, "vol-1", src, time.Now().Add(time.Second))

	if r := run(t, "verify", "vol-1", "res-1", "--read-data", "100"); r.code != 0 {
		t.Fatalf("verify --read-data 100: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "ls", "vol-1", ns+"/data:/d01", "-R"); r.code != 0 || !strings.Contains(r.out, "f0001") {
		t.Fatalf("ls: exit %d\n%s%s", r.code, r.out, r.err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if r := run(t, "cp", "vol-1", ns+"/data", dst); r.code != 0 {
		t.Fatalf("cp: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if want, got := treeSums(t, src), treeSums(t, dst); !maps.Equal(want, got) {
		t.Fatalf("cp brought back %d files, checksums differ from the %d backed up", len(got), len(want))
	}
	if r := run(t, "restore", "res-1", "--namespace-mapping", ns+":"+ns+"-r"); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if cm, err := cs.CoreV1().ConfigMaps(ns+"-r").Get(ctx, "two", metav1.GetOptions{}); err != nil || cm.Data["k"] != "two" {
		t.Fatalf("restored ConfigMap: %v %v", cm, err)
	}
	// A second volume backup with a file changed: prune keeps it alone and runs full maintenance
	// of the namespace's repository, which must leave it whole.
	if err := os.WriteFile(filepath.Join(src, "d01", "f0001"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	volumeBackup(t, url, "store-round-trip", ns, "vol-2", src, time.Now().Add(2*time.Second))
	if r := run(t, "prune", "--keep-last", "1", "--maintenance", "full"); r.code != 0 || !strings.Contains(r.out+r.err, "2 removed") || !strings.Contains(r.out, "full (safety full)") {
		t.Fatalf("prune: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "list"); r.code != 0 || strings.Contains(r.out, "res-1") || strings.Contains(r.out, "vol-1") || !strings.Contains(r.out, "vol-2") {
		t.Fatalf("list after prune --keep-last 1: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "verify", "vol-2", "--read-data", "100"); r.code != 0 {
		t.Fatalf("verify after prune: exit %d\n%s%s", r.code, r.out, r.err)
	}
}

// writeTree writes n files of distinct content in a few directories and returns the directory.
func writeTree(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%4), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("file %d\n", i), 100*(i+1))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// volumeBackup records a backup of namespace ns whose one volume (PVC data) is src, as `create`
// records one: the mover uploads src with the namespace's key, and the catalog gets an (empty)
// archive under the archive key and a manifest.
func volumeBackup(t *testing.T, url, password, ns, name, src string, start time.Time) *catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	loc, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	kr, err := keyring.Create(ctx, loc, password)
	if err != nil {
		t.Fatal(err)
	}
	// As create does: the plugin creates the namespace's repository (locked in an immutable
	// location) before the mover runs.
	set := mover.Settings{Location: url, Namespace: ns, Password: repoPassword(t, kr, ns), CacheDir: t.TempDir(), Lock: loc.Lock()}
	if err := set.Repos().Ensure(ctx, set.Namespace); err != nil {
		t.Fatal(err)
	}
	set.Lock = nil
	res, err := mover.RunBackup(ctx, set, mover.BackupConfig{Source: src, PVC: "data", Backup: name}, func(mover.Event) {})
	if err != nil {
		t.Fatalf("back up %s: %v", src, err)
	}
	cat := catalog.New(loc)
	aw, err := cat.NewWriter(ctx, name, catalog.ResourcesFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ar, err := archive.NewWriter(aw, archiveKey(t, kr))
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	start = start.UTC().Truncate(time.Second)
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, KeyScheme: keyring.Scheme, Name: name, Status: catalog.Completed,
		Namespaces: []string{ns}, StartTime: start, CompletionTime: start,
		Archive: catalog.ArchiveRef{File: catalog.ResourcesFile, Encrypted: "age-scrypt"},
		Volumes: []catalog.Volume{{Namespace: ns, PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID,
			Bytes: res.Bytes, UploadedBytes: res.UploadedBytes, Files: res.Files}}}
	if err := cat.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// treeSums maps each regular file under dir (relative path) to its SHA-256.
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

// repoPassword and archiveKey derive k's secrets, failing the test on an error.
func repoPassword(t testing.TB, k *keyring.Keyring, ns string) string {
	t.Helper()
	pw, err := k.RepoPassword(ns)
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

func archiveKey(t testing.TB, k *keyring.Keyring) string {
	t.Helper()
	key, err := k.ArchiveKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}
