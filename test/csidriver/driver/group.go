package driver

import (
	"context"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The CSI GroupController service: group snapshots (VolumeGroupSnapshot) of the dir and zonal
// drivers. A group's member snapshots are cut while every process that can write to any member
// is frozen (see hold), so they are one point in time for all of them, as the CSI spec demands
// ("write-order consistency ... or fail if that's not possible"). The node-local driver offers no
// group snapshots, as most node-local drivers (TopoLVM, local PVs) do not.
//
// VolumeGroupSnapshotClass parameters:
//
//	fail: "some reason"   CreateVolumeGroupSnapshot fails with codes.Internal and this message

// group is a group snapshot: one snapshot per source volume, cut at one instant.
type group struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	SourceVolumeIDs []string          `json:"sourceVolumeIDs"` // sorted
	SnapshotIDs     []string          `json:"snapshotIDs"`     // of SourceVolumeIDs, in that order
	Parameters      map[string]string `json:"parameters,omitempty"`
	Created         time.Time         `json:"created"`
	// Held is how long the writers of the members were frozen for the cut.
	Held time.Duration `json:"held"`
}

// hasGroups: the types whose driver implements the GroupController service.
func (t Type) hasGroups() bool { return t == TypeDir || t == TypeZonal }

func (d *Driver) GroupControllerGetCapabilities(context.Context, *csi.GroupControllerGetCapabilitiesRequest) (*csi.GroupControllerGetCapabilitiesResponse, error) {
	return &csi.GroupControllerGetCapabilitiesResponse{Capabilities: []*csi.GroupControllerServiceCapability{{
		Type: &csi.GroupControllerServiceCapability_Rpc{Rpc: &csi.GroupControllerServiceCapability_RPC{
			Type: csi.GroupControllerServiceCapability_RPC_CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT,
		}},
	}}}, nil
}

// CreateVolumeGroupSnapshot cuts one snapshot of every source volume while their writers are held.
func (d *Driver) CreateVolumeGroupSnapshot(ctx context.Context, req *csi.CreateVolumeGroupSnapshotRequest) (*csi.CreateVolumeGroupSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, errf(codes.InvalidArgument, "name is required")
	}
	if len(req.GetSourceVolumeIds()) == 0 {
		return nil, errf(codes.InvalidArgument, "source volume IDs are required")
	}
	ids := slices.Sorted(slices.Values(req.GetSourceVolumeIds()))
	if len(slices.Compact(slices.Clone(ids))) != len(ids) {
		return nil, errf(codes.InvalidArgument, "source volume IDs %v name a volume twice", req.GetSourceVolumeIds())
	}
	params := req.GetParameters()
	if err := checkParameters(params, "fail"); err != nil {
		return nil, err
	}
	if msg, ok := params["fail"]; ok {
		return nil, errf(codes.Internal, "group snapshot failed as requested by the VolumeGroupSnapshotClass parameter fail: %s", msg)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range d.st.Groups {
		if g.Name != req.GetName() {
			continue
		}
		if !slices.Equal(g.SourceVolumeIDs, ids) || !maps.Equal(g.Parameters, params) {
			return nil, errf(codes.AlreadyExists, "group snapshot %q exists with source volumes %v and other parameters", g.Name, g.SourceVolumeIDs)
		}
		return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: d.csiGroup(g)}, nil
	}
	vols := make([]*volume, len(ids))
	for i, id := range ids {
		if vols[i] = d.st.Volumes[id]; vols[i] == nil {
			return nil, errf(codes.NotFound, "source volume %s not found", id)
		}
	}
	g, err := d.cutGroup(ctx, req.GetName(), vols, params)
	if err != nil {
		return nil, err
	}
	return &csi.CreateVolumeGroupSnapshotResponse{GroupSnapshot: d.csiGroup(g)}, nil
}

// cutGroup holds the writers of vols, cuts a snapshot of each, lets the writers go and records
// the group. Callers hold d.mu.
func (d *Driver) cutGroup(ctx context.Context, name string, vols []*volume, params map[string]string) (*group, error) {
	now := d.now().UTC()
	g := &group{ID: newID("group-"), Name: name, Parameters: params, Created: now}
	snaps := make([]*snapshot, len(vols))
	for i, v := range vols {
		snaps[i] = d.newSnapshot(g.ID+"/"+v.ID, v, now, 0)
		snaps[i].GroupID = g.ID
		g.SourceVolumeIDs = append(g.SourceVolumeIDs, v.ID)
		g.SnapshotIDs = append(g.SnapshotIDs, snaps[i].ID)
	}
	h, err := d.hold(ctx, vols)
	if err != nil {
		return nil, err
	}
	var cutErr error
	for i, v := range vols {
		if cutErr = d.cutSnapshot(v, snaps[i]); cutErr != nil {
			cutErr = errf(codes.Internal, "copy volume %s: %v", v.ID, cutErr)
			break
		}
	}
	g.Held, err = h.release()
	if cutErr == nil && err != nil {
		cutErr = errf(codes.Internal, "%v", err)
	}
	d.cfg.Logger.Printf("group snapshot %s (%s) of %d volumes: %s held for %s", g.ID, name, len(vols), h, g.Held)
	if cutErr == nil {
		for _, s := range snaps {
			d.st.Snapshots[s.ID] = s
		}
		d.st.Groups[g.ID] = g
		if err := d.saveState(); err != nil {
			cutErr = errf(codes.Internal, "save state: %v", err)
			delete(d.st.Groups, g.ID)
			for _, s := range snaps {
				delete(d.st.Snapshots, s.ID)
			}
		}
	}
	if cutErr != nil {
		for _, s := range snaps {
			os.Remove(d.snapshotPath(s))
		}
		return nil, cutErr
	}
	return g, nil
}

// csiGroup describes g and its members that still exist. Callers hold d.mu.
func (d *Driver) csiGroup(g *group) *csi.VolumeGroupSnapshot {
	out := &csi.VolumeGroupSnapshot{GroupSnapshotId: g.ID, CreationTime: timestamppb.New(g.Created), ReadyToUse: true}
	for _, id := range g.SnapshotIDs {
		if s := d.st.Snapshots[id]; s != nil {
			out.Snapshots = append(out.Snapshots, d.csiSnapshot(s))
			out.ReadyToUse = out.ReadyToUse && s.ready(d.now())
		}
	}
	return out
}

// checkMembers refuses snapshot IDs that are not members of g (the spec's "mismatch").
func checkMembers(g *group, ids []string) error {
	for _, id := range ids {
		if !slices.Contains(g.SnapshotIDs, id) {
			return errf(codes.InvalidArgument, "snapshot %s is not a member of group snapshot %s (members: %v)", id, g.ID, g.SnapshotIDs)
		}
	}
	return nil
}

func (d *Driver) GetVolumeGroupSnapshot(_ context.Context, req *csi.GetVolumeGroupSnapshotRequest) (*csi.GetVolumeGroupSnapshotResponse, error) {
	if req.GetGroupSnapshotId() == "" {
		return nil, errf(codes.InvalidArgument, "group snapshot ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.st.Groups[req.GetGroupSnapshotId()]
	if g == nil {
		return nil, errf(codes.NotFound, "group snapshot %s not found", req.GetGroupSnapshotId())
	}
	if err := checkMembers(g, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	return &csi.GetVolumeGroupSnapshotResponse{GroupSnapshot: d.csiGroup(g)}, nil
}

// DeleteVolumeGroupSnapshot deletes the group and every member snapshot left.
func (d *Driver) DeleteVolumeGroupSnapshot(_ context.Context, req *csi.DeleteVolumeGroupSnapshotRequest) (*csi.DeleteVolumeGroupSnapshotResponse, error) {
	if req.GetGroupSnapshotId() == "" {
		return nil, errf(codes.InvalidArgument, "group snapshot ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.st.Groups[req.GetGroupSnapshotId()]
	if g == nil {
		return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
	}
	if err := checkMembers(g, req.GetSnapshotIds()); err != nil {
		return nil, err
	}
	for _, id := range g.SnapshotIDs {
		s := d.st.Snapshots[id]
		if s == nil {
			continue
		}
		if err := os.Remove(d.snapshotPath(s)); err != nil && !os.IsNotExist(err) {
			return nil, errf(codes.Internal, "remove member snapshot %s: %v", id, err)
		}
		delete(d.st.Snapshots, id)
	}
	delete(d.st.Groups, g.ID)
	if err := d.saveState(); err != nil {
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.DeleteVolumeGroupSnapshotResponse{}, nil
}
