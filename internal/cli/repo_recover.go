package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// RepoRecoverOptions are the flags of `repo recover`.
type RepoRecoverOptions struct {
	streams  genericiooptions.IOStreams
	location locationOptions
	output   outputOptions
	AsOf     string
	DryRun   bool

	asOf time.Time
}

func newRepoRecoverCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &RepoRecoverOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "recover --as-of TIME [--from URL] [--dry-run]",
		Short: "Bring a versioned (immutable) location back as it was at a time: deleted and overwritten objects return",
		Long: `Bring the location back as it was at --as-of, from the object versions its bucket keeps
(an immutable location's bucket is versioned, and its versions are locked).

Each object deleted since (its current version is a delete marker) or overwritten since gets its
version of that time copied back on top, locked again; each object created since is hidden behind a
delete marker. No version is ever deleted, so a recovery to the wrong time can be recovered from.
Needs s3:ListBucketVersions, s3:GetObjectVersion and s3:PutObject on the bucket. Choose a time
before the damage and after the last good backup; --dry-run lists what would change.`,
		Example: fmt.Sprintf(examples(`
			# What would come back as of this morning?
			%[1]s repo recover --from 's3://backups-locked/prod?region=eu-west-1' --as-of 2026-12-07T06:00:00Z --dry-run`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	o.location.addFlag(cmd.Flags(), "from")
	o.output.addFlag(cmd.Flags())
	cmd.Flags().StringVar(&o.AsOf, "as-of", "", "the time to go back to (RFC 3339, e.g. 2026-12-07T06:00:00Z)")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "list what would be brought back or hidden, change nothing")
	return cmd
}

// Complete reads the location and the time.
func (o *RepoRecoverOptions) Complete() error {
	o.location.complete()
	if o.AsOf == "" {
		return fmt.Errorf("--as-of is required: the time to bring the location back to (RFC 3339)")
	}
	var err error
	if o.asOf, err = time.Parse(time.RFC3339, o.AsOf); err != nil {
		return fmt.Errorf("--as-of %q: want RFC 3339, e.g. 2026-12-07T06:00:00Z", o.AsOf)
	}
	return nil
}

// Validate checks the options without any I/O.
func (o *RepoRecoverOptions) Validate() error {
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// Run recovers the location.
func (o *RepoRecoverOptions) Run(ctx context.Context) error {
	loc, err := store.Open(ctx, o.location.URL)
	if err != nil {
		return err
	}
	defer loc.Close()
	res, err := loc.Recover(ctx, o.asOf, o.DryRun)
	if res != nil {
		if o.output.Format != "" {
			if perr := o.output.print(o.streams.Out, res); perr != nil {
				return perr
			}
		} else {
			verb := map[bool]string{true: "would be", false: "were"}[o.DryRun]
			fmt.Fprintf(o.streams.Out, "%s as of %s: %s %s brought back, %d created since %s hidden, %d unchanged.\n",
				loc, res.AsOf.Format(time.RFC3339), progress.Plural(len(res.Restored), "object", "objects"), verb, len(res.Removed), verb, res.Unchanged)
		}
	}
	return err
}
