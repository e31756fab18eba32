package driver

import (
	"fmt"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// Type is what a driver's volumes are like.
type Type string

const (
	// TypeDir volumes are reachable from every node, like a network filesystem: no topology, no attach.
	TypeDir Type = "dir"
	// TypeZonal volumes are like cloud disks: each lives in one zone (topology key <name>/zone) and
	// is attached (ControllerPublishVolume) to one node at a time; snapshots restore in any zone.
	TypeZonal Type = "zonal"
	// TypeLocal volumes are node-local (like TopoLVM or local PVs): a volume and its snapshots exist
	// on one node (topology key <name>/node); a volume from a snapshot or a clone only on that node.
	TypeLocal Type = "local"
)

func (t Type) validate() error {
	switch t {
	case TypeDir, TypeZonal, TypeLocal:
		return nil
	}
	return fmt.Errorf("unknown volume type %q (dir, zonal or local)", string(t))
}

func (t Type) hasTopology() bool { return t == TypeZonal || t == TypeLocal }

// TopologyKey is the topology segment key of a driver of type t named name: topology.<name>/zone
// for zonal drivers, topology.<name>/node for local ones, "" for dir drivers. The kubelet labels
// each node with it; provisioned volumes carry it in their PV's node affinity.
func TopologyKey(t Type, name string) string {
	switch t {
	case TypeZonal:
		return "topology." + name + "/zone"
	case TypeLocal:
		return "topology." + name + "/node"
	}
	return ""
}

func (d *Driver) topologyKey() string { return TopologyKey(d.cfg.Type, d.cfg.Name) }

// nodeTopology is the topology a node reports in NodeGetInfo (nil for dir drivers).
func (d *Driver) nodeTopology(n *Node) *csi.Topology {
	switch d.cfg.Type {
	case TypeZonal:
		return &csi.Topology{Segments: map[string]string{d.topologyKey(): n.Zone}}
	case TypeLocal:
		return &csi.Topology{Segments: map[string]string{d.topologyKey(): n.ID}}
	}
	return nil
}

// volumeTopology is where a volume is accessible from (nil: everywhere).
func (d *Driver) volumeTopology(v *volume) []*csi.Topology {
	switch d.cfg.Type {
	case TypeZonal:
		return []*csi.Topology{{Segments: map[string]string{d.topologyKey(): v.Zone}}}
	case TypeLocal:
		return []*csi.Topology{{Segments: map[string]string{d.topologyKey(): v.Node}}}
	}
	return nil
}

// known reports whether value names a zone (zonal) or node (local) the driver serves.
func (d *Driver) known(value string) bool {
	for _, n := range d.cfg.Nodes {
		if (d.cfg.Type == TypeZonal && n.Zone == value) || (d.cfg.Type == TypeLocal && n.ID == value) {
			return true
		}
	}
	return false
}

// candidates are the zones (zonal) or nodes (local) a new volume may be placed in, best first:
// the preferred topologies, then the requisite ones, then (without requirements) every node's, in
// configuration order. Topologies that do not name a served zone or node are skipped.
func (d *Driver) candidates(req *csi.TopologyRequirement) (list []string, constrained bool) {
	key := d.topologyKey()
	seen := map[string]bool{}
	add := func(v string) {
		if v != "" && !seen[v] && d.known(v) {
			seen[v] = true
			list = append(list, v)
		}
	}
	for _, t := range req.GetPreferred() {
		add(t.GetSegments()[key])
	}
	for _, t := range req.GetRequisite() {
		add(t.GetSegments()[key])
	}
	if len(req.GetRequisite()) > 0 || len(req.GetPreferred()) > 0 {
		return list, true
	}
	for _, n := range d.cfg.Nodes {
		if d.cfg.Type == TypeZonal {
			add(n.Zone)
		} else {
			add(n.ID)
		}
	}
	return list, false
}

// place chooses the zone or node of a new volume. pinned is where the content source forces it
// ("" when it does not): a local snapshot or a local or zonal source volume.
func (d *Driver) place(req *csi.TopologyRequirement, pinned, why string) (string, error) {
	if !d.cfg.Type.hasTopology() {
		return "", nil // reachable from every node: requirements are met wherever it is
	}
	list, constrained := d.candidates(req)
	what := "zone"
	if d.cfg.Type == TypeLocal {
		what = "node"
	}
	if pinned != "" {
		if !constrained {
			return pinned, nil
		}
		for _, v := range list {
			if v == pinned {
				return pinned, nil
			}
		}
		return "", errf(codes.ResourceExhausted, "%s exists on %s %s only, which the topology requirement does not allow (it allows %s %s)",
			why, what, pinned, what, orNone(list))
	}
	if len(list) == 0 {
		return "", errf(codes.ResourceExhausted, "the topology requirement names no %s this driver serves (key %s)", what, d.topologyKey())
	}
	return list[0], nil
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// where is the zone (zonal) or node (local) of a volume, "" for dir volumes.
func (d *Driver) where(v *volume) string {
	switch d.cfg.Type {
	case TypeZonal:
		return v.Zone
	case TypeLocal:
		return v.Node
	}
	return ""
}
