// Package cli turns command lines into engine configurations and engine results into output.
// It is the only package that knows cobra.
package cli

import (
	"context"
	"errors"
	"os"
	"strings"

	"github.com/spf13/cobra"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"

	// Auth plugins (OIDC, exec, ...) so every kubeconfig that works with kubectl works here.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

// StdStreams returns the process's standard streams.
func StdStreams() genericiooptions.IOStreams {
	return genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
}

// NewRootCmd builds the command tree. ctx is cancelled on the first Ctrl-C.
func NewRootCmd(ctx context.Context, streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	quietCancelledWatches()
	kube.InstallWarnings(streams.ErrOut)
	root := &cobra.Command{
		Use:   "kubectl pvbackup",
		Short: "Back up and restore Kubernetes applications and their volume data to object storage",
		Long: `kubectl pvbackup backs up and restores Kubernetes applications - resource specs and
PersistentVolume data - to object storage, with no in-cluster components.

The repository password comes from $PVBACKUP_PASSWORD or --password-file; there is no
default. It unwraps the location's key, from which each namespace repository's key is derived
on this machine: a mover in namespace A gets A's key only (see docs/security.md). The location comes from --to/--from or $PVBACKUP_LOCATION.

Exit codes: 0 done; 1 failed (bad input, unreachable cluster or bucket, failed backup);
2 partially failed (some items failed, each named in the output; doctor: warnings only);
130 interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl pvbackup",
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	flags.AddFlags(root.PersistentFlags())
	profileFromEnv(root)

	root.AddCommand(
		NewCreateCmd(flags, streams),
		NewRestoreCmd(flags, streams),
		NewListCmd(streams),
		NewStatusCmd(streams),
		NewDescribeCmd(streams),
		NewLogsCmd(streams),
		NewDeleteCmd(flags, streams),
		NewCopyCmd(streams),
		NewLsCmd(streams),
		NewCatCmd(streams),
		NewCpCmd(streams),
		NewCleanupCmd(flags, streams),
		NewPruneCmd(flags, streams),
		NewVerifyCmd(streams),
		NewRepoCmd(streams),
		NewDoctorCmd(flags, streams),
		NewScheduleCmd(flags, streams),
		NewVersionCmd(flags, streams),
		NewImageCmd(streams),
		NewVeleroCmd(flags, streams),
		NewMoverCmd(ctx, streams),
	)
	return root
}

// quietCancelledWatches keeps client-go from logging "Failed to watch ... context canceled" each
// time a wait ends and stops its watch; other unhandled errors are still logged.
func quietCancelledWatches() {
	handlers := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{func(ctx context.Context, err error, msg string, kv ...interface{}) {
		if errors.Is(err, context.Canceled) || (err != nil && strings.Contains(err.Error(), "context canceled")) {
			return
		}
		for _, h := range handlers {
			h(ctx, err, msg, kv...)
		}
	}}
}
