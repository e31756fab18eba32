// Command stores-env runs a command (the integration or e2e tests) beside one server of each
// object store, started for the whole run instead of one per test: SeaweedFS (s3://),
// fake-gcs-server (gs://) and Azurite (azblob://). Every s3server.SeaweedFS, stores.GCS and
// stores.Azure call in the run creates its own fresh bucket on them. The servers are named in the
// command's environment (PVBACKUP_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY,
// PVBACKUP_TEST_GCS_ENDPOINT, PVBACKUP_TEST_AZURE_ENDPOINT/_ACCOUNT/_KEY). A start costs seconds of
// a loaded machine's time, and dozens of tests call them. `make integration`:
//
//	go run ./hack/stores-env -- go test -tags integration ./...
//
// `make e2e` starts the GCS and Azure servers on the cluster's gateway address, which the plugin
// on this machine and the movers in pods both reach (the cluster serves S3 itself):
//
//	go run ./hack/stores-env --addr 10.244.0.1 --stores gcs,azure -- go test -tags e2e ./test/e2e/...
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

func main() {
	tools := s3server.ToolsDir()
	weed := flag.String("weed", tools+"/weed", "SeaweedFS binary (hack/tools.sh seaweedfs)")
	gcs := flag.String("fake-gcs", tools+"/fake-gcs-server", "fake-gcs-server binary (hack/tools.sh fakegcs)")
	azurite := flag.String("azurite", tools+"/azurite-blob", "Azurite's blob launcher (hack/tools.sh azurite)")
	addr := flag.String("addr", "127.0.0.1", "address the GCS and Azure servers listen on (SeaweedFS: loopback only)")
	which := flag.String("stores", "s3,gcs,azure", "which servers to start")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: stores-env [flags] -- COMMAND [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	env, stop, err := startAll(strings.Split(*which, ","), *weed, *gcs, *azurite, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stores-env:", err)
		os.Exit(1)
	}
	code := run(env, flag.Args())
	stop()
	os.Exit(code)
}

// startAll starts the named servers side by side and returns their environment and one stop for
// all. If one fails, those started are stopped.
func startAll(which []string, weed, gcs, azurite, addr string) ([]string, func(), error) {
	dir, err := os.MkdirTemp("", "pvbackup-stores-")
	if err != nil {
		return nil, nil, err
	}
	var (
		mu    sync.Mutex
		env   []string
		stops []func()
		errs  []error
		wg    sync.WaitGroup
	)
	add := func(e []string, stop func(), err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		env, stops = append(env, e...), append(stops, stop)
	}
	for _, w := range which {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch w {
			case "s3":
				s, stop, err := s3server.StartSeaweedFS(weed, mkdir(dir, "weed"))
				if err != nil {
					add(nil, nil, fmt.Errorf("start SeaweedFS (%s; `hack/tools.sh seaweedfs` builds it): %w", weed, err))
					return
				}
				add([]string{"PVBACKUP_TEST_S3_ENDPOINT=" + s.Endpoint, "PVBACKUP_TEST_S3_ACCESS_KEY=" + s.AccessKey, "PVBACKUP_TEST_S3_SECRET_KEY=" + s.SecretKey}, stop, nil)
			case "gcs":
				s, stop, err := stores.StartGCS(gcs, mkdir(dir, "gcs"), addr)
				if err != nil {
					add(nil, nil, fmt.Errorf("start fake-gcs-server (%s; `hack/tools.sh fakegcs` builds it): %w", gcs, err))
					return
				}
				add([]string{stores.EnvGCSEndpoint + "=" + s.Endpoint}, stop, nil)
			case "azure":
				s, stop, err := stores.StartAzurite(azurite, mkdir(dir, "azurite"), addr)
				if err != nil {
					add(nil, nil, fmt.Errorf("start Azurite (%s; `hack/tools.sh azurite` installs it): %w", azurite, err))
					return
				}
				add([]string{stores.EnvAzureEndpoint + "=" + s.Endpoint, stores.EnvAzureAccount + "=" + s.Account, stores.EnvAzureKey + "=" + s.Key}, stop, nil)
			default:
				add(nil, nil, fmt.Errorf("--stores: unknown store %q (s3, gcs, azure)", w))
			}
		}()
	}
	wg.Wait()
	stopAll := func() {
		for _, s := range stops {
			s()
		}
		_ = os.RemoveAll(dir)
	}
	if len(errs) > 0 {
		stopAll()
		return nil, nil, errors.Join(errs...)
	}
	return env, stopAll, nil
}

func mkdir(dir, name string) string {
	p := dir + "/" + name
	_ = os.MkdirAll(p, 0o700)
	return p
}

// run runs args with env added and returns its exit code.
func run(env, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	// Ctrl-C reaches the command from the terminal; this process outlives it to stop the servers.
	// A SIGTERM sent to this process alone is passed on.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "stores-env:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "stores-env:", err)
		return 1
	}
}
