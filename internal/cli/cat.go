package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/files"
)

// NewCatCmd builds `cat`.
func NewCatCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &filesOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "cat NAME NAMESPACE/PVC:/path/file",
		Short: "Print a file of a volume backup to stdout (no cluster needed)",
		Long: `cat streams one file of a backed-up volume to stdout from the backup location: any size, never held
in memory. It needs the bucket's credentials and the repository password only.`,
		Example: fmt.Sprintf(examples(`
			# Print a config file as it was in backup shop-1
			%[1]s cat shop-1 shop/data:/etc/app.conf

			# Save a large dump
			%[1]s cat shop-1 shop/db:/dumps/all.sql.gz > all.sql.gz`), "kubectl pvbackup"),
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context(), func(ctx context.Context, d files.Deps) error {
				_, err := files.Cat(ctx, d, o.Backup, o.Ref, o.streams.Out)
				return err
			})
		},
	}
	o.addFlags(cmd, false)
	return cmd
}
