package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// A file bigger than ParallelAbove is stored as parts (more contents than the splitter alone
// would make) and restores byte for byte; below it, it is one stream.
func TestBackupSplitsBigFiles(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 6<<20+12345)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "big.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	contents := func(s Settings, above int64) int {
		res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", ParallelAbove: above, Parallel: 3}, func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(res.SnapshotID))
		if err != nil {
			t.Fatal(err)
		}
		root, err := snapshotfs.SnapshotRoot(r, man)
		if err != nil {
			t.Fatal(err)
		}
		f, err := root.(fs.Directory).Child(ctx, "big.img")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := r.VerifyObject(ctx, f.(snapshot.HasDirEntry).DirEntry().ObjectID)
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {}); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, "big.img"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("restored big.img differs (err %v)", err)
		}
		return len(ids)
	}
	split, whole := contents(fileSettings(t), 1<<20), contents(fileSettings(t), 0)
	if split < 7 || whole >= 7 {
		t.Errorf("a 6 MiB file in 1 MiB parts has %d contents, in one stream %d; want >= 7 and fewer", split, whole)
	}
}

func TestDefaultParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if got := DefaultParallel(); got != 2 {
		t.Errorf("DefaultParallel() with GOMAXPROCS 1 = %d, want 2", got)
	}
	runtime.GOMAXPROCS(5)
	if got := DefaultParallel(); got != 5 {
		t.Errorf("DefaultParallel() with GOMAXPROCS 5 = %d, want 5", got)
	}
	p, err := backupPolicy(BackupConfig{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.UploadPolicy.MaxParallelFileReads.OrDefault(0) != 3 || p.UploadPolicy.ParallelUploadAboveSize.OrDefault(0) != DefaultParallelAbove {
		t.Errorf("upload policy %+v", p.UploadPolicy)
	}
}
