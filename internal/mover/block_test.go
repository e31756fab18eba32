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

	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"
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

// blockChunks is how many distinct contents the image of block snapshot id is (its chunks, the
// zero chunk once, and its index), and the tag that names its splitter.
func blockChunks(t *testing.T, s Settings, id string) (int, string) {
	t.Helper()
	ctx := context.Background()
	r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(id))
	if err != nil {
		t.Fatal(err)
	}
	root, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		t.Fatal(err)
	}
	f, err := blockFile(ctx, root, id)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := r.VerifyObject(ctx, f.(snapshot.HasDirEntry).DirEntry().ObjectID)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids), man.Tags[TagBlockSplitter]
}

// A new block volume is cut into BlockSplitter's chunks, named by the snapshot's tag: a 1 MiB
// change at a 4 KiB offset uploads 1.5 MiB. A volume whose last snapshot was made before the tag
// (1 MiB chunks) keeps 1 MiB chunks, so that its next backup uploads the change, not the device;
// the old snapshot and the new one restore byte for byte.
func TestBlockSplitterKept(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := fileSettings(t)
	change := func(path string, off int64) []byte {
		t.Helper()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 1<<20)
		_, _ = rand.Read(p)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, _ := os.ReadFile(path)
		return b
	}
	restored := func(id string) []byte {
		t.Helper()
		out := filepath.Join(t.TempDir(), "dev")
		blockImage(t, out, 16<<20)
		if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: id, Target: out, Block: true}, func(Event) {}); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		return b
	}

	// An old volume: its snapshot cut into 1 MiB chunks, untagged.
	old := filepath.Join(dir, "old")
	before := blockImage(t, old, 16<<20, 0, 4<<20, 8<<20)
	res0, err := RunBackup(ctx, s, BackupConfig{Source: old, PVC: "old", Backup: "b0", Block: true, blockSplitter: blockSplitterBefore}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	after := change(old, 4<<20+4096)
	res1, err := RunBackup(ctx, s, BackupConfig{Source: old, PVC: "old", Backup: "b1", Block: true}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	// 1 MiB chunks: the MiBs at 0, 4, 5 (the change spans 4-5) and 8, zeros, the index.
	if n, tag := blockChunks(t, s, res1.SnapshotID); n != 6 || tag != blockSplitterBefore || res1.UploadedBytes > 5<<19 {
		t.Errorf("after an old snapshot: %d contents, tag %q, %d bytes uploaded; want 6 (1 MiB chunks), tag %s, the 2 changed MiBs uploaded", n, tag, res1.UploadedBytes, blockSplitterBefore)
	}
	if !bytes.Equal(restored(res0.SnapshotID), before) || !bytes.Equal(restored(res1.SnapshotID), after) {
		t.Error("a restore differs from its device")
	}

	// A new volume.
	dev := filepath.Join(dir, "new")
	blockImage(t, dev, 16<<20, 0, 4<<20, 8<<20)
	res2, err := RunBackup(ctx, s, BackupConfig{Source: dev, PVC: "new", Backup: "b2", Block: true}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	// 512 KiB chunks: two per data MiB, zeros, the index.
	if n, tag := blockChunks(t, s, res2.SnapshotID); n != 8 || tag != BlockSplitter {
		t.Errorf("a new volume: %d contents, tag %q; want 8 (512 KiB chunks), tag %s", n, tag, BlockSplitter)
	}
	after = change(dev, 4<<20+4096)
	res3, err := RunBackup(ctx, s, BackupConfig{Source: dev, PVC: "new", Backup: "b3", Block: true}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, tag := blockChunks(t, s, res3.SnapshotID); tag != BlockSplitter || res3.UploadedBytes > 7<<18 {
		t.Errorf("incremental of a new volume: tag %q, %d bytes uploaded; want %s, about 1.5 MiB", tag, res3.UploadedBytes, BlockSplitter)
	}
	if !bytes.Equal(restored(res3.SnapshotID), after) {
		t.Error("the incremental's restore differs from the device")
	}
}

// The splitter follows the latest snapshot's tag, which comes from the bucket: a name this
// version does not know gives the default.
func TestBlockSplitterFor(t *testing.T) {
	tagged := func(tags map[string]string) []*snapshot.Manifest { return []*snapshot.Manifest{{Tags: tags}} }
	for _, tc := range []struct {
		previous []*snapshot.Manifest
		want     string
	}{
		{nil, BlockSplitter},
		{tagged(map[string]string{"pvc": "disk"}), "FIXED-1M"},
		{tagged(map[string]string{TagBlockSplitter: "FIXED-512K"}), "FIXED-512K"},
		{tagged(map[string]string{TagBlockSplitter: "DYNAMIC-4M-BUZHASH"}), BlockSplitter},
		{tagged(map[string]string{TagBlockSplitter: "FIXED-8M"}), BlockSplitter},
	} {
		if got := blockSplitterFor(tc.previous); got != tc.want {
			t.Errorf("after %v: %s, want %s", tc.previous, got, tc.want)
		}
	}
}
