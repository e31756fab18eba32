package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
)

// NewVeleroListCmd builds `velero list`.
func NewVeleroListCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &veleroReadOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "list --from-velero URL",
		Short: "List the backups in Velero's backup storage location",
		Example: fmt.Sprintf(examples(`
			# List the backups Velero keeps under prefix "prod" of bucket "velero-backups"
			%[1]s velero list --from-velero 's3://velero-backups/prod?region=eu-west-1'`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), o.list)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *veleroReadOptions) list(ctx context.Context, loc *velero.Location) error {
	entries, err := loc.List(ctx)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No Velero backups in %s.\n", loc)
		return nil
	}
	problems := false
	for _, e := range entries {
		problems = problems || e.Backup == nil
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	header := "NAME\tPHASE\tFORMAT\tSTARTED\tCOMPLETED\tITEMS\tERRORS\tWARNINGS\tEXPIRES"
	if problems {
		header += "\tPROBLEM"
	}
	fmt.Fprintln(tw, header)
	for _, e := range entries {
		b := e.Backup
		if b == nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n", printable.Name(e.Name), oneLine(e.Problem))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s", printable.Name(b.Name), orDash(b.Phase), orDash(b.FormatVersion),
			timeOrDash(b.Started), timeOrDash(b.Completed), b.ItemsBackedUp, b.Errors, b.Warnings, timeOrDash(b.Expires))
		if problems {
			fmt.Fprint(tw, "\t-")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
