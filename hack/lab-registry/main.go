// Command lab-registry serves the local lab's two OCI registries (go-containerregistry's
// pkg/registry, through test/registry): an open one and one that requires HTTP basic auth, each
// with its own blobs on disk, over plain HTTP. hack/cluster.sh starts it on the lab's gateway
// address, where the nodes' containerd pulls from it (hack/lab-registry.sh).
//
//	lab-registry --listen 10.244.0.1:5000 --auth-listen 10.244.0.1:5001 --user pvbackup \
//	    --password-file FILE --dir /var/lib/pvbackup-cluster/registry
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/registry"
)

func main() {
	open := flag.String("listen", "", "address of the open registry (host:port)")
	auth := flag.String("auth-listen", "", "address of the registry that requires basic auth (host:port)")
	user := flag.String("user", "pvbackup", "user of the authenticated registry")
	passFile := flag.String("password-file", "", "file holding the password of the authenticated registry")
	dir := flag.String("dir", "", "directory for the blobs (open/ and auth/ below it)")
	flag.Parse()
	if err := run(*open, *auth, *user, *passFile, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "lab-registry:", err)
		os.Exit(1)
	}
}

func run(open, auth, user, passFile, dir string) error {
	if open == "" || auth == "" || passFile == "" || dir == "" {
		return errors.New("usage: lab-registry --listen ADDR --auth-listen ADDR --password-file FILE --dir DIR [--user NAME]")
	}
	b, err := os.ReadFile(passFile)
	if err != nil {
		return err
	}
	password := strings.TrimSpace(string(b))
	if password == "" {
		return fmt.Errorf("%s is empty", passFile)
	}
	for _, d := range []string{"open", "auth"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	servers := []*http.Server{
		server(open, registry.Options{Dir: filepath.Join(dir, "open"), Log: prefixed("open: ")}),
		server(auth, registry.Options{Dir: filepath.Join(dir, "auth"), User: user, Password: password, Log: prefixed("auth: ")}),
	}
	errs := make(chan error, len(servers))
	for _, s := range servers {
		l, err := net.Listen("tcp", s.Addr)
		if err != nil {
			return err
		}
		fmt.Printf("serving on http://%s\n", s.Addr)
		go func(s *http.Server) { errs <- s.Serve(l) }(s)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	select {
	case err := <-errs:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(sctx)
	}
	return nil
}

func server(addr string, o registry.Options) *http.Server {
	return &http.Server{Addr: addr, Handler: registry.New(o), ReadHeaderTimeout: 30 * time.Second}
}

type prefixWriter string

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := os.Stdout.Write(append([]byte(p), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}

func prefixed(p string) prefixWriter { return prefixWriter(p) }
