package driver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
)

// TestSanity runs csi-sanity, the CSI spec's conformance suite, against the driver of each volume
// type: the node service on a node's endpoint, the controller service on the controller endpoint
// (as the sidecars use it). The zonal driver runs the ControllerPublish cases and the volume
// lifecycle with attach; the zonal and local drivers report topology, so sanity checks that
// NodeGetInfo reports it and provisions within it. It bind-mounts, so it needs root (as the
// cluster itself does).
//
// Ginkgo runs one suite per process, so each type runs in a process of its own (this test binary
// again, running TestSanityOfType).
func TestSanity(t *testing.T) {
	for _, typ := range []Type{TypeDir, TypeZonal, TypeLocal} {
		t.Run(string(typ), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestSanityOfType$", "-test.count=1")
			cmd.Env = append(os.Environ(), sanityTypeEnv+"="+string(typ))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("csi-sanity of the %s driver: %v\n%s", typ, err, out)
			}
		})
	}
}

const sanityTypeEnv = "PVBACKUP_CSI_SANITY_TYPE"

// TestSanityOfType is csi-sanity for the type in $PVBACKUP_CSI_SANITY_TYPE (run by TestSanity).
func TestSanityOfType(t *testing.T) {
	typ := Type(os.Getenv(sanityTypeEnv))
	if typ == "" {
		t.Skip("run by TestSanity, one process per volume type")
	}
	dir := t.TempDir()
	d := startDriver(t, Config{Type: typ, DataDir: filepath.Join(dir, "data"), Capacity: 1 << 40,
		ControllerEndpoint: filepath.Join(dir, "controller.sock"),
		Nodes: []Node{{ID: "node-1", Zone: "zone-a", Endpoint: filepath.Join(dir, "node-1.sock")},
			{ID: "node-2", Zone: "zone-b", Endpoint: filepath.Join(dir, "node-2.sock")}}})

	cfg := sanity.NewTestConfig()
	cfg.Address = d.cfg.Nodes[0].Endpoint
	cfg.ControllerAddress = d.cfg.ControllerEndpoint
	cfg.TargetPath = filepath.Join(dir, "target")
	cfg.StagingPath = filepath.Join(dir, "staging")
	cfg.TestVolumeSize = 16 << 20
	sanity.Test(t, cfg)
}

// startDriver runs a driver on sockets in a temporary directory until the test ends.
func startDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test.csi.pvbackup.io"
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
