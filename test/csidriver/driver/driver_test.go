package driver

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var mountCap = []*csi.VolumeCapability{{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
}}

func newTestDriver(t *testing.T, capacity int64) *Driver {
	t.Helper()
	return newTypedDriver(t, TypeDir, capacity)
}

// testNodes are three nodes in two zones, as in the lab: a in zone-a, b and c in zone-b.
var testNodes = []Node{{ID: "a", Zone: "zone-a", Endpoint: "unused-a"}, {ID: "b", Zone: "zone-b", Endpoint: "unused-b"}, {ID: "c", Zone: "zone-b", Endpoint: "unused-c"}}

func newTypedDriver(t *testing.T, typ Type, capacity int64) *Driver {
	t.Helper()
	d, err := New(Config{Name: "test.csi.pvbackup.io", Type: typ, Nodes: testNodes, DataDir: t.TempDir(), Capacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func createVolume(t *testing.T, d *Driver, name string, size int64, src *csi.VolumeContentSource) *csi.Volume {
	t.Helper()
	resp, err := d.CreateVolume(context.Background(), &csi.CreateVolumeRequest{
		Name: name, VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: size}, VolumeContentSource: src,
	})
	if err != nil {
		t.Fatalf("create volume %s: %v", name, err)
	}
	return resp.GetVolume()
}

func wantCode(t *testing.T, err error, want codes.Code, wantMsg string) {
	t.Helper()
	if status.Code(err) != want || !strings.Contains(status.Convert(err).Message(), wantMsg) {
		t.Fatalf("got error %v, want code %v with message containing %q", err, want, wantMsg)
	}
}

// fillTree writes a tree with the kinds of entries a volume holds and returns its listing.
func fillTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub/deeper"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "sub/data.txt"), []byte("hello pvbackup\n"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "big.bin"), make([]byte, 3<<20), 0o600))
	must(os.Chown(filepath.Join(dir, "sub/data.txt"), 1000, 2000))
	must(os.Symlink("sub/data.txt", filepath.Join(dir, "link")))
	must(os.Link(filepath.Join(dir, "sub/data.txt"), filepath.Join(dir, "hardlink")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(dir, "big.bin"), old, old))
	must(os.Chtimes(filepath.Join(dir, "sub/deeper"), old, old))
}

// listing describes every entry under dir: path, type, mode, owner, size, mtime, link target, content.
func listing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		st := info.Sys().(*syscall.Stat_t)
		line := []string{rel, info.Mode().String(), itoa(st.Uid), itoa(st.Gid), itoa(info.Size()), itoa(st.Nlink)}
		if rel != "." && !info.IsDir() || rel == "sub/deeper" {
			line = append(line, info.ModTime().UTC().Format(time.RFC3339Nano))
		}
		if info.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(path)
			line = append(line, "->"+l)
		}
		if info.Mode().IsRegular() && info.Size() < 1024 {
			b, _ := os.ReadFile(path)
			line = append(line, string(b))
		}
		out = append(out, strings.Join(line, " "))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func itoa[T int64 | uint32 | uint64](n T) string { return strconv.FormatInt(int64(n), 10) }

func TestSnapshotOutlivesSourceAndRestores(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	src := createVolume(t, d, "src", 1<<30, nil)
	fillTree(t, d.volumePath(src.VolumeId))
	want := listing(t, d.volumePath(src.VolumeId))

	snap, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s1", SourceVolumeId: src.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Snapshot.ReadyToUse || snap.Snapshot.SizeBytes != 1<<30 {
		t.Fatalf("snapshot %+v: want ready, size 1Gi", snap.Snapshot)
	}
	// Writes after the snapshot must not show up in volumes restored from it.
	if err := os.WriteFile(filepath.Join(d.volumePath(src.VolumeId), "later.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: src.VolumeId}); err != nil {
		t.Fatal(err)
	}

	_, err = d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "small", VolumeCapabilities: mountCap,
		CapacityRange:       &csi.CapacityRange{RequiredBytes: 1 << 20},
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}}})
	wantCode(t, err, codes.OutOfRange, "smaller than")

	restored := createVolume(t, d, "restored", 0, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: snap.Snapshot.SnapshotId}}})
	if restored.CapacityBytes != 1<<30 {
		t.Errorf("restored capacity %d, want the snapshot's 1Gi", restored.CapacityBytes)
	}
	got := listing(t, d.volumePath(restored.VolumeId))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("restored tree differs\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	clone := createVolume(t, d, "clone", 2<<30, &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: restored.VolumeId}}})
	if got := listing(t, d.volumePath(clone.VolumeId)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cloned tree differs\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSnapshotReadyDelayAndFailure(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d.now = func() time.Time { return now }
	v := createVolume(t, d, "v", 1<<20, nil)

	resp, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "slow", SourceVolumeId: v.VolumeId, Parameters: map[string]string{"readyDelay": "30s"}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Snapshot.ReadyToUse {
		t.Fatal("snapshot with readyDelay 30s is ready at once")
	}
	_, err = d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "early", VolumeCapabilities: mountCap,
		VolumeContentSource: &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: resp.Snapshot.SnapshotId}}}})
	wantCode(t, err, codes.Unavailable, "not ready")

	now = now.Add(29 * time.Second)
	list, err := d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: resp.Snapshot.SnapshotId})
	if err != nil || len(list.Entries) != 1 || list.Entries[0].Snapshot.ReadyToUse {
		t.Fatalf("after 29s: %v %v, want one snapshot not ready", list, err)
	}
	now = now.Add(time.Second)
	list, err = d.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SnapshotId: resp.Snapshot.SnapshotId})
	if err != nil || len(list.Entries) != 1 || !list.Entries[0].Snapshot.ReadyToUse {
		t.Fatalf("after 30s: %v %v, want one snapshot ready", list, err)
	}

	_, err = d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "bad", SourceVolumeId: v.VolumeId, Parameters: map[string]string{"fail": "disk on fire"}})
	wantCode(t, err, codes.Internal, "disk on fire")
	_, err = d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "typo", SourceVolumeId: v.VolumeId, Parameters: map[string]string{"readyDelya": "1s"}})
	wantCode(t, err, codes.InvalidArgument, `unknown parameter "readyDelya"`)
}

func TestCapacityIsAccounted(t *testing.T) {
	d := newTestDriver(t, 3<<30)
	ctx := context.Background()
	createVolume(t, d, "a", 2<<30, nil)
	_, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "b", VolumeCapabilities: mountCap, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 30}})
	wantCode(t, err, codes.ResourceExhausted, "only 1073741824 of 3221225472 bytes are free")
	c, err := d.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil || c.AvailableCapacity != 1<<30 {
		t.Fatalf("GetCapacity = %v, %v; want 1Gi available", c, err)
	}
	createVolume(t, d, "c", 1<<30, nil)
}

func TestStateSurvivesRestart(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	v := createVolume(t, d, "v", 1<<20, nil)
	if _, err := d.CreateSnapshot(ctx, &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
	d2, err := New(d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The same name and size is the same volume; a snapshot of it is still listed.
	if again := createVolume(t, d2, "v", 1<<20, nil); again.VolumeId != v.VolumeId {
		t.Errorf("after restart CreateVolume(v) made %s, want the existing %s", again.VolumeId, v.VolumeId)
	}
	list, err := d2.ListSnapshots(ctx, &csi.ListSnapshotsRequest{SourceVolumeId: v.VolumeId})
	if err != nil || len(list.Entries) != 1 {
		t.Fatalf("after restart ListSnapshots = %v, %v; want one snapshot", list, err)
	}
}

func TestDeletePublishedVolumeFails(t *testing.T) {
	d := newTestDriver(t, 10<<30)
	ctx := context.Background()
	v := createVolume(t, d, "v", 1<<20, nil)
	target := filepath.Join(t.TempDir(), "target")
	ns := &nodeServer{d: d, node: &d.cfg.Nodes[0]}
	if _, err := ns.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: mountCap[0], Readonly: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(target, 0) })
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err == nil {
		t.Error("write into a read-only published volume succeeded")
	}
	_, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId})
	wantCode(t, err, codes.FailedPrecondition, "still published at "+target)
	if _, err := ns.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId}); err != nil {
		t.Fatal(err)
	}
}
