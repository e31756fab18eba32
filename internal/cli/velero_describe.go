package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
)

// NewVeleroDescribeCmd builds `velero describe`.
func NewVeleroDescribeCmd(streams genericiooptions.IOStreams) *cobra.Command {
	o := &veleroReadOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "describe NAME --from-velero URL",
		Short: "Show what a Velero backup holds, where each volume's data is, and whether it can be restored",
		Example: fmt.Sprintf(examples(`
			# Describe Velero's backup nightly-20260101 in bucket "velero-backups", prefix "prod"
			%[1]s velero describe nightly-20260101 --from-velero 's3://velero-backups/prod?region=eu-west-1'`), "kubectl pvbackup"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return o.run(cmd.Context(), o.describe)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *veleroReadOptions) describe(ctx context.Context, loc *velero.Location) error {
	d, err := loc.Describe(ctx, o.Name)
	if err != nil {
		return err
	}
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, d)
	}
	return printVeleroDetails(o.streams.Out, d)
}

func printVeleroDetails(w io.Writer, d *velero.Details) error {
	b := d.Backup
	fmt.Fprintf(w, "Name:          %s\n", printable.Name(b.Name))
	fmt.Fprintf(w, "Phase:         %s\n", orDash(b.Phase))
	if b.FailureReason != "" {
		fmt.Fprintf(w, "Failure:       %s\n", oneLine(b.FailureReason))
	}
	fmt.Fprintf(w, "Format:        %s (tarball %s)\n", orDash(b.FormatVersion), orDash(d.TarballFormat))
	fmt.Fprintf(w, "Velero:        namespace %s, storage location %s\n", orDash(b.Namespace), orDash(b.StorageLocation))
	fmt.Fprintf(w, "Cluster:       Kubernetes %s\n", orDash(b.SourceCluster))
	fmt.Fprintf(w, "Labels:        %s\n", labelString(b.Labels))
	fmt.Fprintf(w, "Started:       %s\n", timeOrDash(b.Started))
	fmt.Fprintf(w, "Completed:     %s\n", timeOrDash(b.Completed))
	fmt.Fprintf(w, "Expires:       %s\n", timeOrDash(b.Expires))
	fmt.Fprintf(w, "Selection:     %s\n", veleroSelection(b))
	fmt.Fprintf(w, "Volume data:   %s\n", veleroVolumeDefaults(b))
	fmt.Fprintf(w, "Items:         %d of %d backed up; %s in the tarball\n", b.ItemsBackedUp, b.ItemsTotal, progress.Plural(d.Objects, "object", "objects"))
	fmt.Fprintf(w, "Errors:        %d\n", b.Errors)
	fmt.Fprintf(w, "Warnings:      %d\n", b.Warnings)
	if b.Hooks.Attempted > 0 {
		fmt.Fprintf(w, "Hooks:         %d run, %d failed\n", b.Hooks.Attempted, b.Hooks.Failed)
	}
	fmt.Fprintf(w, "Namespaces:    %s\n", joinOr(d.Namespaces, "-"))
	if err := printVeleroResources(w, d.Resources); err != nil {
		return err
	}
	if err := printVeleroVolumes(w, d); err != nil {
		return err
	}
	if err := printVeleroOperations(w, d.Operations); err != nil {
		return err
	}
	printVeleroMessages(w, "Errors", d.Errors)
	printVeleroMessages(w, "Warnings", d.Warnings)
	fmt.Fprintf(w, "Files:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, f := range d.Files {
		fmt.Fprintf(tw, "  %s\t%s\n", printable.Name(f.Name), progress.Bytes(f.Size))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if d.Refusal != "" {
		fmt.Fprintf(w, "Restore:       refused: %s\n", oneLine(d.Refusal))
	} else {
		fmt.Fprintf(w, "Restore:       %s\n", veleroRestoreSummary(d.Volumes))
	}
	return nil
}

func veleroSelection(b *velero.Backup) string {
	s := b.Selection
	parts := []string{"namespaces " + joinOr(s.IncludedNamespaces, "*")}
	if len(s.ExcludedNamespaces) > 0 {
		parts = append(parts, "not "+joinOr(s.ExcludedNamespaces, ""))
	}
	parts = append(parts, "resources "+joinOr(s.IncludedResources, "*"))
	if len(s.ExcludedResources) > 0 {
		parts = append(parts, "not "+joinOr(s.ExcludedResources, ""))
	}
	if s.LabelSelector != "" {
		parts = append(parts, "selector "+printable.Name(s.LabelSelector))
	}
	for _, or := range s.OrLabelSelectors {
		parts = append(parts, "or selector "+printable.Name(or))
	}
	if b.IncludeClusterRes != nil {
		parts = append(parts, fmt.Sprintf("cluster resources %v", *b.IncludeClusterRes))
	}
	return strings.Join(parts, "; ")
}

func veleroVolumeDefaults(b *velero.Backup) string {
	var parts []string
	if b.SnapshotVolumes != nil && !*b.SnapshotVolumes {
		parts = append(parts, "volume snapshots off")
	}
	if b.DefaultFsBackup {
		parts = append(parts, "fs-backup by default")
	}
	if b.SnapshotMoveData {
		parts = append(parts, "snapshot data moved to the bucket")
	}
	if b.DataMover != "" {
		parts = append(parts, "data mover "+printable.Name(b.DataMover))
	}
	if b.ResourcePolicy != "" {
		parts = append(parts, "resource policy "+printable.Name(b.ResourcePolicy))
	}
	if len(parts) == 0 {
		return "Velero's defaults (CSI snapshots where a class exists, fs-backup where pods ask for it)"
	}
	return strings.Join(parts, "; ")
}

func printVeleroResources(w io.Writer, counts []velero.ResourceCount) error {
	if len(counts) == 0 {
		fmt.Fprintf(w, "Resources:     -\n")
		return nil
	}
	fmt.Fprintf(w, "Resources:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range counts {
		fmt.Fprintf(tw, "  %s\t%d\n", printable.Name(c.Kind), c.Count)
	}
	return tw.Flush()
}

func printVeleroVolumes(w io.Writer, d *velero.Details) error {
	if len(d.Volumes) == 0 {
		fmt.Fprintf(w, "Volumes:       none\n")
		return nil
	}
	fmt.Fprintf(w, "Volumes (from %s):\n", d.VolumesFrom)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  VOLUME\tMETHOD\tUPLOADER\tSNAPSHOT\tSIZE\tRESTORE")
	for _, v := range d.Volumes {
		restore := "no: " + oneLine(v.Reason)
		if v.Restorable {
			restore = "yes, from " + printable.Name(v.Repository)
			if v.Empty {
				restore = "yes: " + oneLine(v.Reason)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", printable.Name(v.Key()), printable.Name(string(v.Method)), orDash(v.Uploader), orDash(v.SnapshotID), sizeOrDash(v.Size), restore)
	}
	return tw.Flush()
}

func printVeleroOperations(w io.Writer, ops []velero.Operation) error {
	if len(ops) == 0 {
		return nil
	}
	fmt.Fprintf(w, "Item operations:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, op := range ops {
		line := fmt.Sprintf("  %s\t%s\t%s\t%s", printable.Name(op.Resource), printable.Name(op.Action), printable.Name(op.ID), orDash(op.Phase))
		if op.Error != "" {
			line += "\t" + oneLine(op.Error)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func printVeleroMessages(w io.Writer, title string, m *velero.Messages) {
	if m.Len() == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, s := range m.Velero {
		fmt.Fprintf(w, "  velero: %s\n", oneLine(s))
	}
	for _, s := range m.Cluster {
		fmt.Fprintf(w, "  cluster: %s\n", oneLine(s))
	}
	nss := make([]string, 0, len(m.Namespaces))
	for ns := range m.Namespaces {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		for _, s := range m.Namespaces[ns] {
			fmt.Fprintf(w, "  namespace %s: %s\n", printable.Name(ns), oneLine(s))
		}
	}
}

func veleroRestoreSummary(vols []velero.Volume) string {
	ok := 0
	for _, v := range vols {
		if v.Restorable {
			ok++
		}
	}
	switch {
	case len(vols) == 0:
		return "possible (resources only)"
	case ok == 1 && len(vols) == 1:
		return "possible, with the data of its volume"
	case ok == len(vols):
		return fmt.Sprintf("possible, with the data of all %d volumes", len(vols))
	}
	return fmt.Sprintf("possible, with the data of %d of %s (the others are listed above with the reason)", ok, progress.Plural(len(vols), "volume", "volumes"))
}
