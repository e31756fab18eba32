package cli

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/quiesce"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// CleanupOptions are the flags of `cleanup`.
type CleanupOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams
	output      outputOptions
	Backup      string
	DryRun      bool
}

// NewCleanupCmd builds `cleanup`.
func NewCleanupCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CleanupOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:   "cleanup [--backup NAME] [--dry-run]",
		Short: "Delete the temporary objects a killed or failed run left in the cluster",
		Long: `cleanup finds, in every namespace, the temporary objects kubectl pvbackup creates - mover Jobs
and their pods, temporary PVCs, VolumeSnapshots, Secrets - by their labels
` + volumes.LabelManagedBy + "=" + volumes.ManagedBy + ` and ` + volumes.LabelBackup + `=<backup>, and deletes them,
with the PVs and VolumeSnapshotContents behind them whatever their reclaim and deletion policies.
VolumeSnapshots kept by snapshot mode are not touched: ` + "`delete`" + ` removes them with their backup.
It also starts again, as they were, the workloads a killed in-place restore left stopped (they
carry the annotation ` + quiesce.AnnotationOriginal + `; with --backup, only those that backup's restores stopped),
and removes the label ` + volumes.LabelGroupRun + ` (and nothing else) from the claims a killed
--volume-groups=auto run labelled for its cut.`,
		Example: fmt.Sprintf(examples(`
			# See what a killed backup left behind
			%[1]s cleanup --backup shop-1 --dry-run

			# Remove everything any run left
			%[1]s cleanup`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&o.Backup, "backup", "", "only the objects of this backup (default: of every backup)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be deleted and delete nothing")
	o.output.addFlag(cmd.Flags())
	return cmd
}

// Validate checks the options without any I/O.
func (o *CleanupOptions) Validate() error {
	if o.Backup != "" {
		if err := catalog.ValidateName(o.Backup); err != nil {
			return err
		}
	}
	return o.output.validate()
}

// Run lists and deletes the leftovers.
func (o *CleanupOptions) Run(ctx context.Context) error {
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return err
	}
	objs, err := volumes.Leftovers(ctx, clients.Typed, clients.Snap, o.Backup)
	if err != nil {
		return err
	}
	groups, err := volumes.GroupLeftovers(ctx, clients.Discovery, clients.Dynamic, o.Backup)
	if err != nil {
		return err
	}
	// Workloads an in-place restore stopped and a killed plugin did not start again.
	stopped, err := quiesce.Stopped(ctx, clients.Typed, o.Backup)
	if err != nil {
		return err
	}
	labelled, err := volumes.LabelledClaims(ctx, clients.Typed, o.Backup)
	if err != nil {
		return err
	}
	var delErr error
	if !o.DryRun && len(objs)+len(groups)+len(stopped)+len(labelled) > 0 {
		// Deleting must finish even after Ctrl-C: it is what the user asked for.
		dctx, cancel := cleanup.Context(ctx, cleanup.Objects)
		defer cancel()
		// Groups after the temporary claims made from their members.
		delErr = errors.Join(volumes.Delete(dctx, clients.Typed, clients.Snap, objs),
			volumes.DeleteGroupSnapshots(dctx, clients.Snap, clients.Discovery, clients.Dynamic, groups), quiesce.Start(dctx, clients.Typed, stopped),
			volumes.Unlabel(dctx, clients.Typed, labelled))
	}
	objs = append(objs, groups...)
	if o.output.Format != "" {
		out := map[string]any{"dryRun": o.DryRun, "objects": objs}
		if len(stopped) > 0 {
			out["stoppedWorkloads"] = stopped
		}
		if len(labelled) > 0 {
			out["labelledClaims"] = labelled
		}
		if err := o.output.print(o.streams.Out, out); err != nil {
			return err
		}
		return delErr
	}
	if err := o.printText(objs, stopped, labelled); err != nil {
		return err
	}
	return delErr
}

// printText says which workloads were (or would be) started again, which claims unlabelled and
// which objects deleted.
func (o *CleanupOptions) printText(objs []volumes.Object, stopped []quiesce.Owner, labelled []volumes.LabelledClaim) error {
	for _, s := range stopped {
		verb := "Started again"
		if o.DryRun {
			verb = "Would start again"
		}
		fmt.Fprintf(o.streams.Out, "%s %s (stopped by an in-place restore; back to %s).\n", verb, s, s.Original)
	}
	for _, c := range labelled {
		verb := "Removed"
		if o.DryRun {
			verb = "Would remove"
		}
		fmt.Fprintf(o.streams.Out, "%s label %s=%s from PVC %s/%s (set for a killed run's automatic volume group).\n", verb, volumes.LabelGroupRun, printable.Name(c.Value), printable.Name(c.Namespace), printable.Name(c.Name))
	}
	if len(objs) == 0 {
		if len(stopped)+len(labelled) == 0 {
			fmt.Fprintln(o.streams.Out, "Nothing to clean up.")
		}
		return nil
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME")
	for _, x := range objs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", x.Kind, printable.Name(x.Namespace), printable.Name(x.Name))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "Deleted"
	if o.DryRun {
		verb = "Would delete"
	}
	fmt.Fprintf(o.streams.Out, "%s %s.\n", verb, progress.Plural(len(objs), "object", "objects"))
	return nil
}
