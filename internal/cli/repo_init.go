package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/immutable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// RepoInitOptions are the flags of `repo init`.
type RepoInitOptions struct {
	streams      genericiooptions.IOStreams
	location     locationOptions
	password     passwordOptions
	ImmutableFor string
	Mode         string

	lock *store.Lock
	pw   string
}

func newRepoInitCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &RepoInitOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "init [--to URL] [--immutable-for 30d [--mode compliance|governance]]",
		Short: "Prepare a new location: its key and, with --immutable-for, object lock on everything written to it",
		Long: `Prepare a new backup location: write its key (what the first create would do) and, with
--immutable-for, make it immutable.

An immutable location writes every object with an S3 Object Lock for the given period: the
manifests, archives and logs of backups, the location key, and every blob of the volume data
repositories (Kopia's repository retention). Until an object's lock ends, no credential - the
location's own included - can delete or overwrite that version of it: a delete only hides it
behind a delete marker, an overwrite only adds a newer version, and 'repo recover' brings the
location back. Full maintenance ('prune --maintenance full', 'repo maintain --full') extends the
locks of the volume data still in use; the period must outlast its interval by a day (48h at
least). 'delete' and 'prune' refuse a backup until its files unlock.

It is a decision for a new location, made once: the bucket must have been created with Object
Lock (S3 allows it only at creation), the location must be empty, and the command proves the
store enforces the lock before writing anything locked. Compliance mode (the default): nobody
can shorten or remove a lock. Governance mode: a principal allowed
s3:BypassGovernanceRetention can. Only s3:// locations can be made immutable; file://, gs://
and azblob:// are refused with the reason.`,
		Example: fmt.Sprintf(examples(`
			# A bucket created with Object Lock, every backup kept for at least 30 days
			%[1]s repo init --to 's3://backups-locked/prod?region=eu-west-1' --immutable-for 30d`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	o.location.addFlag(cmd.Flags(), "to")
	o.password.addFlag(cmd.Flags())
	cmd.Flags().StringVar(&o.ImmutableFor, "immutable-for", "", "lock every object for this long after it is written (30d, 720h); nothing can delete it before")
	cmd.Flags().StringVar(&o.Mode, "mode", "compliance", "object lock mode: compliance (nobody can shorten a lock) or governance (s3:BypassGovernanceRetention can)")
	return cmd
}

// Complete reads the location, the password and the lock.
func (o *RepoInitOptions) Complete() error {
	o.location.complete()
	var err error
	if o.pw, err = o.password.load(o.streams.ErrOut); err != nil {
		return err
	}
	if o.ImmutableFor == "" {
		return nil
	}
	o.lock = &store.Lock{}
	if o.lock.Period, err = immutable.ParsePeriod(o.ImmutableFor); err != nil {
		return err
	}
	o.lock.Mode, err = immutable.ParseMode(o.Mode)
	return err
}

// Validate checks the options without any I/O.
func (o *RepoInitOptions) Validate() error {
	if o.lock != nil {
		if err := immutable.Check(o.lock); err != nil {
			return err
		}
	}
	return o.location.validate()
}

// Run prepares the location.
func (o *RepoInitOptions) Run(ctx context.Context) error {
	loc, err := store.Open(ctx, o.location.URL)
	if err != nil {
		return err
	}
	defer loc.Close()
	if o.lock == nil {
		if _, err := keyring.Create(ctx, loc, o.pw); err != nil {
			return err
		}
		fmt.Fprintf(o.streams.Out, "Location %s is ready (its key is %s).\n", loc, keyring.KeyFile)
		return nil
	}
	if err := immutable.Init(ctx, loc, o.lock, o.pw); err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "Location %s is immutable: every object is locked (%s) for %s after it is written.\n", loc, o.lock.Mode, o.lock.Period)
	fmt.Fprintf(o.streams.Out, "  Run full maintenance at least every %s (prune --maintenance full) so that the volume data in use stays locked.\n", (o.lock.Period - 24*time.Hour).Round(time.Hour))
	return nil
}
