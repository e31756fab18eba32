package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/summary"
)

// statusFlags are the flags of `status` beyond the location and -o.
type statusFlags struct {
	selector string
	groupBy  string
	prefixes []string
	maxAge   time.Duration
}

// NewStatusCmd builds `status`: per schedule, the newest Completed backup and the last failure,
// with an exit code a monitor acts on. It is a command of its own, not a flag of list: list shows
// what a location holds and exits 0 whatever it finds, status judges it (0 ok, 2 the newest run
// failed, 1 stale), as doctor does.
func NewStatusCmd(streams genericiooptions.IOStreams) *cobra.Command {
	var f statusFlags
	cmd := newCatalogCmd(streams, "status [--from URL] [--max-age DURATION]", "Tell per schedule whether backups keep happening: the newest Completed backup, its age, the last failure", `
		# Per --generate-name prefix: the newest Completed backup, its age, the last failure and why
		%[1]s status

		# Alert when the nightly backups stopped: exit 1 if none Completed within 26 hours
		%[1]s status --prefix nightly --max-age 26h -o json`, cobra.NoArgs, true, func(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
		return runStatus(ctx, o, cat, f)
	})
	cmd.Long = `status reads a location's catalog (no cluster, no password) and groups its backups by the
prefix of their generated name (create --generate-name) or, for backups named by hand and with
--group-by labels, by their label set. Per group it reports the newest Completed backup and its
age, the last Failed or PartiallyFailed one and its first error, and the newest backup of any
status (an Incomplete one is running, or was killed).

Exit codes: 0 every group ok; 2 a group's newest finished backup failed (a Completed one is
recent enough); 1 a group has no Completed backup within --max-age, or nothing matched: the
backups stopped.`
	fs := cmd.Flags()
	fs.StringVarP(&f.selector, "selector", "l", "", "only backups whose labels match (create --labels; a schedule's backups carry pvbackup.io/schedule=NAME)")
	fs.StringSliceVar(&f.prefixes, "prefix", nil, "only the groups of these --generate-name prefixes")
	fs.StringVar(&f.groupBy, "group-by", string(summary.ByPrefix), "prefix (generated names by their prefix, the others by label set) or labels (all by label set)")
	fs.DurationVar(&f.maxAge, "max-age", 0, "a group whose newest Completed backup finished longer ago than this (e.g. 26h for a nightly schedule) is stale: exit 1")
	return cmd
}

func (f statusFlags) options(now time.Time) (summary.Options, labels.Selector, error) {
	sel, err := labels.Parse(f.selector)
	if err != nil {
		return summary.Options{}, nil, fmt.Errorf("--selector %q: %w", f.selector, err)
	}
	switch summary.GroupBy(f.groupBy) {
	case summary.ByPrefix, summary.ByLabels:
	default:
		return summary.Options{}, nil, fmt.Errorf("--group-by=%q: use prefix or labels", f.groupBy)
	}
	if f.maxAge < 0 {
		return summary.Options{}, nil, fmt.Errorf("--max-age %s: must be positive", f.maxAge)
	}
	for _, p := range f.prefixes {
		if err := catalog.ValidatePrefix(p); err != nil {
			return summary.Options{}, nil, fmt.Errorf("--prefix: %w", err)
		}
	}
	return summary.Options{GroupBy: summary.GroupBy(f.groupBy), Prefixes: f.prefixes, MaxAge: f.maxAge, Now: now}, sel, nil
}

func runStatus(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog, f statusFlags) error {
	opts, sel, err := f.options(o.now().UTC().Truncate(time.Second))
	if err != nil {
		return err
	}
	// One manifest at a time (catalog.Each, whole: a failure's reason is in its errors).
	sum := summary.NewSummarizer(cat.Location().String(), opts)
	err = cat.Each(ctx, func(e catalog.Entry) error {
		if selected(e, sel) {
			sum.Add(e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rep := sum.Report()
	if o.output.Format != "" {
		err = o.output.print(o.streams.Out, rep)
	} else {
		err = printStatus(o.streams, rep)
	}
	if err != nil {
		return err
	}
	return statusError(rep)
}

// statusError is the exit code of a report: the worst group decides.
func statusError(rep *summary.Report) error {
	var stale, failed []string
	for _, g := range rep.Groups {
		switch g.State {
		case summary.Stale:
			stale = append(stale, cell(g.Group))
		case summary.Failed:
			failed = append(failed, cell(g.Group))
		}
	}
	switch rep.Worst() {
	case summary.Stale:
		if len(stale) == 0 {
			return fmt.Errorf("no backup in %s matches: %w", rep.Location, ErrStale)
		}
		return fmt.Errorf("no Completed backup within %s in %s: %w", rep.MaxAge, strings.Join(stale, ", "), ErrStale)
	case summary.Failed:
		return fmt.Errorf("the newest backup failed in %s (see lastFailure): %w", strings.Join(failed, ", "), ErrPartial)
	}
	return nil
}

func printStatus(streams genericiooptions.IOStreams, rep *summary.Report) error {
	if len(rep.Groups) == 0 {
		fmt.Fprintf(streams.ErrOut, "No backups in %s match.\n", rep.Location)
		return nil
	}
	tw := tabwriter.NewWriter(streams.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tBACKUPS\tLAST COMPLETED\tAGE\tLAST FAILURE\tAGE\tREASON")
	for _, g := range rep.Groups {
		done, doneAge := refCols(g.LastCompleted)
		failed, failedAge := refCols(g.LastFailure)
		reason := "-"
		if g.LastFailure != nil && g.LastFailure.Reason != "" {
			reason = printable.Name(g.LastFailure.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", cell(g.Group), g.State, g.Backups, done, doneAge, failed, failedAge, reason)
	}
	return tw.Flush()
}

func refCols(r *summary.Ref) (string, string) {
	if r == nil {
		return "-", "-"
	}
	return cell(r.Name), age(time.Duration(r.AgeSeconds) * time.Second)
}
