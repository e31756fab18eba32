package driver

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultVolumeSize is the size of a volume whose request names no capacity.
const DefaultVolumeSize = 1 << 30

// reservedPrefix marks parameters that Kubernetes sidecars may add; they are accepted and ignored.
const reservedPrefix = "csi.storage.k8s.io/"

func (d *Driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		caps = append(caps, rpcCap(c))
	}
	if d.cfg.Type == TypeZonal {
		caps = append(caps, rpcCap(csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME),
			rpcCap(csi.ControllerServiceCapability_RPC_PUBLISH_READONLY))
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func rpcCap(c csi.ControllerServiceCapability_RPC_Type) *csi.ControllerServiceCapability {
	return &csi.ControllerServiceCapability{
		Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}},
	}
}

// checkCapabilities accepts filesystem (mount) volumes with any access mode, except that a zonal
// volume (a disk attached to one node at a time) takes single-node modes only. Block volumes are refused.
func (d *Driver) checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return errf(codes.InvalidArgument, "volume capabilities are required")
	}
	for _, c := range caps {
		if c.GetBlock() != nil {
			return errf(codes.InvalidArgument, "block volumes are not supported, only filesystem volumes")
		}
		if c.GetMount() == nil {
			return errf(codes.InvalidArgument, "access type is required (only mount is supported)")
		}
		if c.GetAccessMode() == nil || c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_UNKNOWN {
			return errf(codes.InvalidArgument, "access mode is required")
		}
		if d.cfg.Type == TypeZonal && multiNode(c.GetAccessMode().GetMode()) {
			return errf(codes.InvalidArgument, "access mode %s: a zonal volume attaches to one node at a time (single-node access modes only)", c.GetAccessMode().GetMode())
		}
	}
	return nil
}

func multiNode(m csi.VolumeCapability_AccessMode_Mode) bool {
	switch m {
	case csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_SINGLE_WRITER,
		csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER:
		return true
	}
	return false
}

func checkParameters(params map[string]string, known ...string) error {
	for k := range params {
		if strings.HasPrefix(k, reservedPrefix) {
			continue
		}
		ok := false
		for _, kk := range known {
			ok = ok || k == kk
		}
		if !ok {
			return errf(codes.InvalidArgument, "unknown parameter %q (known: %s)", k, strings.Join(known, ", "))
		}
	}
	return nil
}

func (d *Driver) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, errf(codes.InvalidArgument, "name is required")
	}
	if err := d.checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	if err := checkParameters(req.GetParameters()); err != nil {
		return nil, err
	}
	required, limit := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	if required < 0 || limit < 0 {
		return nil, errf(codes.InvalidArgument, "capacity range must not be negative")
	}
	if limit > 0 && required > limit {
		return nil, errf(codes.InvalidArgument, "required bytes %d exceed limit bytes %d", required, limit)
	}
	srcSnap := req.GetVolumeContentSource().GetSnapshot().GetSnapshotId()
	srcVol := req.GetVolumeContentSource().GetVolume().GetVolumeId()
	if req.GetVolumeContentSource() != nil && srcSnap == "" && srcVol == "" {
		return nil, errf(codes.InvalidArgument, "volume content source names neither a snapshot nor a volume")
	}

	d.mu.Lock()
	defer d.mu.Unlock()

	for _, v := range d.st.Volumes {
		if v.Name != req.GetName() {
			continue
		}
		if v.Capacity < required || (limit > 0 && v.Capacity > limit) {
			return nil, errf(codes.AlreadyExists, "volume %q exists with capacity %d, incompatible with the requested range", v.Name, v.Capacity)
		}
		if v.SourceSnapshotID != srcSnap || v.SourceVolumeID != srcVol {
			return nil, errf(codes.AlreadyExists, "volume %q exists with a different content source", v.Name)
		}
		return &csi.CreateVolumeResponse{Volume: d.csiVolume(v, req.GetVolumeContentSource())}, nil
	}

	src, err := d.contentSource(srcSnap, srcVol)
	if err != nil {
		return nil, err
	}
	size, err := d.volumeSize(required, limit, src.minSize)
	if err != nil {
		return nil, err
	}
	where, err := d.place(req.GetAccessibilityRequirements(), src.pinned, src.what)
	if err != nil {
		return nil, err
	}
	v := &volume{ID: newID("vol-"), Name: req.GetName(), Capacity: size, SourceSnapshotID: srcSnap, SourceVolumeID: srcVol, Created: d.now().UTC()}
	switch d.cfg.Type {
	case TypeZonal:
		v.Zone = where
	case TypeLocal:
		v.Node = where
	}
	if err := d.createVolume(v, src); err != nil {
		return nil, err
	}
	return &csi.CreateVolumeResponse{Volume: d.csiVolume(v, req.GetVolumeContentSource())}, nil
}

// source is a new volume's content source, resolved.
type source struct {
	snap    *snapshot
	vol     *volume
	minSize int64  // the smallest size the source allows
	pinned  string // the zone or node the source forces ("" if none)
	what    string // the source, for error messages
}

// contentSource resolves a snapshot or volume ID (either may be empty). Callers hold d.mu.
func (d *Driver) contentSource(srcSnap, srcVol string) (source, error) {
	var s source
	switch {
	case srcSnap != "":
		s.snap = d.st.Snapshots[srcSnap]
		if s.snap == nil {
			return s, errf(codes.NotFound, "snapshot %s not found", srcSnap)
		}
		if !s.snap.ready(d.now()) {
			return s, errf(codes.Unavailable, "snapshot %s is not ready to use yet", srcSnap)
		}
		// A zonal snapshot restores in any zone; a local one on its node only.
		s.minSize, s.pinned, s.what = s.snap.Size, s.snap.Node, "snapshot "+srcSnap+" (of a node-local volume)"
	case srcVol != "":
		s.vol = d.st.Volumes[srcVol]
		if s.vol == nil {
			return s, errf(codes.NotFound, "source volume %s not found", srcVol)
		}
		// A clone stays where its source is.
		s.minSize, s.pinned, s.what = s.vol.Capacity, d.where(s.vol), "source volume "+srcVol
	}
	return s, nil
}

// volumeSize is the size of a new volume for a capacity range and the source's minimum. Callers hold d.mu.
func (d *Driver) volumeSize(required, limit, minSize int64) (int64, error) {
	size := required
	if size == 0 {
		size = max(minSize, DefaultVolumeSize)
		if limit > 0 && size > limit {
			size = max(limit, minSize)
		}
	}
	if size < minSize {
		return 0, errf(codes.OutOfRange, "requested %d bytes, smaller than the %d bytes of the content source", size, minSize)
	}
	if limit > 0 && size > limit {
		return 0, errf(codes.OutOfRange, "the content source needs %d bytes, more than the limit of %d bytes", size, limit)
	}
	if free := d.cfg.Capacity - d.usedCapacity(); size > free {
		return 0, errf(codes.ResourceExhausted, "requested %d bytes, only %d of %d bytes are free", size, free, d.cfg.Capacity)
	}
	return size, nil
}

// createVolume makes v's directory, fills it from src and records v. Callers hold d.mu.
func (d *Driver) createVolume(v *volume, src source) error {
	path := d.volumePath(v.ID)
	if err := os.Mkdir(path, 0o755); err != nil {
		return errf(codes.Internal, "create volume directory: %v", err)
	}
	var err error
	switch {
	case src.snap != nil:
		err = d.restoreSnapshot(src.snap, path)
	case src.vol != nil:
		err = copyTree(d.volumePath(src.vol.ID), path)
	}
	if err != nil {
		os.RemoveAll(path)
		return errf(codes.Internal, "fill volume from content source: %v", err)
	}
	d.st.Volumes[v.ID] = v
	if err := d.saveState(); err != nil {
		delete(d.st.Volumes, v.ID)
		os.RemoveAll(path)
		return errf(codes.Internal, "save state: %v", err)
	}
	return nil
}

func (d *Driver) restoreSnapshot(s *snapshot, dir string) error {
	f, err := os.Open(d.snapshotPath(s.ID))
	if err != nil {
		return err
	}
	defer f.Close()
	return readTree(f, dir)
}

func (d *Driver) csiVolume(v *volume, src *csi.VolumeContentSource) *csi.Volume {
	return &csi.Volume{VolumeId: v.ID, CapacityBytes: v.Capacity, ContentSource: src, AccessibleTopology: d.volumeTopology(v)}
}

func (d *Driver) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.st.Volumes[req.GetVolumeId()]
	if v == nil {
		return &csi.DeleteVolumeResponse{}, nil
	}
	if len(v.Published) > 0 {
		paths := sortedKeys(v.Published)
		return nil, errf(codes.FailedPrecondition, "volume %s is still published at %s", v.ID, strings.Join(paths, ", "))
	}
	if len(v.Attached) > 0 {
		return nil, errf(codes.FailedPrecondition, "volume %s is still attached to node %s (ControllerUnpublishVolume first)", v.ID, strings.Join(sortedKeys(v.Attached), ", "))
	}
	if err := os.RemoveAll(d.volumePath(v.ID)); err != nil {
		return nil, errf(codes.Internal, "remove volume data: %v", err)
	}
	delete(d.st.Volumes, v.ID)
	if err := d.saveState(); err != nil {
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *Driver) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, errf(codes.InvalidArgument, "volume capabilities are required")
	}
	d.mu.Lock()
	_, ok := d.st.Volumes[req.GetVolumeId()]
	d.mu.Unlock()
	if !ok {
		return nil, errf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	if err := d.checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	if err := checkParameters(req.GetParameters()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
	}}, nil
}

func (d *Driver) GetCapacity(_ context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	if len(req.GetVolumeCapabilities()) > 0 {
		if err := d.checkCapabilities(req.GetVolumeCapabilities()); err != nil {
			return &csi.GetCapacityResponse{}, nil // no capacity for volumes the driver cannot create
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	free := d.cfg.Capacity - d.usedCapacity()
	return &csi.GetCapacityResponse{AvailableCapacity: free, MaximumVolumeSize: wrapInt64(free)}, nil
}

func (d *Driver) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, errf(codes.InvalidArgument, "name is required")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, errf(codes.InvalidArgument, "source volume ID is required")
	}
	params := req.GetParameters()
	if err := checkParameters(params, "readyDelay", "fail"); err != nil {
		return nil, err
	}
	var delay time.Duration
	if s, ok := params["readyDelay"]; ok {
		var err error
		if delay, err = time.ParseDuration(s); err != nil || delay < 0 {
			return nil, errf(codes.InvalidArgument, "parameter readyDelay %q is not a non-negative duration", s)
		}
	}
	if msg, ok := params["fail"]; ok {
		return nil, errf(codes.Internal, "snapshot failed as requested by the VolumeSnapshotClass parameter fail: %s", msg)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.st.Snapshots {
		if s.Name != req.GetName() {
			continue
		}
		if s.SourceVolumeID != req.GetSourceVolumeId() {
			return nil, errf(codes.AlreadyExists, "snapshot %q exists with source volume %s", s.Name, s.SourceVolumeID)
		}
		return &csi.CreateSnapshotResponse{Snapshot: d.csiSnapshot(s)}, nil
	}
	v := d.st.Volumes[req.GetSourceVolumeId()]
	if v == nil {
		return nil, errf(codes.NotFound, "source volume %s not found", req.GetSourceVolumeId())
	}
	now := d.now().UTC()
	// A local volume's snapshot stays on its node; a zonal volume's is regional, like a cloud's.
	s := &snapshot{ID: newID("snap-"), Name: req.GetName(), SourceVolumeID: v.ID, Node: v.Node, Size: v.Capacity, Created: now, ReadyAt: now.Add(delay)}
	if err := d.writeSnapshot(v, s); err != nil {
		return nil, errf(codes.Internal, "copy volume %s: %v", v.ID, err)
	}
	d.st.Snapshots[s.ID] = s
	if err := d.saveState(); err != nil {
		delete(d.st.Snapshots, s.ID)
		os.Remove(d.snapshotPath(s.ID))
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.CreateSnapshotResponse{Snapshot: d.csiSnapshot(s)}, nil
}

func (d *Driver) writeSnapshot(v *volume, s *snapshot) error {
	tmp := d.snapshotPath(s.ID) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = writeTree(f, d.volumePath(v.ID))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, d.snapshotPath(s.ID))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func (d *Driver) csiSnapshot(s *snapshot) *csi.Snapshot {
	return &csi.Snapshot{
		SnapshotId:     s.ID,
		SourceVolumeId: s.SourceVolumeID,
		SizeBytes:      s.Size,
		CreationTime:   timestamppb.New(s.Created),
		ReadyToUse:     s.ready(d.now()),
	}
}

func (d *Driver) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, errf(codes.InvalidArgument, "snapshot ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.st.Snapshots[req.GetSnapshotId()]; !ok {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if err := os.Remove(d.snapshotPath(req.GetSnapshotId())); err != nil && !os.IsNotExist(err) {
		return nil, errf(codes.Internal, "remove snapshot data: %v", err)
	}
	delete(d.st.Snapshots, req.GetSnapshotId())
	if err := d.saveState(); err != nil {
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (d *Driver) ListSnapshots(_ context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	if req.GetMaxEntries() < 0 {
		return nil, errf(codes.InvalidArgument, "max_entries must not be negative")
	}
	d.mu.Lock()
	var list []*snapshot
	for _, s := range d.st.Snapshots {
		if req.GetSnapshotId() != "" && s.ID != req.GetSnapshotId() {
			continue
		}
		if req.GetSourceVolumeId() != "" && s.SourceVolumeID != req.GetSourceVolumeId() {
			continue
		}
		list = append(list, s)
	}
	d.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })

	start := 0
	if t := req.GetStartingToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > len(list) {
			return nil, errf(codes.Aborted, "invalid starting token %q", t)
		}
		start = n
	}
	end := len(list)
	next := ""
	if m := int(req.GetMaxEntries()); m > 0 && start+m < end {
		end = start + m
		next = strconv.Itoa(end)
	}
	resp := &csi.ListSnapshotsResponse{NextToken: next}
	for _, s := range list[start:end] {
		resp.Entries = append(resp.Entries, &csi.ListSnapshotsResponse_Entry{Snapshot: d.csiSnapshot(s)})
	}
	return resp, nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
