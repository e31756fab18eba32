// Command kubectl-pvbackup backs up and restores Kubernetes applications to object storage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.NewRootCmd(ctx, cli.StdStreams()).ExecuteContext(ctx)
	stop()
	os.Exit(cli.ExitCode(err))
}
