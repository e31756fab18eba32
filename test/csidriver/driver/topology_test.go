package driver

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

func topo(key, value string) *csi.Topology {
	return &csi.Topology{Segments: map[string]string{key: value}}
}

func snapSource(id string) *csi.VolumeContentSource {
	return &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
}

func createIn(t *testing.T, d *Driver, name string, src *csi.VolumeContentSource, where ...*csi.Topology) (*csi.Volume, error) {
	t.Helper()
	resp, err := d.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: name, VolumeCapabilities: mountCap,
		VolumeContentSource: src, AccessibilityRequirements: &csi.TopologyRequirement{Requisite: where, Preferred: where}})
	return resp.GetVolume(), err
}

// A local volume lives on the node the requirement names; its snapshot restores on that node only,
// and a request for another node fails with RESOURCE_EXHAUSTED (the provisioner then reschedules).
func TestLocalSnapshotRestoresOnItsNodeOnly(t *testing.T) {
	d := newTypedDriver(t, TypeLocal, 10<<30)
	key := d.topologyKey()
	v, err := createIn(t, d, "v", nil, topo(key, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := v.GetAccessibleTopology(); len(got) != 1 || got[0].Segments[key] != "b" {
		t.Fatalf("volume topology %v, want node b", got)
	}
	snap, err := d.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	_, err = createIn(t, d, "on-c", snapSource(snap.Snapshot.SnapshotId), topo(key, "c"))
	wantCode(t, err, codes.ResourceExhausted, "exists on node b only")
	r, err := createIn(t, d, "on-b", snapSource(snap.Snapshot.SnapshotId), topo(key, "c"), topo(key, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.GetAccessibleTopology(); len(got) != 1 || got[0].Segments[key] != "b" {
		t.Fatalf("restored volume topology %v, want node b", got)
	}
}

// A zonal volume's snapshot restores in any zone; a clone stays in its source's zone.
func TestZonalSnapshotRestoresAnywhereCloneStays(t *testing.T) {
	d := newTypedDriver(t, TypeZonal, 10<<30)
	key := d.topologyKey()
	v, err := createIn(t, d, "v", nil, topo(key, "zone-a"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := d.CreateSnapshot(context.Background(), &csi.CreateSnapshotRequest{Name: "s", SourceVolumeId: v.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	r, err := createIn(t, d, "r", snapSource(snap.Snapshot.SnapshotId), topo(key, "zone-b"))
	if err != nil || r.GetAccessibleTopology()[0].Segments[key] != "zone-b" {
		t.Fatalf("restore into zone-b: %v %v", r, err)
	}
	clone := &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: v.VolumeId}}}
	_, err = createIn(t, d, "clone", clone, topo(key, "zone-b"))
	wantCode(t, err, codes.ResourceExhausted, "exists on zone zone-a only")
	_, err = d.CreateVolume(context.Background(), &csi.CreateVolumeRequest{Name: "rwx", VolumeCapabilities: []*csi.VolumeCapability{{
		AccessType: mountCap[0].AccessType, AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER}}}})
	wantCode(t, err, codes.InvalidArgument, "one node at a time")
}

// A zonal volume attaches to one node of its zone at a time, and mounts only where it is attached.
func TestZonalAttachesToOneNodeOfItsZone(t *testing.T) {
	d := newTypedDriver(t, TypeZonal, 10<<30)
	ctx := context.Background()
	v, err := createIn(t, d, "v", nil, topo(d.topologyKey(), "zone-b"))
	if err != nil {
		t.Fatal(err)
	}
	pub := func(node string) error {
		_, err := d.ControllerPublishVolume(ctx, &csi.ControllerPublishVolumeRequest{VolumeId: v.VolumeId, NodeId: node, VolumeCapability: mountCap[0]})
		return err
	}
	wantCode(t, pub("a"), codes.FailedPrecondition, "node a is in zone zone-a")
	if err := pub("b"); err != nil {
		t.Fatal(err)
	}
	if err := pub("b"); err != nil {
		t.Fatalf("publishing again to the same node: %v", err)
	}
	wantCode(t, pub("c"), codes.FailedPrecondition, "already attached to node b")

	target := filepath.Join(t.TempDir(), "target")
	nodeC := &nodeServer{d: d, node: &d.cfg.Nodes[2]}
	_, err = nodeC.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: mountCap[0]})
	wantCode(t, err, codes.FailedPrecondition, "not attached to node c")
	nodeB := &nodeServer{d: d, node: &d.cfg.Nodes[1]}
	if _, err := nodeB.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target, VolumeCapability: mountCap[0]}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(target, 0) })
	if _, err := nodeB.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.VolumeId, TargetPath: target}); err != nil {
		t.Fatal(err)
	}
	_, err = d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: v.VolumeId})
	wantCode(t, err, codes.FailedPrecondition, "still attached to node b")
	if _, err := d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: v.VolumeId, NodeId: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := pub("c"); err != nil {
		t.Fatalf("after the detach from b, attach to c: %v", err)
	}
}

// A local volume mounts on its node only.
func TestLocalMountsOnItsNodeOnly(t *testing.T) {
	d := newTypedDriver(t, TypeLocal, 10<<30)
	v, err := createIn(t, d, "v", nil, topo(d.topologyKey(), "c"))
	if err != nil {
		t.Fatal(err)
	}
	nodeB := &nodeServer{d: d, node: &d.cfg.Nodes[1]}
	_, err = nodeB.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: v.VolumeId,
		TargetPath: filepath.Join(t.TempDir(), "target"), VolumeCapability: mountCap[0]})
	wantCode(t, err, codes.FailedPrecondition, "exists on node c only; this is node b")
	info, _ := nodeB.NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
	if info.GetAccessibleTopology().GetSegments()[d.topologyKey()] != "b" {
		t.Errorf("NodeGetInfo of b: %v", info)
	}
}
