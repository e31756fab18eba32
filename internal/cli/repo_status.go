package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// RepoStatusOptions are the flags of `repo status` and `repo list`.
type RepoStatusOptions struct {
	streams           genericiooptions.IOStreams
	location          locationOptions
	output            outputOptions
	password          passwordOptions
	IncludeNamespaces []string
	open              bool // status opens each repository; list reads the bucket only
	now               func() time.Time
}

// NewRepoStatusCmd builds `repo status`.
func NewRepoStatusCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newRepoStatusCmd(streams, true, "status [--from URL] [--include-namespaces NS,...]",
		"Show each namespace repository: size in the bucket, snapshots, last maintenance, maintenance owner", `
		# How big is each repository, and when was it last maintained?
		%[1]s repo status --from s3://backups/prod`)
}

// NewRepoListCmd builds `repo list`.
func NewRepoListCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newRepoStatusCmd(streams, false, "list [--from URL]",
		"List the namespace repositories of a location and their size in the bucket (no password needed)", `
		# Which namespaces have volume data in the location?
		%[1]s repo list`)
}

func newRepoStatusCmd(streams genericiooptions.IOStreams, open bool, use, short, example string) *cobra.Command {
	o := &RepoStatusOptions{streams: streams, open: open, now: time.Now}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: fmt.Sprintf(examples(example), "kubectl pvbackup"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.location.complete()
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	o.location.addFlag(cmd.Flags(), "from")
	o.output.addFlag(cmd.Flags())
	cmd.Flags().StringSliceVar(&o.IncludeNamespaces, "include-namespaces", nil, "repositories of these namespaces only, globs allowed (default all)")
	if open {
		o.password.addFlag(cmd.Flags())
	}
	return cmd
}

// Validate checks the options without any I/O.
func (o *RepoStatusOptions) Validate() error {
	if err := (selection.NamespaceFilter{Include: o.IncludeNamespaces}).Validate(); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// Run reports the repositories.
func (o *RepoStatusOptions) Run(ctx context.Context) error {
	loc, err := store.Open(ctx, o.location.URL)
	if err != nil {
		return err
	}
	defer loc.Close()
	d := maintenance.Deps{Location: loc, Repos: newLocationKeys(ctx, loc, o.password.File, o.streams.ErrOut).repos(o.location.URL)}
	sts, err := maintenance.Status(ctx, d, selection.NamespaceFilter{Include: o.IncludeNamespaces}, o.open)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, sts)
	}
	if len(sts) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No repositories in %s.\n", loc)
		return nil
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	if !o.open {
		fmt.Fprintln(tw, "NAMESPACE\tBLOBS\tSIZE")
		for _, s := range sts {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", printable.Name(s.Namespace), s.Size.Blobs, progress.Bytes(s.Size.Bytes))
		}
		return tw.Flush()
	}
	failed := 0
	fmt.Fprintln(tw, "NAMESPACE\tBLOBS\tSIZE\tSNAPSHOTS\tLAST MAINTENANCE\tLAST FULL\tOWNER\tFORMAT\tERROR")
	for _, s := range sts {
		if s.Error != "" {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", printable.Name(s.Namespace), s.Size.Blobs, progress.Bytes(s.Size.Bytes), s.Snapshots,
			ago(o.now(), s.LastMaintenance), ago(o.now(), s.LastFull), orDash(s.Owner), formatString(s.Format), orDash(s.Error))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if lock := loc.Lock(); lock != nil {
		fmt.Fprintf(o.streams.Out, "Immutable: every object is locked (%s) for %s after it is written; full maintenance extends the locks of the volume data in use, and must run at least every %s.\n",
			lock.Mode, lock.Period, (lock.Period - 24*time.Hour).Round(time.Hour))
		for _, s := range sts {
			if s.Error == "" && o.now().Sub(s.LastFull) > lock.Period-24*time.Hour {
				fmt.Fprintf(o.streams.Out, "  warning: kopia/%s/ had no full maintenance for longer than that: some of its volume data may have unlocked\n", s.Namespace)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d repositories could not be read (named above): %w", failed, ErrPartial)
	}
	return nil
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return age(now.Sub(t)) + " ago"
}

// formatString is a repository's format in one word: hash/encryption/splitter (read from the
// repository's own format blob, so quoted like everything else from the bucket).
func formatString(f *repo.Format) string {
	if f == nil || f.Hash == "" {
		return "-"
	}
	return printable.Name(f.Hash + "/" + f.Encryption + "/" + f.Splitter)
}
