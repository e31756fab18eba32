package driver

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

var blockCap = []*csi.VolumeCapability{{
	AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}}

func createBlock(t *testing.T, d *Driver, name string, size int64, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	resp, err := d.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: name, VolumeCapabilities: blockCap, CapacityRange: &csi.CapacityRange{RequiredBytes: size}, VolumeContentSource: src,
	})
	if err != nil {
		t.Fatalf("create block volume %s: %v", name, err)
	}
	return resp.GetVolume()
}

// allocated is the disk space a file uses.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// publishBlock publishes a block volume at a new target file and returns the target; the test
// unpublishes it at the end if it did not.
func publishBlock(t *testing.T, ns *nodeServer, volID string, cap *csi.VolumeCapability) string {
	t.Helper()
	target := filepath.Join(t.TempDir(), "publish", "pv", "pod-uid")
	if _, err := ns.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: volID, TargetPath: target, VolumeCapability: cap}); err != nil {
		t.Fatalf("publish %s: %v", volID, err)
	}
	t.Cleanup(func() {
		ns.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: volID, TargetPath: target})
	})
	return target
}

// openDevice opens a device for writing until the test ends, as a pod holds it: what is written
// without fsync stays in the device's page cache (the last close would flush it).
func openDevice(t *testing.T, dev string) *os.File {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func writeAt(t *testing.T, f *os.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, dev string, n int, off int64) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// A block volume is a sparse image shown as a loop device at the target: what a pod writes (not
// synced) is in its snapshot; the snapshot and a restore of it cost what was written, not the
// volume's size; the restored and the cloned devices read the same bytes; the loop devices go
// with their last target.
func TestBlockVolumeSnapshotRestoreClone(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	ns := &nodeServer{d: d, node: &d.cfg.Nodes[0]}
	v := createBlock(t, d, "disk", 1<<30, nil)
	if a := allocated(t, d.imagePath(v.VolumeId)); a != 0 {
		t.Fatalf("a new 1 GiB block volume uses %d bytes, want 0 (sparse)", a)
	}
	target := publishBlock(t, ns, v.VolumeId, blockCap[0])
	var st syscall.Stat_t
	if err := syscall.Stat(target, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFBLK || st.Size != 0 && st.Size != 1<<30 {
		t.Fatalf("target %s: %v, mode %o: want a block device", target, err, st.Mode)
	}
	pattern := make([]byte, 3<<20)
	rand.Read(pattern)
	pod := openDevice(t, target)
	writeAt(t, pod, pattern, 100<<20)
	writeAt(t, pod, []byte("head of the device"), 0)

	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	s := d.st.Snapshots[snap.Snapshot.SnapshotId]
	if a := allocated(t, d.snapshotPath(s)); a > 4<<20 {
		t.Errorf("the snapshot of a 1 GiB device with 3 MiB written uses %d bytes, want at most 4 MiB", a)
	}
	writeAt(t, pod, []byte("later"), 0) // after the snapshot: not in what is restored

	restored := createBlock(t, d, "restored", 2<<30, snapSource(snap.Snapshot.SnapshotId))
	clone := createBlock(t, d, "clone", 0, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.VolumeId}}})
	if a := allocated(t, d.imagePath(restored.VolumeId)); a > 4<<20 {
		t.Errorf("the restored 2 GiB volume uses %d bytes, want at most 4 MiB", a)
	}
	rt := publishBlock(t, ns, restored.VolumeId, blockCap[0])
	if got := readAt(t, rt, len(pattern), 100<<20); !bytes.Equal(got, pattern) {
		t.Error("the restored device differs from the snapshot's source at 100 MiB")
	}
	if got := readAt(t, rt, 18, 0); string(got) != "head of the device" {
		t.Errorf("the restored device starts with %q, want what was there at the snapshot", got)
	}
	if fi, err := os.Stat(d.imagePath(restored.VolumeId)); err != nil || fi.Size() != 2<<30 {
		t.Errorf("restored image: %v, size %d, want 2 GiB", err, fi.Size())
	}
	ct := publishBlock(t, ns, clone.VolumeId, blockCap[0])
	if got := readAt(t, ct, 5, 0); string(got) != "later" {
		t.Errorf("the clone starts with %q, want the source's current %q", got, "later")
	}

	pod.Close()
	loops := []string{d.st.Volumes[v.VolumeId].Loop, d.st.Volumes[restored.VolumeId].Loop, d.st.Volumes[clone.VolumeId].Loop}
	for _, p := range []struct{ vol, target string }{{v.VolumeId, target}, {restored.VolumeId, rt}, {clone.VolumeId, ct}} {
		if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: p.vol, TargetPath: p.target}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p.target); !os.IsNotExist(err) {
			t.Errorf("target %s is left after unpublish: %v", p.target, err)
		}
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: p.vol}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range loops {
		if back, _ := loopBackingFile(l); back != "" {
			t.Errorf("%s is still attached to %s", l, back)
		}
	}
}

// The modes do not mix: a block volume is not mounted as a filesystem nor made from a filesystem
// snapshot, and one request cannot ask for both.
func TestBlockAndFilesystemDoNotMix(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	ns := &nodeServer{d: d, node: &d.cfg.Nodes[0]}
	b := createBlock(t, d, "disk", 16<<20, nil)
	fs := createVolume(t, d, "dir", 16<<20, nil)
	_, err := ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: b.VolumeId, TargetPath: filepath.Join(t.TempDir(), "t"), VolumeCapability: mountCap[0]})
	wantCode(t, err, codes.InvalidArgument, "is a block volume")
	_, err = ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: fs.VolumeId, TargetPath: filepath.Join(t.TempDir(), "t"), VolumeCapability: blockCap[0]})
	wantCode(t, err, codes.InvalidArgument, "is a filesystem volume")

	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: fs.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "x", VolumeCapabilities: blockCap, VolumeContentSource: snapSource(snap.Snapshot.SnapshotId)})
	wantCode(t, err, codes.InvalidArgument, "is of a filesystem volume")
	_, err = d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "disk", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 16 << 20}})
	wantCode(t, err, codes.AlreadyExists, "exists as a block volume")
	_, err = d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "y", VolumeCapabilities: append(append([]*csi.VolumeCapability{}, blockCap...), mountCap...)})
	wantCode(t, err, codes.InvalidArgument, "both a block and a filesystem")

	r, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: b.VolumeId, VolumeCapabilities: mountCap})
	if err != nil || r.Confirmed != nil {
		t.Errorf("ValidateVolumeCapabilities(block volume, mount) = %v, %v: want not confirmed", r, err)
	}
	r, err = d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: b.VolumeId, VolumeCapabilities: blockCap})
	if err != nil || r.Confirmed == nil {
		t.Errorf("ValidateVolumeCapabilities(block volume, block) = %v, %v: want confirmed", r, err)
	}
}

// A loop device attached to one of the driver's images that no published volume records (the
// driver died between attaching and saving, or after its last pod went) is detached at start.
func TestRestartDetachesUnrecordedLoops(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	v := createBlock(t, d, "disk", 16<<20, nil)
	stray, err := attachLoop(d.imagePath(v.VolumeId))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachLoop(stray, d.imagePath(v.VolumeId)) })
	if _, err := New(d.cfg); err != nil {
		t.Fatal(err)
	}
	if back, _ := loopBackingFile(stray); back != "" {
		t.Errorf("%s is still attached to %s after the driver started again", stray, back)
	}
}

// copySparse copies data and holes alike: zero blocks inside data extents become holes too.
func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	f.WriteAt(data, 10<<20)
	f.WriteAt(make([]byte, 8<<20), 20<<20) // allocated zeros
	f.WriteAt([]byte("tail"), 64<<20-4)
	f.Close()
	if err := copySparse(dst, src, 0); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Fatal("the copy differs")
	}
	if got := allocated(t, dst); got > 2<<20 {
		t.Errorf("the copy uses %d bytes, want about 1 MiB (the source has 1 MiB of data, 8 MiB of written zeros)", got)
	}
	if err := copySparse(filepath.Join(dir, "big"), src, 1<<30); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "big")); fi.Size() != 1<<30 {
		t.Errorf("a copy grown to 1 GiB has size %d", fi.Size())
	}
}
