package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// CatalogOptions are the flags shared by list, describe, logs and delete: they read the
// bucket only, need no cluster and no password.
type CatalogOptions struct {
	streams  genericiooptions.IOStreams
	location locationOptions
	output   outputOptions
	now      func() time.Time
	Name     string
	named    bool // the command takes a name: "" is then invalid, not "no name"
}

func newCatalogCmd(streams genericiooptions.IOStreams, use, short, example string, args cobra.PositionalArgs, withOutput bool, run func(context.Context, *CatalogOptions, *catalog.Catalog) error) *cobra.Command {
	o := &CatalogOptions{streams: streams, now: time.Now}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Example: fmt.Sprintf(examples(example), "kubectl pvbackup"),
		Args:    args,
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				o.Name, o.named = a[0], true
			}
			o.location.complete()
			if err := o.Validate(); err != nil {
				return err
			}
			cat, closeFn, err := o.location.open(cmd.Context())
			if err != nil {
				return err
			}
			defer closeFn()
			return run(cmd.Context(), o, cat)
		},
	}
	o.location.addFlag(cmd.Flags(), "from")
	if withOutput {
		o.output.addFlag(cmd.Flags())
	}
	return cmd
}

// Validate checks the options without any I/O.
func (o *CatalogOptions) Validate() error {
	if o.named {
		if err := catalog.ValidateName(o.Name); err != nil {
			return err
		}
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	return o.location.validate()
}

// NewListCmd builds `list`.
func NewListCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newCatalogCmd(streams, "list [--from URL]", "List the backups in a location", `
		# List the backups in $PVBACKUP_LOCATION
		%[1]s list`, cobra.NoArgs, true, runList)
}

func runList(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
	entries, err := cat.List(ctx)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		if entries == nil {
			entries = []catalog.Entry{}
		}
		return o.output.print(o.streams.Out, entries)
	}
	if len(entries) == 0 {
		fmt.Fprintf(o.streams.ErrOut, "No backups in %s.\n", cat.Location())
		return nil
	}
	// The REASON column only appears when a backup cannot be shown from its manifest.
	reasons := false
	for _, e := range entries {
		reasons = reasons || e.Manifest == nil
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	header := "NAME\tSTATUS\tAGE\tNAMESPACES\tOBJECTS\tSIZE"
	if reasons {
		header += "\tREASON"
	}
	fmt.Fprintln(tw, header)
	for _, e := range entries {
		if e.Manifest == nil {
			since := e.Modified
			if e.Claim != nil {
				since = e.Claim.StartTime
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t%s\t%s\n", e.Name, e.Status, age(o.now().Sub(since)), progress.Bytes(e.Size), oneLine(e.Error))
			continue
		}
		m := e.Manifest
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s", e.Name, e.Status, age(o.now().Sub(m.StartTime)), abbreviate(m.Namespaces, 3), m.Items, progress.Bytes(e.Size))
		if reasons {
			fmt.Fprint(tw, "\t-")
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// oneLine keeps a reason on one table row.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func abbreviate(s []string, n int) string {
	if len(s) == 0 {
		return "-"
	}
	if len(s) <= n {
		return strings.Join(s, ",")
	}
	return fmt.Sprintf("%s,+%d", strings.Join(s[:n], ","), len(s)-n)
}

// NewDescribeCmd builds `describe`.
func NewDescribeCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newCatalogCmd(streams, "describe NAME [--from URL]", "Show what a backup holds and how it went", `
		# Show backup shop-1
		%[1]s describe shop-1`, cobra.ExactArgs(1), true, runDescribe)
}

func runDescribe(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
	m, err := cat.Manifest(ctx, o.Name)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, m)
	}
	return describeManifest(o.streams, m)
}

func describeManifest(streams genericiooptions.IOStreams, m *catalog.Manifest) error {
	w := streams.Out
	fmt.Fprintf(w, "Name:         %s\n", m.Name)
	fmt.Fprintf(w, "Status:       %s\n", m.Status)
	fmt.Fprintf(w, "Started:      %s\n", m.StartTime.Format(time.RFC3339))
	fmt.Fprintf(w, "Completed:    %s (%s)\n", m.CompletionTime.Format(time.RFC3339), m.CompletionTime.Sub(m.StartTime))
	fmt.Fprintf(w, "Tool:         kubectl-pvbackup %s, format %d\n", m.ToolVersion, m.FormatVersion)
	fmt.Fprintf(w, "Cluster:      %s (context %s, %s)\n", orDash(m.Cluster.Server), orDash(m.Cluster.Context), orDash(m.Cluster.ServerVersion))
	s := m.Selection
	fmt.Fprintf(w, "Selection:    namespaces %s, excluded %s; resources %s, excluded %s; labels %s; cluster resources %s\n",
		joinOr(s.IncludeNamespaces, "*"), joinOr(s.ExcludeNamespaces, "-"), joinOr(s.IncludeResources, "*"), joinOr(s.ExcludeResources, "-"), orDash(s.LabelSelector), s.IncludeClusterResources)
	fmt.Fprintf(w, "Namespaces:   %s\n", joinOr(m.Namespaces, "-"))
	fmt.Fprintf(w, "Archive:      %s, %s, encrypted (%s)\n", m.Archive.File, progress.Bytes(m.Archive.Size), m.Archive.Encrypted)
	fmt.Fprintf(w, "Objects:      %d\n", m.Items)
	totals := map[string]int{}
	for _, c := range m.Resources {
		totals[c.Resource] += c.Count
	}
	names := make([]string, 0, len(totals))
	for n := range totals {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, n := range names {
		fmt.Fprintf(tw, "  %s\t%d\n", n, totals[n])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(m.Volumes) > 0 {
		fmt.Fprintf(w, "Volumes:      %d\n", len(m.Volumes))
		if err := printVolumes(w, m.Volumes, false); err != nil {
			return err
		}
	}
	if len(m.Errors) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, e := range m.Errors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	if len(m.Warnings) > 0 {
		fmt.Fprintln(w, "Warnings:")
		for _, wn := range m.Warnings {
			fmt.Fprintf(w, "  %s\n", wn.Message)
		}
	}
	return nil
}

// NewLogsCmd builds `logs`.
func NewLogsCmd(streams genericiooptions.IOStreams) *cobra.Command {
	return newCatalogCmd(streams, "logs NAME [--from URL]", "Print what happened during a backup", `
		# Print the log of backup shop-1
		%[1]s logs shop-1`, cobra.ExactArgs(1), true, runLogs)
}

func runLogs(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
	if _, err := cat.Manifest(ctx, o.Name); err != nil && !errors.Is(err, catalog.ErrIncomplete) {
		return err
	}
	entries, err := cat.ReadLog(ctx, o.Name)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, entries)
	}
	for _, e := range entries {
		obj := ""
		switch {
		case e.Name != "" && e.Namespace != "":
			obj = fmt.Sprintf(" %s %s/%s:", e.Resource, e.Namespace, e.Name)
		case e.Name != "":
			obj = fmt.Sprintf(" %s %s:", e.Resource, e.Name)
		case e.Resource != "":
			obj = " " + e.Resource + ":"
		}
		fmt.Fprintf(o.streams.Out, "%s %-7s%s %s\n", e.Time.Format(time.RFC3339), e.Level, obj, e.Message)
	}
	return nil
}

// NewDeleteCmd builds `delete`.
func NewDeleteCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var pw passwordOptions
	var force bool
	cmd := newCatalogCmd(streams, "delete NAME [--from URL]", "Delete a backup: its files, its Kopia snapshots and the VolumeSnapshots it kept", `
		# Delete backup shop-1, complete or not (its Kopia snapshots need the password)
		%[1]s delete shop-1

		# Delete the files of a backup whose volume data cannot be deleted, leaving that data behind
		%[1]s delete shop-1 --force`, cobra.ExactArgs(1), false, func(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog) error {
		return runDelete(ctx, o, cat, deleteOptions{errOut: o.streams.ErrOut, flags: flags, passwordFile: pw.File, force: force})
	})
	pw.addFlag(cmd.Flags())
	cmd.Flags().BoolVar(&force, "force", false, "delete the backup's files even when its Kopia snapshots cannot be deleted (no password), it is still being written, or its backup.json cannot be trusted; what is left behind is listed")
	return cmd
}

type deleteOptions struct {
	errOut       io.Writer
	flags        *genericclioptions.ConfigFlags
	passwordFile string
	force        bool
}

// runDelete removes the backup's volume data first (Kopia snapshots: needs the password; kept
// VolumeSnapshots: needs the cluster), then its files. The Kopia snapshot IDs are only in
// backup.json: deleting it while they cannot be deleted orphans them for good, so that takes
// --force, as do a backup still being written and a backup.json that names another backup (a
// copied directory: its volume data is the original's).
func runDelete(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog, d deleteOptions) error {
	var notes []string
	m, err := cat.Manifest(ctx, o.Name)
	switch {
	case err == nil && m.Name != o.Name:
		if !d.force {
			return fmt.Errorf("backup %q in %s: its %s names backup %q: the directory is a copy or was tampered with, and deleting its volume data would delete %q's (to delete only this directory's files, pass --force)", o.Name, cat.Location(), catalog.ManifestFile, m.Name, m.Name)
		}
		notes = append(notes, fmt.Sprintf("warning: %s names backup %q: only this directory's files were deleted, not the volume data it points to", catalog.ManifestFile, m.Name))
	case err == nil && len(m.Volumes) > 0:
		vn, verr := deleteVolumeData(ctx, m, o.location.URL, d)
		if verr != nil {
			return verr
		}
		notes = append(notes, vn...)
	case errors.Is(err, catalog.ErrIncomplete):
		if cl, cerr := cat.ReadClaim(ctx, o.Name); cerr == nil && !d.force {
			return fmt.Errorf("backup %q in %s has no %s yet: it is being written by %s, or that run was interrupted (if no run is writing it, delete it with --force)", o.Name, cat.Location(), catalog.ManifestFile, cl)
		}
	case errors.Is(err, catalog.ErrUnreadable), errors.Is(err, catalog.ErrNewerFormat):
		if !d.force {
			return fmt.Errorf("%w: its volume data cannot be found from it (to delete the backup's files anyway, leaving any Kopia snapshots it has, pass --force)", err)
		}
		notes = append(notes, "warning: "+catalog.ManifestFile+" could not be read: Kopia snapshots it may have were left in the location's kopia/ repositories")
	case !errors.Is(err, catalog.ErrNotFound):
		return err
	}
	n, err := cat.Delete(ctx, o.Name)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.streams.Out, "Deleted backup %q (%s) from %s.\n", o.Name, plural(n, "file", "files"), cat.Location())
	for _, s := range notes {
		fmt.Fprintln(o.streams.Out, "  "+s)
	}
	return nil
}

func deleteVolumeData(ctx context.Context, m *catalog.Manifest, location string, d deleteOptions) ([]string, error) {
	var notes []string
	byNS := map[string][]string{}
	kept := 0
	for _, v := range m.Volumes {
		if v.KopiaSnapshot != "" {
			byNS[v.Namespace] = append(byNS[v.Namespace], v.KopiaSnapshot)
		}
		if v.VolumeSnapshot != "" {
			kept++
		}
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	if len(byNS) > 0 {
		pw, err := loadPassword(d.passwordFile, d.errOut)
		var failed []string
		for _, ns := range namespaces {
			if err != nil {
				failed = append(failed, fmt.Sprintf("%s (%s)", ns, strings.Join(byNS[ns], " ")))
				continue
			}
			n, derr := mover.DeleteSnapshots(ctx, mover.Settings{Location: location, Namespace: ns, Password: pw}, byNS[ns])
			if derr != nil {
				failed = append(failed, fmt.Sprintf("%s (%s: %v)", ns, strings.Join(byNS[ns], " "), derr))
				continue
			}
			notes = append(notes, fmt.Sprintf("deleted %s of namespace %s (their data is freed by the repository's next Kopia maintenance)", plural(n, "Kopia snapshot", "Kopia snapshots"), ns))
		}
		if len(failed) > 0 {
			why := "they could not be deleted"
			if err != nil {
				why = err.Error()
			}
			if !d.force {
				return nil, fmt.Errorf("backup %q was not deleted: its Kopia snapshots of namespaces %s must be deleted first and %s; their IDs are only in its %s, so deleting it now would leave them for good (pass --force to delete the backup anyway and leave them)", m.Name, strings.Join(failed, ", "), why, catalog.ManifestFile)
			}
			notes = append(notes, fmt.Sprintf("warning: Kopia snapshots left in the location (--force): namespaces %s; %s", strings.Join(failed, ", "), why))
		}
	}
	if kept > 0 {
		clients, err := kube.New(d.flags)
		if err == nil {
			var objs []volumes.Object
			if objs, err = volumes.KeptSnapshots(ctx, clients.Snap, m.Name); err == nil {
				err = volumes.Delete(ctx, clients.Typed, clients.Snap, objs)
				if err == nil {
					notes = append(notes, fmt.Sprintf("deleted %s kept by snapshot mode", plural(len(objs), "VolumeSnapshot", "VolumeSnapshots")))
				}
			}
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("warning: VolumeSnapshots kept by this backup were not deleted (%v): delete them with kubectl delete volumesnapshots -A -l %s,%s=true", err, volumes.Selector(m.Name), volumes.LabelKept))
		}
	}
	return notes, nil
}
