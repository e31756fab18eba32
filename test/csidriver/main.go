// Command csidriver is the project's CSI driver for its test cluster (see package driver).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/csidriver/driver"
)

func main() {
	var cfg driver.Config
	capacity := flag.String("capacity", "50Gi", "total capacity shared by all volumes (a Kubernetes quantity)")
	flag.StringVar(&cfg.Name, "drivername", "dir.csi.pvbackup.io", "CSI driver name")
	flag.StringVar(&cfg.NodeID, "nodeid", "", "node ID (the Kubernetes node name)")
	flag.StringVar(&cfg.Endpoint, "endpoint", "", "unix socket path for the CSI services")
	flag.StringVar(&cfg.DataDir, "datadir", "", "directory for volumes, snapshots and state")
	flag.StringVar(&cfg.RegistrationDir, "kubelet-registration-dir", "", "the kubelet's plugins_registry directory (empty: do not register)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(driver.Version)
		return
	}
	q, err := resource.ParseQuantity(*capacity)
	if err != nil {
		fmt.Fprintf(os.Stderr, "--capacity: %v\n", err)
		os.Exit(2)
	}
	cfg.Capacity = q.Value()
	d, err := driver.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
