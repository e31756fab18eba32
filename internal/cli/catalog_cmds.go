package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/immutable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/removal"
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

// expires is the EXPIRES column: "-" without a TTL, "expired" once passed, else the time left.
func expires(m *catalog.Manifest, now time.Time) string {
	switch {
	case m.ExpiresAt.IsZero():
		return "-"
	case m.Expired(now):
		return "expired"
	}
	return "in " + age(m.ExpiresAt.Sub(now))
}

// labelString writes labels as kubectl's --show-labels does: k=v,k2=v2 sorted, "-" for none
// (quoted when one holds what a terminal would act on).
func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "-"
	}
	return printable.Name(labels.Set(l).String())
}

// oneLine keeps a reason on one table row, quoted when it holds what a terminal would act on
// (reasons come from the bucket and the cluster).
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "..."
	}
	return printable.Name(s)
}

func abbreviate(s []string, n int) string {
	if len(s) == 0 {
		return "-"
	}
	if len(s) <= n {
		return printable.Name(strings.Join(s, ","))
	}
	return fmt.Sprintf("%s,+%d", printable.Name(strings.Join(s[:n], ",")), len(s)-n)
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
	if err := describeManifest(o.streams, m); err != nil {
		return err
	}
	return describeLock(ctx, o.streams.Out, cat, o.Name)
}

// describeLock shows until when an immutable location keeps the backup's files locked.
func describeLock(ctx context.Context, w io.Writer, cat *catalog.Catalog, name string) error {
	lock := cat.Location().Lock()
	if lock == nil {
		return nil
	}
	until, err := immutable.LockedUntil(ctx, cat, name)
	if err != nil {
		return err
	}
	if until.After(time.Now()) {
		fmt.Fprintf(w, "Locked:       until %s (immutable location: %s; delete and prune refuse it until then)\n", until.Format(time.RFC3339), lock)
	} else {
		fmt.Fprintf(w, "Locked:       no longer (unlocked %s; immutable location: %s)\n", until.Format(time.RFC3339), lock)
	}
	return nil
}

func describeManifest(streams genericiooptions.IOStreams, m *catalog.Manifest) error {
	w := streams.Out
	describeHeader(w, m)
	if err := describeResources(w, m); err != nil {
		return err
	}
	if len(m.Volumes) > 0 {
		fmt.Fprintf(w, "Volumes:      %d\n", len(m.Volumes))
		if err := printVolumes(w, m.Volumes, false); err != nil {
			return err
		}
		if err := describeVolumeGroups(w, m.Volumes); err != nil {
			return err
		}
	}
	if err := describeExcluded(w, m); err != nil {
		return err
	}
	q := printable.Name
	if len(m.Errors) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, e := range m.Errors {
			fmt.Fprintf(w, "  %s\n", q(e))
		}
	}
	if len(m.Warnings) > 0 {
		fmt.Fprintln(w, "Warnings:")
		for _, wn := range m.Warnings {
			fmt.Fprintf(w, "  %s\n", q(wn.Message))
		}
	}
	return nil
}

// describeHeader prints the backup's name, status, times, origin, selection and archive. Every
// string printed by describe is from backup.json, which any bucket writer can write: each goes
// through printable.Name.
func describeHeader(w io.Writer, m *catalog.Manifest) {
	q := printable.Name
	fmt.Fprintf(w, "Name:         %s\n", q(m.Name))
	fmt.Fprintf(w, "Status:       %s\n", q(string(m.Status)))
	fmt.Fprintf(w, "Labels:       %s\n", labelString(m.Labels))
	fmt.Fprintf(w, "Started:      %s\n", m.StartTime.Format(time.RFC3339))
	fmt.Fprintf(w, "Completed:    %s (%s)\n", m.CompletionTime.Format(time.RFC3339), m.CompletionTime.Sub(m.StartTime))
	if !m.ExpiresAt.IsZero() {
		fmt.Fprintf(w, "Expires:      %s (ttl %s)\n", m.ExpiresAt.Format(time.RFC3339), q(m.TTL))
	}
	fmt.Fprintf(w, "Tool:         kubectl-pvbackup %s, format %d\n", q(m.ToolVersion), m.FormatVersion)
	fmt.Fprintf(w, "Cluster:      %s (context %s, %s)\n", orDash(m.Cluster.Server), orDash(m.Cluster.Context), orDash(m.Cluster.ServerVersion))
	fmt.Fprintf(w, "Selection:    %s\n", q(selectionString(m.Selection)))
	fmt.Fprintf(w, "Namespaces:   %s\n", joinOr(m.Namespaces, "-"))
	fmt.Fprintf(w, "Archive:      %s, %s, encrypted (%s)\n", q(m.Archive.File), progress.Bytes(m.Archive.Size), q(m.Archive.Encrypted))
}

// describeResources prints the object count per resource type, the empty types folded into one
// line.
func describeResources(w io.Writer, m *catalog.Manifest) error {
	q := printable.Name
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
	empty := 0
	for _, n := range names {
		if totals[n] == 0 {
			empty++
			continue
		}
		fmt.Fprintf(tw, "  %s\t%d\n", q(n), totals[n])
	}
	if empty > 0 {
		fmt.Fprintf(tw, "  (%s with no objects)\n", progress.Plural(empty, "resource type", "resource types"))
	}
	return tw.Flush()
}

// describeVolumeGroups prints, for each volume in a volume group, the group, the
// VolumeGroupSnapshot that cut it and its API version, or that it was cut alone (its DETAIL says
// why); nothing when no volume is in a group.
func describeVolumeGroups(w io.Writer, vols []catalog.Volume) error {
	n, groups := 0, map[string]bool{}
	for _, v := range vols {
		if v.VolumeGroup != "" {
			n, groups[v.VolumeGroup] = n+1, true
		}
	}
	if n == 0 {
		return nil
	}
	fmt.Fprintf(w, "Groups:       %s in %s\n", progress.Plural(n, "volume", "volumes"), progress.Plural(len(groups), "volume group", "volume groups"))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VOLUME\tGROUP\tGROUP SNAPSHOT\tAPI VERSION")
	q := printable.Name
	for _, v := range vols {
		if v.VolumeGroup == "" {
			continue
		}
		snap, api := "cut alone", "-"
		if v.GroupSnapshot != "" {
			snap, api = q(v.GroupSnapshot), orDash(v.GroupSnapshotAPIVersion)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", q(v.Namespace+"/"+v.PVC), q(v.VolumeGroup), snap, api)
	}
	return tw.Flush()
}

// describeExcluded prints the objects left out by label.
func describeExcluded(w io.Writer, m *catalog.Manifest) error {
	if len(m.Excluded) == 0 {
		return nil
	}
	q := printable.Name
	fmt.Fprintf(w, "Excluded:     %s by label\n", progress.Plural(len(m.Excluded), "object", "objects"))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, e := range m.Excluded {
		name := e.Name
		if e.Namespace != "" {
			name = e.Namespace + "/" + e.Name
		}
		fmt.Fprintf(tw, "  %s %s\t%s\n", q(e.Resource), q(name), q(e.Label))
	}
	return tw.Flush()
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
	q := printable.Name // the log is in the bucket: any bucket writer can write it
	for _, e := range entries {
		obj := ""
		switch {
		case e.Name != "" && e.Namespace != "":
			obj = fmt.Sprintf(" %s %s:", q(e.Resource), q(e.Namespace+"/"+e.Name))
		case e.Name != "":
			obj = fmt.Sprintf(" %s %s:", q(e.Resource), q(e.Name))
		case e.Resource != "":
			obj = " " + q(e.Resource) + ":"
		}
		fmt.Fprintf(o.streams.Out, "%s %-7s%s %s\n", e.Time.Format(time.RFC3339), q(e.Level), obj, q(e.Message))
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

// runDelete removes the backup's volume data first (kept VolumeSnapshots: needs the cluster;
// Kopia snapshots: needs the password), then its files. The Kopia snapshot IDs are only in
// backup.json: deleting it while they cannot be deleted orphans them for good, so that takes
// --force, as do a backup still being written and a backup.json that names another backup (a
// copied directory: its volume data is the original's).
func runDelete(ctx context.Context, o *CatalogOptions, cat *catalog.Catalog, d deleteOptions) error {
	// A lock is not forced: the store would keep every locked version anyway.
	if err := immutable.RefuseLocked(ctx, cat, time.Now(), o.Name); err != nil {
		return err
	}
	m, notes, err := checkDelete(ctx, o.Name, cat, d.force)
	if err != nil {
		return err
	}
	deps := removal.Deps{Catalog: cat, Repos: newLocationKeys(ctx, cat.Location(), d.passwordFile, d.errOut).repos(o.location.URL), DeleteKeptSnapshots: deleteKeptSnapshots(d.flags)}
	res, err := removal.Remove(ctx, deps, o.Name, m, !d.force)
	switch {
	case errors.Is(err, removal.ErrForeignSnapshot):
		return fmt.Errorf("backup %q was not deleted: %w; its %s names volume data of another backup, which was kept (to delete only this backup's files, pass --force)", o.Name, err, catalog.ManifestFile)
	case errors.Is(err, catalog.ErrNotFound):
		return err
	case err != nil:
		return fmt.Errorf("backup %q was not deleted: %w; its Kopia snapshot IDs are only in its %s, so deleting it now would leave them for good (pass --force to delete it anyway and leave them)", o.Name, err, catalog.ManifestFile)
	}
	fmt.Fprintf(o.streams.Out, "Deleted backup %q (%s) from %s.\n", o.Name, progress.Plural(res.Files, "file", "files"), cat.Location())
	for _, ns := range slices.Sorted(maps.Keys(res.KopiaSnapshots)) {
		fmt.Fprintf(o.streams.Out, "  deleted %s of namespace %s (their data is freed by the repository's next full Kopia maintenance)\n", progress.Plural(res.KopiaSnapshots[ns], "Kopia snapshot", "Kopia snapshots"), printable.Name(ns))
	}
	if res.VolumeSnapshots > 0 {
		fmt.Fprintf(o.streams.Out, "  deleted %s kept by snapshot mode\n", progress.Plural(res.VolumeSnapshots, "VolumeSnapshot", "VolumeSnapshots"))
	}
	for _, w := range res.Warnings {
		notes = append(notes, "warning: volume data left in the location (--force): "+w)
	}
	for _, n := range notes {
		fmt.Fprintln(o.streams.Out, "  "+printable.Lines(n))
	}
	return nil
}

// checkDelete refuses, unless forced, a delete that would lose data or touch another backup's.
// It returns the manifest whose volume data goes with the backup (nil: none) and notes to print.
func checkDelete(ctx context.Context, name string, cat *catalog.Catalog, force bool) (*catalog.Manifest, []string, error) {
	m, err := cat.Manifest(ctx, name)
	switch {
	case err == nil && m.Name != name:
		if !force {
			return nil, nil, fmt.Errorf("backup %q in %s: its %s names backup %q: the directory is a copy or was tampered with, and deleting its volume data would delete %q's (to delete only this directory's files, pass --force)", name, cat.Location(), catalog.ManifestFile, m.Name, m.Name)
		}
		return nil, []string{fmt.Sprintf("warning: %s names backup %q: only this directory's files were deleted, not the volume data it points to", catalog.ManifestFile, m.Name)}, nil
	case err == nil:
		return m, nil, nil
	case errors.Is(err, catalog.ErrIncomplete):
		if cl, cerr := cat.ReadClaim(ctx, name); cerr == nil && !force {
			return nil, nil, fmt.Errorf("backup %q in %s has no %s yet: it is being written by %s, or that run was interrupted (if no run is writing it, delete it with --force)", name, cat.Location(), catalog.ManifestFile, cl)
		}
		return nil, nil, nil
	case errors.Is(err, catalog.ErrUnreadable), errors.Is(err, catalog.ErrNewerFormat):
		if !force {
			return nil, nil, fmt.Errorf("%w: its volume data cannot be found from it (to delete the backup's files anyway, leaving any Kopia snapshots it has, pass --force)", err)
		}
		return nil, []string{"warning: " + catalog.ManifestFile + " could not be read: Kopia snapshots it may have were left in the location's kopia/ repositories"}, nil
	}
	return nil, nil, err
}

// deleteKeptSnapshots deletes the VolumeSnapshots a backup kept, connecting to the cluster only
// when a backup has some, and once for all.
func deleteKeptSnapshots(flags *genericclioptions.ConfigFlags) func(context.Context, string) (int, error) {
	connect := sync.OnceValues(func() (*kube.Clients, error) { return kubeClients(flags) })
	return func(ctx context.Context, backup string) (int, error) {
		clients, err := connect()
		if err != nil {
			return 0, err
		}
		objs, err := volumes.KeptSnapshots(ctx, clients.Snap, backup)
		if err != nil {
			return 0, err
		}
		return len(objs), volumes.Delete(ctx, clients.Typed, clients.Snap, objs)
	}
}

// selectionString describes what a backup was asked to cover, in the style of its flags.
func selectionString(s catalog.Selection) string {
	labels := orDash(s.LabelSelector)
	if len(s.OrLabelSelectors) > 0 {
		labels = strings.Join(s.OrLabelSelectors, " or ")
	}
	out := fmt.Sprintf("namespaces %s, excluded %s; ", joinOr(s.IncludeNamespaces, "*"), joinOr(s.ExcludeNamespaces, "-"))
	if s.IncludeClusterResources != "" || len(s.IncludeResources)+len(s.ExcludeResources) > 0 {
		out += fmt.Sprintf("resources %s, excluded %s; ", joinOr(s.IncludeResources, "*"), joinOr(s.ExcludeResources, "-"))
	} else {
		out += fmt.Sprintf("namespace-scoped resources %s, excluded %s; cluster-scoped resources %s, excluded %s; ",
			joinOr(s.IncludeNamespaceScopedResources, "*"), joinOr(s.ExcludeNamespaceScopedResources, "-"), joinOr(s.IncludeClusterScopedResources, "-"), joinOr(s.ExcludeClusterScopedResources, "-"))
	}
	out += "labels " + labels
	if s.IncludeClusterResources != "" {
		out += "; cluster resources " + s.IncludeClusterResources
	}
	if s.ResourcePolicies != "" {
		out += "; resource policies " + s.ResourcePolicies
	}
	return out
}
