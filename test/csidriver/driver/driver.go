// Package driver is a small CSI driver for the project's test cluster: directory-backed volumes,
// snapshots as tar files that outlive their source volume, volumes from snapshots and clones,
// bind-mount publishing, and its own kubelet plugin registration (no node-driver-registrar).
//
// It runs as one host process serving the identity, controller and node services on one socket.
// Capacity is accounted (a configured total shared by all volumes), not enforced by the filesystem.
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
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Version is the driver's vendor version.
const Version = "0.1.0"

// Config is how the driver runs.
type Config struct {
	Name     string // CSI driver name, e.g. dir.csi.pvbackup.io
	NodeID   string // the Kubernetes node name
	Endpoint string // unix socket path the CSI services listen on
	DataDir  string // where volumes, snapshots and state.json live
	Capacity int64  // total bytes shared by all volumes
	// RegistrationDir is the kubelet's plugins_registry directory; empty means no kubelet registration.
	RegistrationDir string
	Logger          *log.Logger
}

// Driver implements the CSI identity, controller and node services.
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	cfg Config
	now func() time.Time // the clock; tests replace it

	csiListener, regListener net.Listener
	mu                       sync.Mutex
	st                       state
}

// New loads the driver's state from cfg.DataDir.
func New(cfg Config) (*Driver, error) {
	if cfg.Name == "" || cfg.NodeID == "" || cfg.Endpoint == "" || cfg.DataDir == "" {
		return nil, errors.New("driver name, node ID, endpoint and data dir are required")
	}
	if cfg.Capacity <= 0 {
		return nil, errors.New("capacity must be positive")
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

// Run listens and serves the CSI services (and the kubelet registration service if configured)
// until ctx is done.
func (d *Driver) Run(ctx context.Context) error {
	if err := d.Listen(); err != nil {
		return err
	}
	return d.Serve(ctx)
}

// Listen creates the sockets, so that clients can connect as soon as it returns.
func (d *Driver) Listen() error {
	l, err := listenUnix(d.cfg.Endpoint)
	if err != nil {
		return err
	}
	d.csiListener = l
	if d.cfg.RegistrationDir != "" {
		sock := filepath.Join(d.cfg.RegistrationDir, d.cfg.Name+"-reg.sock")
		rl, err := listenUnix(sock)
		if err != nil {
			l.Close()
			return err
		}
		d.regListener = rl
	}
	return nil
}

// Serve serves on the sockets made by Listen until ctx is done.
func (d *Driver) Serve(ctx context.Context) error {
	csiSrv := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls))
	csi.RegisterIdentityServer(csiSrv, d)
	csi.RegisterControllerServer(csiSrv, d)
	csi.RegisterNodeServer(csiSrv, d)
	errc := make(chan error, 2)
	go func() { errc <- csiSrv.Serve(d.csiListener) }()
	d.cfg.Logger.Printf("serving CSI %s on %s (data %s, capacity %d bytes)", d.cfg.Name, d.cfg.Endpoint, d.cfg.DataDir, d.cfg.Capacity)

	var regSrv *grpc.Server
	if d.regListener != nil {
		regSrv = grpc.NewServer()
		registerapi.RegisterRegistrationServer(regSrv, &registration{d: d})
		go func() { errc <- regSrv.Serve(d.regListener) }()
		d.cfg.Logger.Printf("kubelet registration socket %s", d.regListener.Addr())
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if regSrv != nil {
		regSrv.Stop()
	}
	csiSrv.GracefulStop()
	return err
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

func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	resp, err := handler(ctx, req)
	switch {
	case err != nil:
		d.cfg.Logger.Printf("%s %s: error: %v", method, protosanitizer.StripSecrets(req), err)
	case method != "Probe" && method != "NodeGetCapabilities" && method != "GetPluginInfo":
		d.cfg.Logger.Printf("%s %s: %s", method, protosanitizer.StripSecrets(req), protosanitizer.StripSecrets(resp))
	}
	return resp, err
}

// registration is the kubelet's plugin registration service (what node-driver-registrar does).
type registration struct {
	registerapi.UnimplementedRegistrationServer
	d *Driver
}

func (r *registration) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{
		Type:              registerapi.CSIPlugin,
		Name:              r.d.cfg.Name,
		Endpoint:          r.d.cfg.Endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registration) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	if s.PluginRegistered {
		r.d.cfg.Logger.Printf("registered with the kubelet")
	} else {
		r.d.cfg.Logger.Printf("kubelet refused registration: %s", s.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// Identity service.

func (d *Driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: d.cfg.Name, VendorVersion: Version}, nil
}

func (d *Driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{{
		Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: csi.PluginCapability_Service_CONTROLLER_SERVICE}},
	}}}, nil
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
