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
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// NewListCmd builds `list`.
func NewListCmd(streams genericiooptions.IOStreams) *cobra.Command {
	var selector string
	cmd := newCatalogCmd(streams, "list [--from URL] [-l SELECTOR]", "List the backups in a location", `
		# List the backups in $PVBACKUP_LOCATION
		%[1]s list

		# List the backups labelled env=prod (create --labels env=prod)
		%[1]s list -l env=prod`, cobra.NoArgs, true, func(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
		sel, err := labels.Parse(selector)
		if err != nil {
			return fmt.Errorf("--selector %q: %w", selector, err)
		}
		return runList(ctx, o, cat, sel)
	})
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "label selector on the backups' labels (create --labels): only backups that match; incomplete backups have no labels and never match")
	return cmd
}

// selected reports whether e's manifest labels match sel.
func selected(e catalog.Entry, sel labels.Selector) bool {
	return sel.Empty() || (e.Manifest != nil && sel.Matches(labels.Set(e.Manifest.Labels)))
}

// runList streams the backups: one manifest is held at a time (catalog.Each), printed (-o) or
// turned into a table row of bounded cells, and dropped.
func runList(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog, sel labels.Selector) error {
	if o.output.Format != "" {
		return o.output.printEach(o.streams.Out, func(emit func(any) error) error {
			return cat.Each(ctx, func(e catalog.Entry) error {
				if !selected(e, sel) {
					return nil
				}
				return emit(e)
			})
		})
	}
	var rows []listRow
	now := o.now()
	err := cat.EachSummary(ctx, func(e catalog.Entry) error {
		if selected(e, sel) {
			rows = append(rows, newListRow(e, now))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		if sel.Empty() {
			fmt.Fprintf(o.streams.ErrOut, "No backups in %s.\n", cat.Location())
		} else {
			fmt.Fprintf(o.streams.ErrOut, "No backups in %s match %s.\n", cat.Location(), sel)
		}
		return nil
	}
	return printList(o.streams.Out, rows)
}

// listRow is one backup's row; reason says why it cannot be shown from its manifest.
type listRow struct {
	cells  []string
	reason string
}

// maxCell bounds a cell of the table: a backup.json written by hand may hold megabytes of
// labels or namespace names.
const maxCell = 200

// cell is s quoted (printable.Name) and bounded.
func cell(s string) string { return bounded(printable.Name(s)) }

// bounded cuts text already quoted at maxCell bytes.
func bounded(s string) string {
	if len(s) > maxCell {
		s = s[:maxCell] + "..."
	}
	return s
}

func newListRow(e catalog.Entry, now time.Time) listRow {
	m := e.Manifest
	if m == nil {
		since := e.Modified
		if e.Claim != nil && !e.Claim.StartTime.IsZero() {
			since = e.Claim.StartTime
		}
		return listRow{cells: []string{cell(e.Name), cell(string(e.Status)), age(now.Sub(since)), "-", "-", "-", progress.Bytes(e.Size), "-", "-"},
			reason: cell(oneLine(e.Error))}
	}
	// A backup.json no create writes (by hand, or damaged) may lack a status or a start time:
	// it is shown as such, its age from its files.
	status, reason, start := string(e.Status), "", m.StartTime
	if status == "" {
		status, reason = "Unknown", catalog.ManifestFile+" has no status"
	}
	if start.IsZero() {
		start = e.Modified
	}
	return listRow{cells: []string{cell(e.Name), cell(status), age(now.Sub(start)), expires(m, now), bounded(abbreviate(m.Namespaces, 3)),
		fmt.Sprint(m.Items), progress.Bytes(e.Size), volumeData(m), bounded(labelString(m.Labels))}, reason: reason}
}

// volumeData is the VOLUME DATA cell: the bytes of the files the movers backed up (what a
// restore brings back; the repository stores them deduplicated and compressed), "-" without any.
func volumeData(m *catalog.Manifest) string {
	var n int64
	for _, v := range m.Volumes {
		n += v.Bytes
	}
	if n == 0 {
		return "-"
	}
	return progress.Bytes(n)
}

func printList(w io.Writer, rows []listRow) error {
	// The REASON column only appears when a backup cannot be shown from its manifest.
	reasons := false
	for _, r := range rows {
		reasons = reasons || r.reason != ""
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := "NAME\tSTATUS\tAGE\tEXPIRES\tNAMESPACES\tOBJECTS\tARCHIVE\tVOLUME DATA\tLABELS"
	if reasons {
		header += "\tREASON"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		line := strings.Join(r.cells, "\t")
		if reasons {
			line += "\t" + orDash(r.reason)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
