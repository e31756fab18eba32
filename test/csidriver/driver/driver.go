// Package driver is a small CSI driver for the project's test cluster: directory-backed volumes,
// snapshots as tar files that outlive their source volume, volumes from snapshots and clones,
// bind-mount publishing, and its own kubelet plugin registration (no node-driver-registrar).
//
// One process serves one driver name and every node of the cluster: a controller endpoint for the
// provisioner and snapshotter sidecars, and one endpoint per node (identity, controller and that
// node's node service) registered with that node's kubelet. Its state is one JSON file, so every
// node sees the same volumes, attachments and snapshots. The driver's Type says what its volumes
// are like (see Type). Capacity is accounted (a configured total shared by all volumes), not
// enforced by the filesystem.
//
// VolumeSnapshotClass parameters understood by CreateSnapshot, for testing waits and error paths:
//
//	readyDelay: "20s"     the snapshot reports ready_to_use only this long after it was cut
//	fail: "some reason"   CreateSnapshot fails with codes.Internal and this message
package driver

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Version is the driver's vendor version.
const Version = "0.2.0"

// Config is how the driver runs.
type Config struct {
	Name string // CSI driver name, e.g. dir.csi.pvbackup.io
	Type Type   // what the volumes are like; empty is TypeDir
	// ControllerEndpoint is a unix socket serving the identity and controller services alone (for
	// the sidecars); empty: none (every node endpoint serves the controller service too).
	ControllerEndpoint string
	Nodes              []Node // the nodes served; at least one
	DataDir            string // where volumes, snapshots and state.json live
	Capacity           int64  // total bytes shared by all volumes
	Logger             *log.Logger
}

// Node is one node the driver serves.
type Node struct {
	ID       string // the Kubernetes node name
	Zone     string // its zone (the zonal driver's topology)
	Endpoint string // unix socket serving identity, controller and this node's node service
	// RegistrationDir is the node's kubelet plugins_registry directory; empty: no registration.
	RegistrationDir string
}

// Driver implements the CSI identity and controller services; nodeServer the node service of one node.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer

	cfg Config
	now func() time.Time // the clock; tests replace it

	listeners []endpoint
	mu        sync.Mutex
	st        state
}

// endpoint is a socket and what it serves.
type endpoint struct {
	l    net.Listener
	node *Node // nil: the controller endpoint
	reg  bool  // the kubelet registration socket of node
}

// New loads the driver's state from cfg.DataDir.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" || cfg.DataDir == "" || len(cfg.Nodes) == 0 {
		return nil, errors.New("driver name, data dir and at least one node are required")
	}
	if cfg.Type == "" {
		cfg.Type = TypeDir
	}
	if err := cfg.Type.validate(); err != nil {
		return nil, err
	}
	if cfg.Capacity <= 0 {
		return nil, errors.New("capacity must be positive")
	}
	seen := map[string]bool{}
	for _, n := range cfg.Nodes {
		if n.ID == "" || n.Endpoint == "" {
			return nil, fmt.Errorf("node %+v: an ID and an endpoint are required", n)
		}
		if cfg.Type == TypeZonal && n.Zone == "" {
			return nil, fmt.Errorf("node %s: the zonal driver needs its zone", n.ID)
		}
		if seen[n.ID] {
			return nil, fmt.Errorf("node %s is named twice", n.ID)
		}
		seen[n.ID] = true
	}
	if cfg.Logger == nil {
		cfg.Logger = log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds)
	}
	d := &Driver{cfg: cfg, now: time.Now}
	if err := d.loadState(); err != nil {
		return nil, err
	}
	return d, nil
}

// node returns the served node with this ID.
func (d *Driver) node(id string) *Node {
	for i := range d.cfg.Nodes {
		if d.cfg.Nodes[i].ID == id {
			return &d.cfg.Nodes[i]
		}
	}
	return nil
}

// Run listens and serves the CSI services (and the kubelet registration services if configured)
// until ctx is done.
func (d *Driver) Run(ctx context.Context) error {
	if err := d.Listen(); err != nil {
		return err
	}
	return d.Serve(ctx)
}

// Listen creates the sockets, so that clients can connect as soon as it returns.
func (d *Driver) Listen() error {
	add := func(path string, node *Node, reg bool) error {
		l, err := listenUnix(path)
		if err != nil {
			return err
		}
		d.listeners = append(d.listeners, endpoint{l: l, node: node, reg: reg})
		return nil
	}
	var err error
	if d.cfg.ControllerEndpoint != "" {
		err = add(d.cfg.ControllerEndpoint, nil, false)
	}
	for i := range d.cfg.Nodes {
		n := &d.cfg.Nodes[i]
		if err == nil {
			err = add(n.Endpoint, n, false)
		}
		if err == nil && n.RegistrationDir != "" {
			err = add(filepath.Join(n.RegistrationDir, d.cfg.Name+"-reg.sock"), n, true)
		}
	}
	if err != nil {
		for _, e := range d.listeners {
			e.l.Close()
		}
		d.listeners = nil
	}
	return err
}

// Serve serves on the sockets made by Listen until ctx is done.
func (d *Driver) Serve(ctx context.Context) error {
	errc := make(chan error, len(d.listeners))
	var servers []*grpc.Server
	for _, e := range d.listeners {
		srv := d.server(e)
		servers = append(servers, srv)
		go func(l net.Listener) { errc <- srv.Serve(l) }(e.l)
	}
	d.cfg.Logger.Printf("serving CSI %s (%s volumes) on %d sockets for %d nodes (data %s, capacity %d bytes)",
		d.cfg.Name, d.cfg.Type, len(d.listeners), len(d.cfg.Nodes), d.cfg.DataDir, d.cfg.Capacity)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, s := range servers {
		s.GracefulStop()
	}
	return err
}

// server is the gRPC server of one endpoint.
func (d *Driver) server(e endpoint) *grpc.Server {
	if e.reg {
		srv := grpc.NewServer()
		registerRegistration(srv, d, e.node)
		return srv
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls(e.node)))
	csi.RegisterIdentityServer(srv, d)
	csi.RegisterControllerServer(srv, d)
	if e.node != nil {
		csi.RegisterNodeServer(srv, &nodeServer{d: d, node: e.node})
	}
	return srv
}

func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	return net.Listen("unix", path)
}

func (d *Driver) logCalls(node *Node) grpc.UnaryServerInterceptor {
	where := "controller"
	if node != nil {
		where = node.ID
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		resp, err := handler(ctx, req)
		switch {
		case err != nil:
			d.cfg.Logger.Printf("[%s] %s %s: error: %v", where, method, protosanitizer.StripSecrets(req), err)
		case method != "Probe" && method != "NodeGetCapabilities" && method != "GetPluginInfo" && method != "GetPluginCapabilities":
			d.cfg.Logger.Printf("[%s] %s %s: %s", where, method, protosanitizer.StripSecrets(req), protosanitizer.StripSecrets(resp))
		}
		return resp, err
	}
}

// Identity service.

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.Name, VendorVersion: Version}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	caps := []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}
	if d.cfg.Type.hasTopology() {
		caps = append(caps, &csi.PluginCapability{
			Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS}},
		})
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: caps}, nil
}

func (d *Driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	for _, dir := range []string{"volumes", "snapshots"} {
		if _, err := os.Stat(filepath.Join(d.cfg.DataDir, dir)); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "data directory: %v", err)
		}
	}
	return &csi.ProbeResponse{}, nil
}

func errf(c codes.Code, format string, a ...any) error {
	return status.Error(c, fmt.Sprintf(format, a...))
}
