// Command kubectl-pvbackup backs up and restores Kubernetes applications to object storage.
package main

import (
	"os"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

func main() {
	ctx, stop := cli.SignalContext()
	err := cli.NewRootCmd(ctx, cli.StdStreams()).ExecuteContext(ctx)
	stop()
	os.Exit(cli.ExitCode(progress.Explain(ctx, err))) // "interrupted (Ctrl-C)", not "context canceled"
}
