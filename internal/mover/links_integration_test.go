//go:build integration

package mover

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// linkTree writes a tree with hard links (three paths of one file across directories, two of
// another) and a file of the record's own name, which the record must not take.
func linkTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "c"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/one"), []byte("one file, three names\n"), 0o640))
	must(os.Link(filepath.Join(dir, "a/one"), filepath.Join(dir, "a/b/one")))
	must(os.Link(filepath.Join(dir, "a/one"), filepath.Join(dir, "c/one")))
	must(os.WriteFile(filepath.Join(dir, "c/two"), []byte("two names\n"), 0o600))
	must(os.Link(filepath.Join(dir, "c/two"), filepath.Join(dir, "two")))
	must(os.WriteFile(filepath.Join(dir, "alone"), []byte("alone\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, hardlinks.Name), []byte("the user's own file\n"), 0o644))
	for _, p := range []string{"a/one", "c/two", "alone"} {
		must(os.Chtimes(filepath.Join(dir, p), fixedTime, fixedTime))
	}
}

func nlink(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Nlink)
}

func wantLinked(t *testing.T, dir string, groups ...[]string) {
	t.Helper()
	for _, g := range groups {
		first, err := os.Lstat(filepath.Join(dir, g[0]))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range g[1:] {
			fi, err := os.Lstat(filepath.Join(dir, p))
			if err != nil || !os.SameFile(first, fi) {
				t.Errorf("%s is not a hard link of %s (%v)", p, g[0], err)
			}
		}
		if n := nlink(t, filepath.Join(dir, g[0])); n != uint64(len(g)) {
			t.Errorf("%s has %d links, want %d", g[0], n, len(g))
		}
	}
}

// TestHardLinksRoundTrip: a backup records the volume's hard links; a restore, a restore of one
// directory and an in-place sync link them again; the user's file of the record's name comes
// back as it was; verify counts and checks them; ls shows no record.
func TestHardLinksRoundTrip(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	s := Settings{Location: srv.URL("links"), Namespace: "team-a", Password: "pw-links", CacheDir: t.TempDir()}
	ctx := context.Background()
	src := t.TempDir()
	linkTree(t, src)
	want := describeTree(t, src)
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b1"}, func(Event) {})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if res.HardLinks != 3 || res.Files != 7 {
		t.Errorf("backup: %d hard links, %d files; want 3 and 7 (the record is not a file of the volume)", res.HardLinks, res.Files)
	}
	groups := [][]string{{"a/one", "a/b/one", "c/one"}, {"c/two", "two"}}

	dst := filepath.Join(t.TempDir(), "restored")
	rr, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	compareTrees(t, want, describeTree(t, dst))
	wantLinked(t, dst, groups...)
	if rr.HardLinks != 3 {
		t.Errorf("restore made %d hard links, want 3", rr.HardLinks)
	}

	sub := filepath.Join(t.TempDir(), "sub")
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: sub, SubPath: "/a"}, func(Event) {}); err != nil {
		t.Fatalf("restore of /a: %v", err)
	}
	wantLinked(t, sub, []string{"a/one", "a/b/one"})

	// In place: the links broken (the files written apart), then synced back.
	for _, p := range []string{"a/b/one", "two"} {
		b, _ := os.ReadFile(filepath.Join(dst, p))
		_ = os.Remove(filepath.Join(dst, p))
		if err := os.WriteFile(filepath.Join(dst, p), b, 0o640); err != nil {
			t.Fatal(err)
		}
		_ = os.Chtimes(filepath.Join(dst, p), fixedTime, fixedTime)
	}
	sr, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst, Sync: true}, func(Event) {})
	if err != nil {
		t.Fatalf("in-place sync: %v", err)
	}
	wantLinked(t, dst, groups...)
	compareTrees(t, want, describeTree(t, dst))
	if sr.HardLinks != 3 {
		t.Errorf("sync: %d hard links, want 3", sr.HardLinks)
	}

	r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	st, err := repo.VerifySnapshot(ctx, r, res.SnapshotID, repo.VerifyOptions{ReadPercent: 100})
	if err != nil || st.ProblemCount != 0 || st.HardLinks != 3 || st.Files != 7 {
		t.Fatalf("verify: %+v, %v; want 3 hard links, 7 files, no problem", st, err)
	}
}
