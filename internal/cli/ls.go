package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/files"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// filesOptions are what ls, cat and cp share: the location and the password, no cluster.
type filesOptions struct {
	streams  genericiooptions.IOStreams
	location locationOptions
	password passwordOptions
	output   outputOptions
	Backup   string
	Ref      files.Ref
	hasRef   bool
}

func (o *filesOptions) addFlags(cmd *cobra.Command, withOutput bool) {
	o.location.addFlag(cmd.Flags(), "from")
	o.password.addFlag(cmd.Flags())
	if withOutput {
		o.output.addFlag(cmd.Flags())
	}
}

// complete reads NAME and an optional NAMESPACE/PVC[:/path].
func (o *filesOptions) complete(args []string) error {
	o.location.complete()
	o.Backup = args[0]
	if len(args) > 1 {
		r, err := files.ParseRef(args[1])
		if err != nil {
			return err
		}
		o.Ref, o.hasRef = r, true
	}
	return nil
}

func (o *filesOptions) validate() error {
	if err := catalog.ValidateName(o.Backup); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// run opens the location and calls fn with the engine's dependencies.
func (o *filesOptions) run(ctx context.Context, fn func(context.Context, files.Deps) error) error {
	cat, closeFn, err := o.location.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	return fn(ctx, files.Deps{Manifests: cat, Repos: newLocationKeys(ctx, cat.Location(), o.password.File, o.streams.ErrOut).repos(o.location.URL)})
}

// LsOptions are the flags of `ls`.
type LsOptions struct {
	filesOptions
	Long, Recursive bool
}

// NewLsCmd builds `ls`.
func NewLsCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &LsOptions{filesOptions: filesOptions{streams: streams}}
	cmd := &cobra.Command{
		Use:   "ls NAME [NAMESPACE/PVC[:/path]] [-l] [-R]",
		Short: "List the volumes of a backup, or the files inside one (no cluster needed)",
		Long: `ls reads the backup location only: it works from any machine with the bucket's credentials and the
repository password, also after the cluster is gone. Without a volume it lists the backup's volumes
(and needs no password); with one it lists a directory of it (mode, owner, size, time with -l).`,
		Example: fmt.Sprintf(examples(`
			# The volumes of backup shop-1
			%[1]s ls shop-1

			# A directory of volume shop/data, long format, recursively
			%[1]s ls shop-1 shop/data:/var/lib -l -R`), "kubectl pvbackup"),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(args); err != nil {
				return err
			}
			if err := o.validate(); err != nil {
				return err
			}
			return o.run(cmd.Context(), o.Run)
		},
	}
	o.addFlags(cmd, true)
	cmd.Flags().BoolVarP(&o.Long, "long", "l", false, "mode, owner, size and modification time of each entry")
	cmd.Flags().BoolVarP(&o.Recursive, "recursive", "R", false, "list directories inside, to the bottom")
	return cmd
}

// Run lists volumes or entries.
func (o *LsOptions) Run(ctx context.Context, d files.Deps) error {
	if !o.hasRef {
		vols, err := files.Volumes(ctx, d, o.Backup)
		if err != nil {
			return err
		}
		if o.output.Format != "" {
			return o.output.print(o.streams.Out, vols)
		}
		tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "VOLUME\tMODE\tSTATUS\tFILES\tSIZE\tDATA")
		for _, v := range vols {
			data := "-"
			switch {
			case v.KopiaSnapshot != "":
				data = "Kopia snapshot " + printable.Name(v.KopiaSnapshot)
			case v.VolumeSnapshot != "":
				data = "VolumeSnapshot " + printable.Name(v.VolumeSnapshot) + " (in the cluster only)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", printable.Name(v.Namespace+"/"+v.PVC), printable.Name(v.Mode), printable.Name(v.Status), v.Files, progress.Bytes(v.Bytes), data)
		}
		return tw.Flush()
	}
	entries, err := files.List(ctx, d, files.ListConfig{Backup: o.Backup, Ref: o.Ref, Recursive: o.Recursive})
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, entries)
	}
	return printEntries(o.streams, entries, o.Long, o.Recursive)
}

func printEntries(streams genericiooptions.IOStreams, entries []files.Entry, long, full bool) error {
	tw := tabwriter.NewWriter(streams.Out, 0, 8, 1, ' ', 0)
	for _, e := range entries {
		name := printable.Name(e.Path)
		if !full {
			name = printable.Name(lastElem(e.Path))
		}
		if e.Target != "" && long {
			name += " -> " + printable.Name(e.Target)
		}
		if !long {
			fmt.Fprintln(tw, name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", e.Mode, e.UID, e.GID, e.Size, e.ModTime.Local().Format(time.DateTime), name)
	}
	return tw.Flush()
}

func lastElem(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}
