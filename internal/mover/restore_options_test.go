package mover

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRestoreSubPathAndRequireEmpty(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, p := range []string{"keep/a/x.txt", "keep/y.txt", "other/z.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := Settings{Location: "file://" + filepath.Join(dir, "loc"), Namespace: "ns", Password: "pw-123456", CacheDir: dir}
	ctx := context.Background()
	b, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(target, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: b.SnapshotID, Target: target, SubPath: "/keep/a/../", RequireEmpty: true, SkipOwners: true}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.Walk(target, func(p string, fi os.FileInfo, _ error) error {
		if !fi.IsDir() {
			rel, _ := filepath.Rel(target, p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, ",") != "keep/a/x.txt,keep/y.txt" {
		t.Errorf("restored %v, want keep/ only", got)
	}
	// The target now holds data: a second restore that requires it empty writes nothing.
	res, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: b.SnapshotID, Target: target, RequireEmpty: true, SkipOwners: true}, func(Event) {})
	if err == nil || !strings.Contains(res.Error, "not empty (it holds keep)") {
		t.Errorf("restore into a used target: %v, %+v", err, res)
	}
	if _, err := os.Stat(filepath.Join(target, "other")); err == nil {
		t.Error("a refused restore wrote data")
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: b.SnapshotID, Target: t.TempDir(), SubPath: "/nope"}, func(Event) {}); err == nil {
		t.Error("a missing --sub-path was restored")
	}
}

// A sync restore makes a used target equal to the snapshot (or to a directory: a volume made from
// a kept VolumeSnapshot) and leaves equal files alone; a diff-only run counts the same changes and
// writes nothing.
func TestRestoreSyncAndDiff(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string]string{"keep.txt": "same", "edit.txt": "original", "gone.txt": "deleted later", "sub/deep.txt": "deep"}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("keep.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	s := Settings{Location: "file://" + filepath.Join(dir, "loc"), Namespace: "ns", Password: "pw-123456", CacheDir: dir}
	ctx := context.Background()
	b, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []struct {
		name string
		cfg  RestoreConfig
	}{
		{"from the snapshot", RestoreConfig{SnapshotID: b.SnapshotID}},
		{"from a directory", RestoreConfig{FromDir: src}},
	} {
		t.Run(from.name, func(t *testing.T) {
			syncAndDiff(t, s, from.cfg, filepath.Join(dir, from.name), files)
		})
	}
}

func syncAndDiff(t *testing.T, s Settings, from RestoreConfig, target string, files map[string]string) {
	ctx := context.Background()
	with := func(cfg RestoreConfig) RestoreConfig {
		cfg.SnapshotID, cfg.FromDir, cfg.Target = from.SnapshotID, from.FromDir, target
		return cfg
	}
	if _, err := RunRestore(ctx, s, with(RestoreConfig{SkipOwners: true}), func(Event) {}); err != nil {
		t.Fatal(err)
	}
	// The application changes the volume after the backup.
	if err := os.WriteFile(filepath.Join(target, "edit.txt"), []byte("edited by the app"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(target, "new/dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "new/dir/extra.txt"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		fi, err := os.Stat(filepath.Join(target, p))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	keepIno := ino("keep.txt")
	// Changes that leave size and time alone, which Kopia's incremental restore alone keeps: a
	// chmod, and a symlink pointed elsewhere.
	if err := os.Chmod(filepath.Join(target, "sub/deep.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(target, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("edit.txt", filepath.Join(target, "link")); err != nil {
		t.Fatal(err)
	}

	res, err := RunRestore(ctx, s, with(RestoreConfig{DiffOnly: true}), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	want := Diff{Added: 1, AddedBytes: 13, Changed: 3, ChangedBytes: 8 + 4 + 8, Removed: 1, RemovedBytes: 5, Unchanged: 1}
	if res.Diff == nil || *res.Diff != want {
		t.Errorf("diff %+v, want %+v", res.Diff, want)
	}
	if _, err := os.Stat(filepath.Join(target, "gone.txt")); err == nil {
		t.Error("a diff-only run wrote")
	}
	// With --include-path only that directory is compared, as only it would be synced.
	res, err = RunRestore(ctx, s, with(RestoreConfig{DiffOnly: true, SubPath: "/sub"}), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Diff{Changed: 1, ChangedBytes: 4}); res.Diff == nil || *res.Diff != want {
		t.Errorf("diff of /sub %+v, want %+v", res.Diff, want)
	}

	res, err = RunRestore(ctx, s, with(RestoreConfig{Sync: true, SkipOwners: true}), func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		if b, err := os.ReadFile(filepath.Join(target, p)); err != nil || string(b) != data {
			t.Errorf("%s after sync: %q, %v", p, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "new")); err == nil {
		t.Error("a directory not in the backup survived the sync")
	}
	if fi, err := os.Stat(filepath.Join(target, "sub/deep.txt")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode after sync: %v, %v", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(target, "link")); err != nil || l != "keep.txt" {
		t.Errorf("symlink after sync: %q, %v", l, err)
	}
	if ino("keep.txt") != keepIno || res.SkippedFiles != 1 {
		t.Errorf("unchanged files were rewritten: inode %d→%d, skipped %d", keepIno, ino("keep.txt"), res.SkippedFiles)
	}
}

// TestWriteData: pages of zeros become holes when sparse, every byte lands where it belongs, and
// the length is the data's.
func TestWriteData(t *testing.T) {
	data := make([]byte, 5*pageSize+100)
	copy(data[pageSize:], "second page")
	copy(data[3*pageSize+7:], "fourth")
	data[len(data)-1] = 'z'
	for _, sparse := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "f")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeData(int(f.Fd()), data, sparse); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("sparse=%v: %d bytes back, equal %v, %v", sparse, len(got), bytes.Equal(got, data), err)
		}
	}
	p := filepath.Join(t.TempDir(), "zeros")
	f, _ := os.Create(p)
	if err := writeData(int(f.Fd()), make([]byte, 3*pageSize), true); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, _ := os.Stat(p); fi.Size() != 3*pageSize {
		t.Errorf("all zeros: size %d", fi.Size())
	}
}
