package driver

import (
	"context"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// PublishContextNode is the publish context key ControllerPublishVolume sets to the node the
// volume was attached to (the kubelet passes it back in NodePublishVolume).
const PublishContextNode = "attachedTo"

// ControllerPublishVolume attaches a zonal volume to a node of its zone, like a cloud disk: to one
// node at a time (FAILED_PRECONDITION naming the node it is attached to).
func (d *Driver) ControllerPublishVolume(_ context.Context, req *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if d.cfg.Type != TypeZonal {
		return nil, errf(codes.Unimplemented, "%s volumes are not attached", d.cfg.Type)
	}
	switch {
	case req.GetVolumeId() == "":
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	case req.GetNodeId() == "":
		return nil, errf(codes.InvalidArgument, "node ID is required")
	case req.GetVolumeCapability() == nil:
		return nil, errf(codes.InvalidArgument, "volume capability is required")
	}
	if err := d.checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.st.Volumes[req.GetVolumeId()]
	if v == nil {
		return nil, errf(codes.NotFound, "volume %s not found", req.GetVolumeId())
	}
	n := d.node(req.GetNodeId())
	if n == nil {
		return nil, errf(codes.NotFound, "node %s is not served by this driver", req.GetNodeId())
	}
	resp := &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{PublishContextNode: n.ID}}
	if ro, ok := v.Attached[n.ID]; ok {
		if ro != req.GetReadonly() {
			return nil, errf(codes.AlreadyExists, "volume %s is already attached to node %s with readonly=%t", v.ID, n.ID, ro)
		}
		return resp, nil
	}
	if n.Zone != v.Zone {
		return nil, errf(codes.FailedPrecondition, "volume %s is in zone %s; node %s is in zone %s: a zonal volume attaches to nodes of its zone only", v.ID, v.Zone, n.ID, n.Zone)
	}
	if len(v.Attached) > 0 {
		return nil, errf(codes.FailedPrecondition, "volume %s is already attached to node %s: a zonal volume attaches to one node at a time", v.ID, strings.Join(sortedKeys(v.Attached), ", "))
	}
	if v.Attached == nil {
		v.Attached = map[string]bool{}
	}
	v.Attached[n.ID] = req.GetReadonly()
	if err := d.saveState(); err != nil {
		delete(v.Attached, n.ID)
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return resp, nil
}

// ControllerUnpublishVolume detaches a zonal volume from a node (from every node if none is named).
// Like a cloud's forced detach it does not wait for the node to unmount: the attach-detach
// controller asks only once the kubelet has unmounted, or after its timeout for a lost node.
func (d *Driver) ControllerUnpublishVolume(_ context.Context, req *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if d.cfg.Type != TypeZonal {
		return nil, errf(codes.Unimplemented, "%s volumes are not attached", d.cfg.Type)
	}
	if req.GetVolumeId() == "" {
		return nil, errf(codes.InvalidArgument, "volume ID is required")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.st.Volumes[req.GetVolumeId()]
	if v == nil || len(v.Attached) == 0 {
		return &csi.ControllerUnpublishVolumeResponse{}, nil // not attached anywhere: done
	}
	old := v.Attached
	if req.GetNodeId() == "" {
		v.Attached = nil
	} else {
		if _, ok := v.Attached[req.GetNodeId()]; !ok {
			return &csi.ControllerUnpublishVolumeResponse{}, nil
		}
		v.Attached = map[string]bool{}
		for k, ro := range old {
			if k != req.GetNodeId() {
				v.Attached[k] = ro
			}
		}
	}
	if err := d.saveState(); err != nil {
		v.Attached = old
		return nil, errf(codes.Internal, "save state: %v", err)
	}
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}
