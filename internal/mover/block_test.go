package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// blockImage writes an image of size bytes: random data at the offsets of data (1 MiB each),
// zeros elsewhere (a hole).
func blockImage(t *testing.T, path string, size int64, data ...int64) []byte {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range data {
		p := make([]byte, 1<<20)
		_, _ = rand.Read(p)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allocated is how many bytes of the file have blocks on disk.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// A block volume (an image file standing in for the device) backs up as one file, restores byte
// for byte over a device holding other data, and leaves a zeroed target's zero runs unwritten; an
// incremental after a 1 MiB change uploads about that much.
func TestBlockBackupRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fileSettings(t)
	src := filepath.Join(dir, "disk")
	want := blockImage(t, src, 64<<20, 0, 40<<20)

	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "disk", Backup: "b1", Block: true}, func(Event) {})
	if err != nil {
		t.Fatalf("block backup: %v", err)
	}
	if res.Files != 1 || res.Bytes != 64<<20 || res.UploadedBytes > 4<<20 {
		t.Errorf("block backup result files=%d bytes=%d uploaded=%d; want 1 file of 64 MiB, about 3 MiB uploaded (2 MiB of data, one zero MiB)", res.Files, res.Bytes, res.UploadedBytes)
	}

	// Into a new (zero, sparse) device: the same bytes, the zeros left as holes.
	fresh := filepath.Join(dir, "fresh")
	blockImage(t, fresh, 64<<20)
	out, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: fresh, Block: true}, func(Event) {})
	if err != nil {
		t.Fatalf("block restore: %v", err)
	}
	if got, _ := os.ReadFile(fresh); !bytes.Equal(got, want) || out.Bytes != 64<<20 {
		t.Errorf("restored device differs from the source (restored %d bytes)", out.Bytes)
	}
	if a := allocated(t, fresh); a > 8<<20 {
		t.Errorf("restore into a zero device allocated %d bytes; want the 2 MiB of data, zeros skipped", a)
	}
	// Over a device full of other data: the zero runs are written too.
	used := filepath.Join(dir, "used")
	blockImage(t, used, 64<<20, 4<<20, 40<<20, 60<<20)
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: used, Block: true}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(used); !bytes.Equal(got, want) {
		t.Error("restore over a used device left its old data")
	}

	// A 1 MiB change: the incremental uploads about that.
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	p := make([]byte, 1<<20)
	_, _ = rand.Read(p)
	_, _ = f.WriteAt(p, 20<<20)
	f.Close()
	res2, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "disk", Backup: "b2", Block: true}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if res2.ParentID != res.SnapshotID || res2.UploadedBytes > 3<<20 {
		t.Errorf("incremental: parent %s (want %s), uploaded %d; want about 1 MiB", res2.ParentID, res.SnapshotID, res2.UploadedBytes)
	}

	// Too small a target, and a filesystem snapshot restored as a block volume: clear errors.
	small := filepath.Join(dir, "small")
	blockImage(t, small, 32<<20)
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: small, Block: true}, func(Event) {}); err == nil || !strings.Contains(err.Error(), "at least as large") {
		t.Errorf("restore into a smaller device: %v; want a size error", err)
	}
	tree := t.TempDir()
	makeTree(t, tree, treeSpec{smallFiles: 3})
	fsRes, err := RunBackup(ctx, s, BackupConfig{Source: tree, PVC: "files"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: fsRes.SnapshotID, Target: fresh, Block: true}, func(Event) {}); err == nil || !strings.Contains(err.Error(), "not a block volume's snapshot") {
		t.Errorf("block restore of a filesystem snapshot: %v; want it refused", err)
	}
	// From a device (a claim made from a kept VolumeSnapshot).
	copyTo := filepath.Join(dir, "copy")
	blockImage(t, copyTo, 64<<20)
	if _, err := RunRestore(ctx, s, RestoreConfig{FromDir: fresh, Target: copyTo, Block: true}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(copyTo); !bytes.Equal(got, want) {
		t.Error("device-to-device copy differs")
	}
}

// A device above the parallel-upload size is read in parts hashed and uploaded in parallel: the
// image restores byte for byte, its zero MiBs are still one content, and an incremental after a
// 1 MiB change across a part boundary (an unchanged size and a device without times) reads the
// device again and uploads about the changed MiBs.
func TestBlockBackupParallelParts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fileSettings(t)
	src := filepath.Join(dir, "disk")
	blockImage(t, src, 64<<20, 0, 20<<20, 41<<20)
	cfg := BackupConfig{Source: src, PVC: "disk", Backup: "b1", Block: true, ParallelAbove: 8 << 20, Parallel: 4}
	res, err := RunBackup(ctx, s, cfg, func(Event) {})
	if err != nil {
		t.Fatalf("block backup: %v", err)
	}
	if res.Bytes != 64<<20 || res.UploadedBytes > 5<<20 {
		t.Errorf("first backup: %d bytes, %d uploaded; want 64 MiB read, about 4 MiB uploaded (3 MiB of data, one zero MiB)", res.Bytes, res.UploadedBytes)
	}
	f, err := os.OpenFile(src, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 1<<20)
	_, _ = rand.Read(p)
	if _, err := f.WriteAt(p, 16<<20-512<<10); err != nil { // half in the part before 16 MiB, half after
		t.Fatal(err)
	}
	f.Close()
	want, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Backup = "b2"
	res2, err := RunBackup(ctx, s, cfg, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if res2.ParentID != res.SnapshotID || res2.UploadedBytes > 3<<20 {
		t.Errorf("incremental: parent %s (want %s), uploaded %d; want the two changed MiBs", res2.ParentID, res.SnapshotID, res2.UploadedBytes)
	}
	fresh := filepath.Join(dir, "fresh")
	blockImage(t, fresh, 64<<20)
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res2.SnapshotID, Target: fresh, Block: true}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(fresh); !bytes.Equal(got, want) {
		t.Error("the incremental's image differs from the changed device")
	}
}
