package mover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeleteSnapshots(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := fileSettings(t)
	var ids []string
	for i := 0; i < 2; i++ {
		res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", Backup: "b"}, func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.SnapshotID)
	}
	n, err := DeleteSnapshots(ctx, s, []string{ids[0], "k0000000000000000000000000000000"})
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, %v; want 1", n, err)
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: ids[0], Target: t.TempDir()}, func(Event) {}); err == nil || !strings.Contains(err.Error(), "not in this repository") {
		t.Errorf("restore of a deleted snapshot: %v", err)
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: ids[1], Target: t.TempDir(), SkipOwners: true}, func(Event) {}); err != nil {
		t.Errorf("the other snapshot is gone too: %v", err)
	}
	// Again: nothing left to delete is not an error.
	if n, err := DeleteSnapshots(ctx, s, ids[:1]); err != nil || n != 0 {
		t.Errorf("second delete: %d, %v", n, err)
	}
}
