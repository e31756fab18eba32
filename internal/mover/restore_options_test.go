package mover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
