package driver

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// TestSanity runs csi-sanity, the CSI spec's conformance suite, against the driver on a unix
// socket. It bind-mounts, so it needs root (as the cluster itself does).
func TestSanity(t *testing.T) {
	dir := t.TempDir()
	d := startDriver(t, Config{DataDir: filepath.Join(dir, "data"), Capacity: 1 << 40})

	cfg := sanity.NewTestConfig()
	cfg.Address = d.cfg.Endpoint
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeSize = 16 << 20
	sanity.Test(t, cfg)
}

// startDriver runs a driver on a socket in a temporary directory until the test ends.
func startDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test.csi.pvbackup.io"
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node-1"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = filepath.Join(t.TempDir(), "csi.sock")
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Listen before the test connects: no race between the socket's creation and the first dial.
	if err := d.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("driver: %v", err)
		}
	})
	return d
}
