// Command seaweedfs-env runs a command (the integration tests) beside one SeaweedFS started for
// the whole run, instead of one `weed mini` per test: every s3server.SeaweedFS call in the run
// creates its own fresh bucket on this server (PVBACKUP_TEST_S3_ENDPOINT, _ACCESS_KEY,
// _SECRET_KEY). A start costs seconds of a loaded machine's time, and eleven tests call it.
// `make integration`:
//
//	go run ./hack/seaweedfs-env --weed .local/bin/weed -- go test -tags integration ./...
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

func main() {
	weed := flag.String("weed", ".local/bin/weed", "SeaweedFS binary (hack/tools.sh seaweedfs)")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: seaweedfs-env [--weed PATH] -- COMMAND [ARG...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(*weed, flag.Args()))
}

// run starts SeaweedFS, runs args with its endpoint in the environment, stops SeaweedFS and
// returns the command's exit code.
func run(weed string, args []string) int {
	dir, err := os.MkdirTemp("", "pvbackup-weed-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "seaweedfs-env:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, stop, err := s3server.StartSeaweedFS(weed, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "seaweedfs-env: start SeaweedFS (%s; `hack/tools.sh seaweedfs` builds it): %v\n", weed, err)
		return 1
	}
	defer stop()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PVBACKUP_TEST_S3_ENDPOINT="+srv.Endpoint,
		"PVBACKUP_TEST_S3_ACCESS_KEY="+srv.AccessKey, "PVBACKUP_TEST_S3_SECRET_KEY="+srv.SecretKey)
	// Ctrl-C reaches the command from the terminal; this process outlives it to stop SeaweedFS.
	// A SIGTERM sent to this process alone is passed on.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "seaweedfs-env:", err)
		return 1
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGTERM {
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	err = cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "seaweedfs-env:", err)
		return 1
	}
}
