package mover

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// treeState is every file under dir with its size and content hash.
func treeState(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestRunRestoreReadOnlyVelero: a mover with Settings.ReadOnly restores the snapshots Velero
// 1.18 wrote (fs-backup and data mover, testdata/velero/v1.18) with the files Velero backed up,
// and the bucket is byte for byte what it was; a backup through a read-only open is refused.
func TestRunRestoreReadOnlyVelero(t *testing.T) {
	bucket := golden.Copy(t, "velero/v1.18/bucket")
	before := treeState(t, bucket)
	for _, tc := range []struct{ ns, snapshot string }{
		{"vl-fs", "e07df91db8a12d8ae4a66561b246e116"}, // fs-deploy: a PodVolumeBackup
		{"vl-dm", "5e8f7ec68c4e0d5505a5d0edc7109bf9"}, // datamover-sts: a DataUpload
	} {
		target := t.TempDir()
		s := Settings{Location: "file://" + bucket, Namespace: tc.ns, Password: "static-passw0rd", CacheDir: t.TempDir(), ReadOnly: true}
		res, err := RunRestore(context.Background(), s, RestoreConfig{SnapshotID: tc.snapshot, Target: target, SkipOwners: true}, JSONLines(io.Discard))
		if err != nil {
			t.Fatalf("%s: %v", tc.ns, err)
		}
		hello, err := os.ReadFile(filepath.Join(target, "hello.txt"))
		if err != nil || string(hello) != "hello from "+tc.ns+"\n" {
			t.Errorf("%s: hello.txt %q %v", tc.ns, hello, err)
		}
		b, err := os.ReadFile(filepath.Join(target, "dir/sub/b.bin"))
		if err != nil || string(b) != strings.Repeat("b", 4096) {
			t.Errorf("%s: dir/sub/b.bin %d bytes %v", tc.ns, len(b), err)
		}
		if res.Files != 3 {
			t.Errorf("%s: %d files restored, want 3", tc.ns, res.Files)
		}
	}
	s := Settings{Location: "file://" + bucket, Namespace: "vl-fs", Password: "wrong", CacheDir: t.TempDir(), ReadOnly: true}
	if _, err := RunRestore(context.Background(), s, RestoreConfig{SnapshotID: "e07df91db8a12d8ae4a66561b246e116", Target: t.TempDir()}, JSONLines(io.Discard)); !errors.Is(err, repo.ErrWrongPassword) {
		t.Errorf("wrong password: %v", err)
	}
	s.Password = "static-passw0rd"
	if _, err := RunBackup(context.Background(), s, BackupConfig{Source: t.TempDir(), PVC: "data", Backup: "b"}, JSONLines(io.Discard)); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("backup into a read-only open: %v", err)
	}
	if after := treeState(t, bucket); after != before {
		t.Errorf("the Velero bucket changed:\n--- before\n%s\n--- after\n%s", before, after)
	}
}
