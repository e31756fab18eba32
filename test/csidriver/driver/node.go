package driver

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func wrapInt64(n int64) *wrapperspb.Int64Value { return wrapperspb.Int64(n) }

// nodeServer is the node service of one node.
type nodeServer struct {
	csi.UnimplementedNodeServer
	d    *Driver
	node *Node
}

func (ns *nodeServer) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{NodeId: ns.node.ID, AccessibleTopology: ns.d.nodeTopology(ns.node)}, nil
}

// reachable says why volume v cannot be mounted on this node, or nil: a zonal volume must be in
// the node's zone and attached to it, a local volume must live on it. Callers hold d.mu.
func (ns *nodeServer) reachable(v *volume, publishContext map[string]string) error {
	switch ns.d.cfg.Type {
	case TypeZonal:
		if _, ok := v.Attached[ns.node.ID]; !ok {
			return errf(codes.FailedPrecondition, "volume %s (zone %s) is not attached to node %s (attached to: %s): ControllerPublishVolume first",
				v.ID, v.Zone, ns.node.ID, orNone(sortedKeys(v.Attached)))
		}
		if n := publishContext[PublishContextNode]; n != "" && n != ns.node.ID {
			return errf(codes.InvalidArgument, "publish context says volume %s was attached to node %s, this is node %s", v.ID, n, ns.node.ID)
		}
	case TypeLocal:
		if v.Node != ns.node.ID {
			return errf(codes.FailedPrecondition, "volume %s exists on node %s only; this is node %s", v.ID, v.Node, ns.node.ID)
		}
	}
	return nil
}

func (ns *nodeServer) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{}, nil
}

// NodePublishVolume bind-mounts the volume's directory at the target path (read-only if asked).
func (ns *nodeServer) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	case req.GetTargetPath() == "":
		return nil, errf(codes.InvalidArgument, "target path is required")
	case req.GetVolumeCapability() == nil:
		return nil, errf(codes.InvalidArgument, "volume capability is required")
	}
	d := ns.d
	if err := d.checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	target, readonly := req.GetTargetPath(), req.GetReadonly()

	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.st.Volumes[req.GetVolumeId()]
	if v == nil {
		return nil, errf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	if err := ns.reachable(v, req.GetPublishContext()); err != nil {
		return nil, err
	}
	mounted, err := isMountPoint(target)
	if err != nil {
		return nil, errf(codes.Internal, "check %s: %v", target, err)
	}
	if mounted {
		ro, published := v.Published[target]
		if !published {
			return nil, errf(codes.AlreadyExists, "target %s is already a mount point of something else", target)
		}
		if ro != readonly {
			return nil, errf(codes.AlreadyExists, "volume %s is already published at %s with readonly=%t", v.ID, target, ro)
		}
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return nil, errf(codes.Internal, "create target %s: %v", target, err)
	}
	if err := unix.Mount(d.volumePath(v.ID), target, "", unix.MS_BIND, ""); err != nil {
		return nil, errf(codes.Internal, "bind mount %s: %v", target, err)
	}
	if readonly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			unix.Unmount(target, 0)
			return nil, errf(codes.Internal, "remount %s read-only: %v", target, err)
		}
	}
	if v.Published == nil {
		v.Published = map[string]bool{}
	}
	v.Published[target] = readonly
	if err := d.saveState(); err != nil {
		unix.Unmount(target, 0)
		delete(v.Published, target)
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (ns *nodeServer) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	case req.GetTargetPath() == "":
		return nil, errf(codes.InvalidArgument, "target path is required")
	}
	target, d := req.GetTargetPath(), ns.d
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.st.Volumes[req.GetVolumeId()]
	if v == nil {
		return nil, errf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	for {
		mounted, err := isMountPoint(target)
		if err != nil {
			return nil, errf(codes.Internal, "check %s: %v", target, err)
		}
		if !mounted {
			break
		}
		if err := unix.Unmount(target, 0); err != nil {
			return nil, errf(codes.Internal, "unmount %s: %v", target, err)
		}
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return nil, errf(codes.Internal, "remove target %s: %v", target, err)
	}
	if _, ok := v.Published[target]; ok {
		delete(v.Published, target)
		if err := d.saveState(); err != nil {
			return nil, errf(codes.Internal, "save state: %v", err)
		}
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// isMountPoint reports whether path is a mount point, from /proc/self/mountinfo (bind mounts of a
// directory on the same filesystem cannot be told apart by device numbers).
func isMountPoint(path string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		if unescapeMountPath(fields[4]) == path {
			return true, nil
		}
	}
	if err := s.Err(); err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	return false, nil
}

// unescapeMountPath undoes the octal escapes (\040 for space, ...) of /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
