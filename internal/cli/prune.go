package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/prune"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/removal"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// PruneOptions are the flags of `prune`.
type PruneOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams
	location    locationOptions
	output      outputOptions
	password    passwordOptions
	now         func() time.Time

	Policy            retention.Policy
	Selector          string
	IncludeNamespaces []string
	ExcludeNamespaces []string
	GroupBy           string
	IncompleteAfter   time.Duration
	DryRun            bool
	Maintenance       string
	Safety            string
	Prometheus        string

	cfg prune.Config
}

// NewPruneCmd builds `prune`.
func NewPruneCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PruneOptions{configFlags: flags, streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:   "prune [--from URL] [--keep-last N] [--keep-daily N] ... [--dry-run]",
		Short: "Remove the backups that TTLs and keep rules no longer keep, then maintain their repositories",
		Long: `prune removes, from a location, the backups whose TTL (create --ttl) has passed and those that
no keep rule keeps, then runs maintenance of every namespace repository that lost snapshots.

The keep rules are restic's: a backup kept by any rule stays; --keep-daily N keeps the newest
backup of each of the last N days that have one (and the oldest while count is left), and so
on; --keep-within keeps all within that span of the newest backup. Rules count per set of
namespaces (--group-by none: across the location). Failed backups take no keep slot. Without
any rule only expired TTLs and stale incomplete backups go. Backups without backup.json younger
than --incomplete-after are never touched: a create may still be writing them.

Removing a backup removes its files, its Kopia snapshots and the VolumeSnapshots snapshot mode
kept (this needs the cluster); if any of these fails, the backup stays and the next prune tries
again. Quick maintenance compacts indexes; the data itself is freed by full maintenance
(--maintenance full, or kubectl pvbackup repo maintain --full). One prune or maintenance at a
time per location: a second one fails at once, naming the one running.`,
		Example: fmt.Sprintf(examples(`
			# What would go with 7 daily, 4 weekly and 12 monthly backups kept?
			%[1]s prune --from s3://backups/prod --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run

			# Daily from CI: expired TTLs only, then full maintenance
			%[1]s prune --maintenance full`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	fs.IntVar(&o.Policy.Last, "keep-last", 0, "keep the newest N backups (-1: all)")
	fs.IntVar(&o.Policy.Hourly, "keep-hourly", 0, "keep the newest backup of each of the last N hours that have one")
	fs.IntVar(&o.Policy.Daily, "keep-daily", 0, "keep the newest backup of each of the last N days that have one")
	fs.IntVar(&o.Policy.Weekly, "keep-weekly", 0, "keep the newest backup of each of the last N ISO weeks that have one")
	fs.IntVar(&o.Policy.Monthly, "keep-monthly", 0, "keep the newest backup of each of the last N months that have one")
	fs.IntVar(&o.Policy.Yearly, "keep-yearly", 0, "keep the newest backup of each of the last N years that have one")
	fs.DurationVar(&o.Policy.Within, "keep-within", 0, "keep every backup taken within this span of the newest one (e.g. 72h)")
	fs.StringVarP(&o.Selector, "selector", "l", "", "only backups whose labels match")
	fs.StringSliceVar(&o.IncludeNamespaces, "include-namespaces", nil, "only backups all of whose namespaces match, globs allowed")
	fs.StringSliceVar(&o.ExcludeNamespaces, "exclude-namespaces", nil, "leave out backups with a namespace that matches")
	fs.StringVar(&o.GroupBy, "group-by", string(retention.GroupByNamespaces), "count the keep rules per set of namespaces (namespaces) or across the location (none)")
	fs.DurationVar(&o.IncompleteAfter, "incomplete-after", retention.DefaultIncompleteAfter, "a backup without backup.json is removed once its files are this old (younger ones may still be written)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the decisions and change nothing")
	fs.StringVar(&o.Maintenance, "maintenance", string(maintenance.Quick), "after removing: quick (compact indexes), full (also free the data) or none")
	fs.StringVar(&o.Safety, "safety", string(maintenance.SafetyFull), "full maintenance's margins: full (safe while backups run) or none (only when nothing else uses the location)")
	fs.StringVar(&o.Prometheus, "prometheus", "", "write node-exporter textfile metrics of this run to `FILE` (written whole, then renamed into place): last success time, duration, backups kept, removed and failed")
	return cmd
}

// Complete builds the configuration.
func (o *PruneOptions) Complete() error {
	o.location.complete()
	sel, err := labels.Parse(o.Selector)
	if err != nil {
		return fmt.Errorf("--selector %q: %w", o.Selector, err)
	}
	safety, err := maintenance.ParseSafety(o.Safety)
	if err != nil {
		return err
	}
	o.cfg = prune.Config{
		Options: retention.Options{Policy: o.Policy, Selector: sel, GroupBy: retention.Grouping(o.GroupBy),
			Namespaces:      selection.NamespaceFilter{Include: o.IncludeNamespaces, Exclude: o.ExcludeNamespaces},
			IncompleteAfter: o.IncompleteAfter},
		DryRun: o.DryRun, Maintenance: maintenance.Mode(o.Maintenance), Safety: safety,
	}
	return nil
}

// Validate checks the options without any I/O.
func (o *PruneOptions) Validate() error {
	p := o.Policy
	for _, f := range []struct {
		name string
		n    int
	}{{"keep-last", p.Last}, {"keep-hourly", p.Hourly}, {"keep-daily", p.Daily}, {"keep-weekly", p.Weekly}, {"keep-monthly", p.Monthly}, {"keep-yearly", p.Yearly}} {
		if f.n < -1 {
			return fmt.Errorf("--%s %d: use a count, or -1 for all", f.name, f.n)
		}
	}
	if p.Within < 0 || o.IncompleteAfter <= 0 {
		return fmt.Errorf("--keep-within and --incomplete-after must be positive")
	}
	switch retention.Grouping(o.GroupBy) {
	case retention.GroupByNamespaces, retention.GroupByNone:
	default:
		return fmt.Errorf("--group-by=%q: use namespaces or none", o.GroupBy)
	}
	switch maintenance.Mode(o.Maintenance) {
	case maintenance.Quick, maintenance.Full, prune.NoMaintenance:
	default:
		return fmt.Errorf("--maintenance=%q: use quick, full or none", o.Maintenance)
	}
	if err := o.cfg.Namespaces.Validate(); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// Run prunes and prints each decision with its reasons.
func (o *PruneOptions) Run(ctx context.Context) error {
	start := time.Now()
	res, err := o.run(ctx)
	if o.Prometheus != "" && !o.DryRun {
		o.writeMetrics(start, res, err)
	}
	return err
}

func (o *PruneOptions) run(ctx context.Context) (*prune.Result, error) {
	cat, closeFn, err := o.location.open(ctx)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	o.cfg.Now = o.now()
	repos := newLocationKeys(ctx, cat.Location(), o.password.File, o.streams.ErrOut).repos(o.location.URL)
	reporter := o.output.reporter(ctx, o.streams)
	d := prune.Deps{Catalog: cat, Progress: reporter,
		Removal:  removal.Deps{Repos: repos, DeleteKeptSnapshots: deleteKeptSnapshots(o.configFlags)},
		Maintain: maintenance.Deps{Repos: repos}}
	res, err := prune.Run(ctx, d, o.cfg)
	if res != nil {
		if perr := o.print(res); perr != nil {
			return res, perr
		}
	}
	if err != nil {
		return res, err
	}
	if res.Failed() {
		return res, fmt.Errorf("prune of %s: some backups or repositories failed (named above): %w", cat.Location(), ErrPartial)
	}
	return res, nil
}

func (o *PruneOptions) print(res *prune.Result) error {
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	w := o.streams.Out
	now := o.now()
	if len(res.Items) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No backups to decide on in %s.\n", res.Location)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if len(res.Items) > 0 {
		fmt.Fprintln(tw, "BACKUP\tNAMESPACES\tAGE\tSTATUS\tACTION\tWHY")
	}
	for _, it := range res.Items {
		action := string(it.Action)
		why := strings.Join(it.Reasons, "; ")
		if it.Action == retention.Remove && res.DryRun {
			action = "would remove"
		}
		if it.Error != "" {
			action, why = "remove failed", why+"; "+it.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable.Name(it.Name), abbreviate(it.Namespaces, 3), age(now.Sub(it.Time)), printable.Name(string(it.Status)), action, printable.Name(why))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	kept, removed, failed := res.Counts()
	suffix := "."
	if res.DryRun {
		suffix = " (dry run: nothing was changed)."
	}
	fmt.Fprintf(w, "%s: %s kept, %s, %d failed, %d not selected%s\n", res.Policy, progress.Plural(kept, "backup", "backups"), removedWord(removed, res.DryRun), failed, res.Ignored, suffix)
	return printMaintenance(w, res.Maintenance)
}

func removedWord(n int, dry bool) string {
	if dry {
		return fmt.Sprintf("%d would be removed", n)
	}
	return fmt.Sprintf("%d removed", n)
}

// printMaintenance is the per-repository summary of prune and repo maintain.
func printMaintenance(w io.Writer, rs []maintenance.RepoResult) error {
	if len(rs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "REPOSITORY\tMAINTENANCE\tBEFORE\tDELETED\tWRITTEN\tAFTER\tTIME\tERROR")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s (safety %s)\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", printable.Name("kopia/"+r.Namespace+"/"), r.Mode, r.Safety, blobs(r.Before), blobs(r.Deleted), blobs(r.Written), blobs(r.After), r.Seconds, orDash(r.Error))
	}
	return tw.Flush()
}

func blobs(s maintenance.BlobStats) string {
	return fmt.Sprintf("%d blobs, %s", s.Blobs, progress.Bytes(s.Bytes))
}
