package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

var createExample = examples(`
	# Back up namespace "shop" (resources, and the cluster objects they need) to S3
	export PVBACKUP_PASSWORD=...   # or --password-file
	%[1]s create shop-1 --to 's3://backups/prod?region=eu-west-1' --include-namespaces shop

	# See what a backup would take, without writing anything
	%[1]s create nightly --include-namespaces 'team-*' --exclude-resources secrets --dry-run

	# Back up every namespace and all cluster-scoped objects to a local directory
	%[1]s create full --to file:///var/backups/k8s --include-cluster-resources=true`)

// CreateOptions are the flags of `create`.
type CreateOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	Name     string
	location locationOptions
	output   outputOptions
	password passwordOptions
	selectionOptions
	ClusterResources  string
	DryRun            bool
	Volumes           string
	SnapshotClasses   []string
	MoverClassMapping []string
	mover             moverOptions
	PreHook, PostHook string
	HookSelector      string
	HookContainer     string
	HookOnError       string
	HookTimeout       time.Duration
	KeepSnapshots     int

	cfg       backup.Config
	volCfg    *volumes.Config // nil: resources only
	volNotice string
}

// NewCreateCmd builds `create`.
func NewCreateCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:     "create NAME [--to URL]",
		Short:   "Back up the selected resources and their volume data to object storage",
		Example: fmt.Sprintf(createExample, "kubectl pvbackup"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args, cmd.Flags()); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "to")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	o.selectionOptions.addFlags(fs, selectionHelp{
		includeNamespaces: "namespaces to back up, globs allowed (default: the -n namespace if given, else all)",
		excludeNamespaces: "namespaces to leave out, globs allowed",
		includeResources:  "resource types to back up: kinds, plurals, short names or group-qualified names (default: all but the transient ones)",
		excludeResources:  "resource types to leave out",
	})
	fs.StringVar(&o.ClusterResources, "include-cluster-resources", "auto", "cluster-scoped objects: auto (all when all namespaces are selected, else those the selection needs), true or false")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan and write nothing")
	fs.StringVar(&o.Volumes, "volumes", "auto", "volume data: auto (per PVC: snapshot-move where CSI snapshots work, else fs), snapshot-move, fs, snapshot (VolumeSnapshots only, kept: not a backup) or none; the PVC annotation "+volumes.AnnotationMode+" overrides")
	fs.StringSliceVar(&o.SnapshotClasses, "snapshot-class", nil, "VolumeSnapshotClass to use for its driver (default: the class labelled "+volumes.LabelClassPlain+"=true or velero.io/csi-volumesnapshot-class=true, else the driver's default)")
	fs.StringSliceVar(&o.MoverClassMapping, "mover-storage-class", nil, "StorageClass of the temporary PVCs made from snapshots, per source class: old:new (default the source's)")
	o.mover.addFlags(fs)
	fs.IntVar(&o.KeepSnapshots, "keep-snapshots", 0, "snapshot mode: keep the newest N VolumeSnapshots per PVC made by this tool and delete older ones (0 keeps all)")
	fs.StringVar(&o.PreHook, "pre-hook", "", "shell command run (sh -c) in each pod that mounts a backed-up volume, just before its volumes are snapshotted or uploaded; pod annotations "+"pre.hook.pvbackup.io/command (or Velero's pre.hook.backup.velero.io/command) take precedence")
	fs.StringVar(&o.PostHook, "post-hook", "", "shell command run in those pods right after their snapshots are created (or uploads done)")
	fs.StringVar(&o.HookSelector, "hook-selector", "", "label selector of the pods --pre-hook/--post-hook run in (default: every pod that mounts a backed-up volume)")
	fs.StringVar(&o.HookContainer, "hook-container", "", "container the hooks run in (default the pod's first)")
	fs.StringVar(&o.HookOnError, "hook-on-error", "Fail", "a failing --pre-hook: Fail (the pod's volumes are not backed up) or Continue")
	fs.DurationVar(&o.HookTimeout, "hook-timeout", hooks.DefaultTimeout, "how long a --pre-hook/--post-hook may run")
	return cmd
}

// Complete fills the options from arguments, environment and kubeconfig.
func (o *CreateOptions) Complete(args []string, flags *pflag.FlagSet) error {
	o.Name = args[0]
	o.location.complete()
	mode, err := backup.ParseClusterMode(o.ClusterResources)
	if err != nil {
		return err
	}
	var include []string
	if len(o.IncludeNamespaces) == 0 && o.configFlags.Namespace != nil && *o.configFlags.Namespace != "" {
		include = []string{*o.configFlags.Namespace}
	}
	namespaces, resources := o.filters(include)
	o.cfg = backup.Config{
		Name:             o.Name,
		Namespaces:       namespaces,
		Resources:        resources,
		LabelSelector:    o.Selector,
		ClusterResources: mode,
		DryRun:           o.DryRun,
	}
	if !o.DryRun {
		if o.cfg.Password, err = o.password.load(o.streams.ErrOut); err != nil {
			return err
		}
	}
	return o.completeVolumes(flags)
}

// completeVolumes builds the volume configuration. A file:// location cannot take volume data
// (mover pods cannot write to this machine): unless --volumes was set, volumes are then skipped
// with a notice; with --volumes set it is an error.
func (o *CreateOptions) completeVolumes(flags *pflag.FlagSet) error {
	mode, err := volumes.ParseMode(o.Volumes)
	if err != nil {
		return fmt.Errorf("--volumes: %w", err)
	}
	if mode == volumes.ModeNone {
		return nil
	}
	classMap, err := volumes.ParseMapping("mover-storage-class", o.MoverClassMapping)
	if err != nil {
		return err
	}
	mc, err := o.mover.config(o.location.URL, o.cfg.Password)
	if err != nil {
		if mode == volumes.ModeAuto && !flags.Changed("volumes") && !flags.Changed("mover-location") && strings.HasPrefix(o.location.URL, "file://") {
			o.volNotice = "volume data is not backed up: " + err.Error()
			return nil
		}
		if o.DryRun && o.location.URL == "" {
			mc = volumes.MoverConfig{}
		} else {
			return err
		}
	}
	mc.StorageClassMapping = classMap
	sel, err := labels.Parse(o.HookSelector)
	if err != nil {
		return fmt.Errorf("--hook-selector %q: %w", o.HookSelector, err)
	}
	hf := hooks.Flags{Selector: sel, Container: o.HookContainer, Pre: o.PreHook, Post: o.PostHook, OnError: o.HookOnError, Timeout: o.HookTimeout}
	o.volCfg = &volumes.Config{Backup: o.Name, Mode: mode, SnapshotClasses: o.SnapshotClasses, Mover: mc,
		Parallel: o.mover.Parallel, Timeout: o.mover.Timeout, DryRun: o.DryRun, HookFlags: hf, KeepSnapshots: o.KeepSnapshots}
	return nil
}

// Validate checks the options without any I/O.
func (o *CreateOptions) Validate() error {
	if err := catalog.ValidateName(o.Name); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	if err := o.cfg.Namespaces.Validate(); err != nil {
		return err
	}
	if o.DryRun && o.location.URL == "" {
		return nil
	}
	return o.location.validate()
}

// Run performs the backup and prints its manifest. The backup name is claimed in the location
// first: a name in use, or a location that cannot be written, fails before the cluster is touched.
func (o *CreateOptions) Run(ctx context.Context) error {
	var deps backup.Deps
	if o.location.URL != "" {
		cat, closeFn, err := o.location.open(ctx)
		if err != nil {
			return err
		}
		defer closeFn()
		deps.Catalog = cat
		if !o.DryRun {
			deps.Claim = catalog.NewClaim(time.Now(), version.Version)
			if err := cat.Claim(ctx, o.Name, deps.Claim); err != nil {
				return err
			}
		}
	}
	if err := o.connect(ctx, &deps); err != nil {
		if deps.Claim != nil {
			// backup.Run gives the name back when it stops before writing; here it was not reached.
			backup.ReleaseClaim(ctx, deps.Catalog, o.Name, deps.Claim)
		}
		return err
	}
	return o.backup(ctx, deps)
}

// connect fills deps with the cluster's clients and the volume engine.
func (o *CreateOptions) connect(ctx context.Context, deps *backup.Deps) error {
	clients, err := kube.New(o.configFlags)
	if err != nil {
		return err
	}
	deps.Dynamic, deps.Discovery, deps.Progress = clients.Dynamic, clients.Discovery, o.output.reporter(o.streams)
	if o.volNotice != "" {
		deps.Progress.Warn(o.volNotice)
	}
	if o.volCfg != nil {
		deps.Volumes = &volumes.Runner{Config: *o.volCfg, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery,
			Progress: deps.Progress, OnEvent: dataProgress(o.streams.ErrOut, o.output.Format != ""),
			Hooks: &hooks.Executor{Kube: clients.Typed, Config: clients.Config},
			EnsureRepository: func(ctx context.Context, ns string) error {
				return mover.EnsureRepository(ctx, mover.Settings{Location: o.location.URL, Namespace: ns, Password: o.cfg.Password})
			}}}
	}
	deps.Cluster = catalog.Cluster{Server: clients.Config.Host, Context: clients.Context}
	v, err := clients.Discovery.ServerVersion()
	if err != nil {
		return fmt.Errorf("reach the cluster at %s: %w", clients.Config.Host, err)
	}
	deps.Cluster.ServerVersion = v.GitVersion
	return nil
}

// backup runs the engine and prints its result.
func (o *CreateOptions) backup(ctx context.Context, deps backup.Deps) error {
	res, err := backup.Run(ctx, deps, o.cfg)
	if res != nil && res.Manifest != nil {
		if perr := o.print(res); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if res.Manifest.Status == catalog.PartiallyFailed {
		return fmt.Errorf("backup %q is PartiallyFailed: %d errors (see `kubectl pvbackup describe %s`): %w", o.Name, len(res.Manifest.Errors), o.Name, ErrPartial)
	}
	return nil
}

func (o *CreateOptions) print(res *backup.Result) error {
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res.Manifest)
	}
	m := res.Manifest
	if res.DryRun {
		return printPlan(o.streams.Out, m)
	}
	fmt.Fprintf(o.streams.Out, "Backup %q %s: %s in %s, %s archive, %s.\n", m.Name, m.Status, plural(m.Items, "object", "objects"),
		plural(len(m.Namespaces), "namespace", "namespaces"), progress.Bytes(m.Archive.Size), m.CompletionTime.Sub(m.StartTime))
	if err := printVolumes(o.streams.Out, m.Volumes, false); err != nil {
		return err
	}
	printProblems(o.streams.Out, m)
	return nil
}

// printVolumes lists each volume: its mode and why, and what happened (or, planned, would happen).
func printVolumes(w io.Writer, vols []catalog.Volume, plan bool) error {
	if len(vols) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	if plan {
		fmt.Fprintln(tw, "VOLUME\tSIZE\tMODE\tREASON")
	} else {
		fmt.Fprintln(tw, "VOLUME\tMODE\tSTATUS\tFILES\tSIZE\tUPLOADED\tTIME\tDETAIL")
	}
	snapshots := false
	for _, v := range vols {
		snapshots = snapshots || v.Mode == "snapshot"
		name := v.Namespace + "/" + v.PVC
		if plan {
			reason := v.Reason
			if v.Error != "" {
				reason = "error: " + v.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, orDash(v.Size), v.Mode, reason)
			continue
		}
		detail := v.Reason
		switch {
		case v.Error != "":
			detail = v.Error
		case v.VolumeSnapshot != "":
			detail = "VolumeSnapshot " + v.VolumeSnapshot
		}
		files, size, up := "-", "-", "-"
		if v.KopiaSnapshot != "" {
			files, size, up = fmt.Sprint(v.Files), progress.Bytes(v.Bytes), progress.Bytes(v.UploadedBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", name, v.Mode, v.Status, files, size, up, v.Seconds, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if snapshots {
		fmt.Fprintln(w, "Note: snapshot mode keeps VolumeSnapshots on the volumes' own storage system: they are not a backup (use snapshot-move or fs to copy the data to the location).")
	}
	return nil
}

func printPlan(w io.Writer, m *catalog.Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tNAMESPACE\tOBJECTS")
	for _, c := range m.Resources {
		ns := c.Namespace
		if ns == "" {
			ns = "(cluster)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", c.Resource, ns, c.Count)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printVolumes(w, m.Volumes, true); err != nil {
		return err
	}
	fmt.Fprintf(w, "Plan for backup %q: %s in %s. Nothing was written (--dry-run).\n", m.Name, plural(m.Items, "object", "objects"), plural(len(m.Namespaces), "namespace", "namespaces"))
	printProblems(w, m)
	return nil
}

func printProblems(w io.Writer, m *catalog.Manifest) {
	for _, e := range m.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	for _, wn := range m.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wn.Message)
	}
}
