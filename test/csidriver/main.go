// Command csidriver is the project's CSI driver for its test cluster (see package driver): one
// process serves one driver name on every node of the cluster.
//
//	pvbackup-csi --drivername zonal.csi.pvbackup.io --type zonal --datadir DIR \
//	    --controller-endpoint /path/controller.sock \
//	    --attacher-server https://10.244.0.1:6443 --attacher-tls ca.crt,admin.crt,admin.key \
//	    --node name=node-a,zone=zone-a,endpoint=/path/a.sock,registration-dir=/kubelet-a/plugins_registry \
//	    --node name=node-b,zone=zone-b,endpoint=/path/b.sock,registration-dir=/kubelet-b/plugins_registry
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/csidriver/driver"
)

// nodeFlags collects --node flags.
type nodeFlags []driver.Node

func (f *nodeFlags) String() string { return fmt.Sprint(*f) }

func (f *nodeFlags) Set(s string) error {
	var n driver.Node
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want key=value", kv)
		}
		switch k {
		case "name":
			n.ID = v
		case "zone":
			n.Zone = v
		case "endpoint":
			n.Endpoint = v
		case "registration-dir":
			n.RegistrationDir = v
		default:
			return fmt.Errorf("unknown key %q (name, zone, endpoint, registration-dir)", k)
		}
	}
	*f = append(*f, n)
	return nil
}

func main() {
	var cfg driver.Config
	var nodes nodeFlags
	capacity := flag.String("capacity", "50Gi", "total capacity shared by all volumes (a Kubernetes quantity)")
	flag.StringVar(&cfg.Name, "drivername", "dir.csi.pvbackup.io", "CSI driver name")
	typ := flag.String("type", "dir", "volume type: dir (reachable from every node), zonal (one zone, attached to one node at a time) or local (one node)")
	flag.StringVar(&cfg.ControllerEndpoint, "controller-endpoint", "", "unix socket for the identity and controller services alone (the sidecars)")
	flag.Var(&nodes, "node", "a node served: name=NAME,zone=ZONE,endpoint=SOCKET[,registration-dir=KUBELET_PLUGINS_REGISTRY] (repeat per node)")
	flag.StringVar(&cfg.DataDir, "datadir", "", "directory for volumes, snapshots and state")
	server := flag.String("attacher-server", "", "zonal driver: answer its VolumeAttachments through this API server (empty: no attacher)")
	tlsFiles := flag.String("attacher-tls", "", "with --attacher-server: CA,CERT,KEY PEM files (the CA of the server, a client certificate and its key)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println(driver.Version)
		return
	}
	q, err := resource.ParseQuantity(*capacity)
	if err != nil {
		fatal(2, "--capacity: %v", err)
	}
	cfg.Capacity, cfg.Type, cfg.Nodes = q.Value(), driver.Type(*typ), nodes
	d, err := driver.New(cfg)
	if err != nil {
		fatal(1, "%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	if *server != "" {
		if cfg.Type != driver.TypeZonal {
			fatal(2, "--attacher-server: only zonal volumes are attached")
		}
		f := strings.Split(*tlsFiles, ",")
		if len(f) != 3 {
			fatal(2, "--attacher-tls %q: want CA,CERT,KEY", *tlsFiles)
		}
		api, err := driver.NewAPI(*server, f[0], f[1], f[2])
		if err != nil {
			fatal(1, "--attacher-tls: %v", err)
		}
		go func() { errc <- driver.NewAttacher(d, api).Run(ctx) }()
	}
	go func() { errc <- d.Run(ctx) }()
	if err := <-errc; err != nil {
		fatal(1, "%v", err)
	}
}

func fatal(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(code)
}
