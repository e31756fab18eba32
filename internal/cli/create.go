package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/policy"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
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
	%[1]s create full --to file:///var/backups/k8s --include-cluster-resources=true

	# Nightly from a scheduler: a name from the time (nightly-20260304-020000), metrics for node-exporter
	%[1]s create --generate-name nightly --include-namespaces shop --prometheus /var/lib/node_exporter/pvbackup.prom`)

// CreateOptions are the flags of `create`.
type CreateOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	Name         string
	GenerateName string // --generate-name PREFIX: Name is PREFIX-<UTC time>, claimed in Run
	Prometheus   string // --prometheus FILE: node-exporter textfile metrics of the run
	location     locationOptions
	output       outputOptions
	password     passwordOptions
	selectionOptions
	ClusterResources  string
	DryRun            bool
	Volumes           string
	SnapshotClasses   []string
	VolumeGroupBy     string
	VolumeGroups      string
	GroupClasses      []string
	MoverClassMapping []string
	mover             moverOptions
	PreHook, PostHook string
	HookSelector      string
	HookContainer     string
	HookOnError       string
	HookTimeout       time.Duration
	KeepSnapshots     int
	Compression       string
	TTL               time.Duration
	ResourcePolicies  string
	OrSelector        string
	scoped            selection.ScopedFilter
	oldStyle          []string // old-style resource flags given, for the mixing check
	LabelPairs        []string
	labels            map[string]string
	SnapshotMoveData  bool
	policies          *policy.Policies
	SkipMaintenance   bool
	SkipPreflight     bool

	pw        string // the user's password: it only unwraps the location key (internal/keyring)
	noPasswd  bool   // Complete does not load the password (schedule print checks the flags only)
	result    *catalog.Manifest
	cfg       backup.Config
	volCfg    *volumes.Config // nil: resources only
	volNotice string
	early     *earlyRepos // the repositories created from the preflight on (nil: resources only)
}

// NewCreateCmd builds `create`.
func NewCreateCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:     "create NAME|--generate-name PREFIX [--to URL]",
		Short:   "Back up the selected resources and their volume data to object storage",
		Example: fmt.Sprintf(createExample, "kubectl pvbackup"),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(cmd.Context(), o.Complete(args, cmd.Flags()), o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// addFlags adds create's flags to fs (create's own, and schedule print's, which passes them on).
func (o *CreateOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.GenerateName, "generate-name", "", "name the backup `PREFIX`-YYYYMMDD-HHMMSS (UTC, the run's start) instead of NAME; a name taken in the location is never written over: -2, -3, ... is added")
	fs.StringVar(&o.Prometheus, "prometheus", "", "write node-exporter textfile metrics of this run to `FILE` (written whole, then renamed into place): last success time, duration, bytes, volumes failed")
	o.location.addFlag(fs, "to")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	o.selectionOptions.addFlags(fs, selectionHelp{
		includeNamespaces: "namespaces to back up, globs allowed (default: the -n namespace if given, else all)",
		excludeNamespaces: "namespaces to leave out, globs allowed",
		includeResources:  "resource types to back up: kinds, plurals, short names or group-qualified names (default: all but the transient ones)",
		excludeResources:  "resource types to leave out",
	})
	fs.StringVar(&o.OrSelector, "or-selector", "", "label selectors separated by \" or \": objects matching any of them (Velero's flag; not with --selector)")
	fs.StringSliceVar(&o.scoped.IncludeCluster, "include-cluster-scoped-resources", nil, "cluster-scoped resource types to back up whole, '*' for all (Velero's new-style filter: not with --include-resources, --exclude-resources or --include-cluster-resources; default: all on a whole-cluster backup, else only what the selection needs)")
	fs.StringSliceVar(&o.scoped.ExcludeCluster, "exclude-cluster-scoped-resources", nil, "cluster-scoped resource types to leave out, even when the selection needs them; '*' for all")
	fs.StringSliceVar(&o.scoped.IncludeNamespaced, "include-namespace-scoped-resources", nil, "namespace-scoped resource types to back up, '*' for all (the default)")
	fs.StringSliceVar(&o.scoped.ExcludeNamespaced, "exclude-namespace-scoped-resources", nil, "namespace-scoped resource types to leave out; '*' for all")
	fs.StringVar(&o.ClusterResources, "include-cluster-resources", "auto", "cluster-scoped objects: auto (all when all namespaces are selected, else those the selection needs), true or false")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the plan and write nothing")
	fs.StringVar(&o.Volumes, "volumes", "auto", "volume data: auto (per PVC: snapshot-move where CSI snapshots work, else fs), snapshot-move, fs, snapshot (VolumeSnapshots only, kept: not a backup) or none; the PVC annotation "+volumes.AnnotationMode+" overrides")
	fs.StringVar(&o.VolumeGroupBy, "volume-group-by", "", "label key whose value groups claims: each group of a namespace is cut at one instant with a VolumeGroupSnapshot (claims labelled "+volumes.LabelVolumeGroup+" or "+volumes.LabelVolumeGroupVelero+" are grouped without it); a driver without group snapshots cuts them one by one, with a warning")
	fs.StringVar(&o.VolumeGroups, "volume-groups", volumes.GroupsLabels, "which claims are cut together: labels (the claims of a group label, see --volume-group-by) or auto (also, per namespace and CSI driver, the selected snapshot-move claims without a group label: labelled "+volumes.LabelGroupRun+" for the run's cut, the label removed after it)")
	fs.StringSliceVar(&o.GroupClasses, "volume-group-snapshot-class", nil, "VolumeGroupSnapshotClass to cut volume groups of its driver with (default: the driver's class annotated "+volumes.AnnotationDefaultGroupClass+"=true, else its only one); an unknown name fails before anything is created")
	fs.StringSliceVar(&o.SnapshotClasses, "snapshot-class", nil, "VolumeSnapshotClass to use for its driver (default: the class labelled "+volumes.LabelClassPlain+"=true or velero.io/csi-volumesnapshot-class=true, else the driver's default)")
	fs.StringSliceVar(&o.MoverClassMapping, "mover-storage-class", nil, "StorageClass of the temporary PVCs made from snapshots, per source class: old:new (default the source's)")
	o.mover.addFlags(fs, o.configFlags)
	o.mover.addLimitFlags(fs)
	o.mover.addDebugFlag(fs)
	fs.DurationVar(&o.TTL, "ttl", 0, "keep the backup this long (e.g. 720h): recorded in backup.json; kubectl pvbackup prune removes it once it has passed (default: no expiry)")
	fs.StringSliceVar(&o.LabelPairs, "labels", nil, "labels of the backup, as `KEY=VALUE` pairs separated by commas: recorded in backup.json, shown by list and selected with list -l")
	fs.StringVar(&o.ResourcePolicies, "resource-policies", "", "Velero resource policy `FILE` (version v1): its volumePolicies choose each matching volume's mode (skip, fs-backup, snapshot, snapshot-move) before --volumes; the PVC annotation "+volumes.AnnotationMode+" comes first")
	fs.BoolVar(&o.SnapshotMoveData, "snapshot-move-data", false, "the resource policy action snapshot moves the data to the location (snapshot-move) instead of keeping VolumeSnapshots, as Velero's flag of that name does")
	fs.StringVar(&o.Compression, "compression", "", "compression of the volume data: "+repo.CompressionAuto+" (the default: "+repo.AutoCompressor+" for files of 4 KiB or more that are not of an already compressed format and whose first 64 KiB compress), "+repo.CompressionNone+", or a Kopia compressor for every file ("+strings.Join(repo.CompressionNames()[2:], ", ")+"); the PVC annotation "+volumes.AnnotationCompression+" overrides it per volume")
	fs.IntVar(&o.KeepSnapshots, "keep-snapshots", 0, "snapshot mode: keep the newest N VolumeSnapshots per PVC made by this tool and delete older ones (0 keeps all)")
	fs.StringVar(&o.PreHook, "pre-hook", "", "shell command run (sh -c) in each pod that mounts a backed-up volume, just before its volumes are snapshotted or uploaded; pod annotations "+"pre.hook.pvbackup.io/command (or Velero's pre.hook.backup.velero.io/command) take precedence")
	fs.StringVar(&o.PostHook, "post-hook", "", "shell command run in those pods right after their snapshots are created (or uploads done)")
	fs.StringVar(&o.HookSelector, "hook-selector", "", "label selector of the pods --pre-hook/--post-hook run in (default: every pod that mounts a backed-up volume)")
	fs.StringVar(&o.HookContainer, "hook-container", "", "container the hooks run in (default the pod's first)")
	fs.StringVar(&o.HookOnError, "hook-on-error", "Fail", "a failing --pre-hook: Fail (the pod's volumes are not backed up) or Continue")
	fs.DurationVar(&o.HookTimeout, "hook-timeout", hooks.DefaultTimeout, "how long a --pre-hook/--post-hook may run")
	fs.BoolVar(&o.SkipMaintenance, "skip-maintenance", false, "do not run Kopia's quick maintenance of the repositories written when it is due (hourly at most); prune or repo maintain must then run on a schedule, or every mover's open grows with the backups")
	fs.BoolVar(&o.SkipPreflight, "skip-preflight", false, "do not run doctor's checks of the plan first (volume decisions, snapshot controller, rights, location, mover admission)")
}

// Complete fills the options from arguments, environment and kubeconfig.
func (o *CreateOptions) Complete(args []string, flags *pflag.FlagSet) error {
	if len(args) > 0 {
		o.Name = args[0]
	}
	o.location.complete()
	if len(o.LabelPairs) > 0 {
		o.labels = map[string]string{}
		for _, p := range o.LabelPairs {
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				return fmt.Errorf("--labels %q: write KEY=VALUE", p)
			}
			o.labels[k] = v
		}
	}
	if o.ResourcePolicies != "" {
		p, err := policy.Load(o.ResourcePolicies)
		if err != nil {
			return err
		}
		o.policies = p
	}
	if err := o.completeSelection(flags); err != nil {
		return err
	}
	if !o.DryRun && !o.noPasswd {
		var err error
		if o.pw, err = o.password.load(o.streams.ErrOut); err != nil {
			return err
		}
	}
	return o.completeVolumes(flags)
}

// completeSelection builds the backup's selection: namespaces (-n when no --include-namespaces),
// the old-style resource filters or Velero's scoped ones (with a policy file's
// includeExcludePolicy under them), and the label selectors.
func (o *CreateOptions) completeSelection(flags *pflag.FlagSet) error {
	mode, err := backup.ParseClusterMode(o.ClusterResources)
	if err != nil {
		return err
	}
	var include []string
	if len(o.IncludeNamespaces) == 0 && o.configFlags.Namespace != nil && *o.configFlags.Namespace != "" {
		include = []string{*o.configFlags.Namespace}
	}
	namespaces, resources := o.filters(include)
	for _, f := range []string{"include-resources", "exclude-resources", "include-cluster-resources"} {
		if flags.Changed(f) {
			o.oldStyle = append(o.oldStyle, "--"+f)
		}
	}
	orSel, err := selection.SplitOrSelector(o.OrSelector)
	if err != nil {
		return err
	}
	o.cfg = backup.Config{Name: o.Name, Namespaces: namespaces, Resources: resources, LabelSelector: o.Selector,
		ClusterResources: mode, DryRun: o.DryRun, TTL: o.TTL, Labels: o.labels, OrSelectors: orSel, ResourcePolicies: o.ResourcePolicies}
	var ie *policy.IncludeExclude
	if o.policies != nil {
		ie = o.policies.IncludeExclude
	}
	if !o.scoped.Empty() || ie != nil {
		f := o.scoped
		o.cfg.Scoped = &f
	}
	if ie != nil {
		o.cfg.PolicyScoped = &selection.ScopedFilter{IncludeCluster: ie.IncludedClusterScopedResources, ExcludeCluster: ie.ExcludedClusterScopedResources,
			IncludeNamespaced: ie.IncludedNamespaceScopedResources, ExcludeNamespaced: ie.ExcludedNamespaceScopedResources}
	}
	return nil
}

// completeVolumes builds the volume configuration. A file:// location cannot take volume data
// (mover pods cannot write to this machine): unless --volumes was set, volumes are then skipped
// with a notice; with --volumes set it is an error.
func (o *CreateOptions) completeVolumes(flags *pflag.FlagSet) error {
	mode, err := volumes.ParseMode(o.Volumes)
	if err != nil {
		return fmt.Errorf("--volumes: %w", err)
	}
	// A policy's rules come before --volumes, none included (as in Velero, where a policy's
	// snapshot action wins over --snapshot-volumes=false).
	if mode == volumes.ModeNone && (o.policies == nil || len(o.policies.Rules) == 0) {
		return nil
	}
	classMap, err := mapping.Parse("mover-storage-class", mapping.StorageClass, o.MoverClassMapping)
	if err != nil {
		return err
	}
	mc, err := o.mover.config(o.location.URL)
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
	o.volCfg = &volumes.Config{Backup: o.Name, Mode: mode, SnapshotClasses: o.SnapshotClasses, VolumeGroupBy: o.VolumeGroupBy, VolumeGroups: o.VolumeGroups, GroupSnapshotClasses: o.GroupClasses, Mover: mc,
		Parallel: o.mover.Parallel, Timeout: o.mover.Timeout, DryRun: o.DryRun, HookFlags: hf, KeepSnapshots: o.KeepSnapshots,
		Policies: o.policies, SnapshotMoveData: o.SnapshotMoveData, Compression: o.Compression}
	return nil
}

// Validate checks the options without any I/O.
func (o *CreateOptions) Validate() error {
	if err := o.validateName(); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	if err := o.cfg.Namespaces.Validate(); err != nil {
		return err
	}
	if o.VolumeGroupBy != "" {
		if errs := validation.IsQualifiedName(o.VolumeGroupBy); len(errs) > 0 {
			return fmt.Errorf("--volume-group-by %q is not a label key: %s", o.VolumeGroupBy, strings.Join(errs, "; "))
		}
		if o.VolumeGroupBy == volumes.LabelGroupRun {
			return fmt.Errorf("--volume-group-by %s: that label is the tool's own, set for a run's automatic groups (--volume-groups=auto)", o.VolumeGroupBy)
		}
	}
	if o.VolumeGroups != "" && o.VolumeGroups != volumes.GroupsLabels && o.VolumeGroups != volumes.GroupsAuto {
		return fmt.Errorf("--volume-groups %q: use %s or %s", o.VolumeGroups, volumes.GroupsLabels, volumes.GroupsAuto)
	}
	if o.TTL < 0 {
		return fmt.Errorf("--ttl %s: must be positive (0 = no expiry)", o.TTL)
	}
	if err := repo.ValidateCompression(o.Compression); err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	if err := validateLabels(o.labels); err != nil {
		return err
	}
	if o.Selector != "" && o.OrSelector != "" {
		return fmt.Errorf("--selector and --or-selector cannot be used together: write the selector as one more --or-selector term")
	}
	if len(o.oldStyle) > 0 && o.cfg.Scoped != nil {
		what := "--include/exclude-cluster-scoped-resources and --include/exclude-namespace-scoped-resources"
		if o.scoped.Empty() {
			what = "the includeExcludePolicy of " + o.ResourcePolicies
		}
		return fmt.Errorf("%s (old-style filters) cannot be used with %s (new-style, Velero's rule): use one style", strings.Join(o.oldStyle, ", "), what)
	}
	if o.DryRun && o.location.URL == "" {
		return nil
	}
	return o.location.validate()
}

// Run performs the backup and prints its manifest. The password opens (or creates) the location's
// key and the backup name is claimed in the location first: a wrong password, a name in use or a
// location that cannot be written fails before the cluster is touched.
func (o *CreateOptions) Run(ctx context.Context) error {
	start := time.Now()
	err := o.run(ctx)
	if o.Prometheus != "" && !o.DryRun {
		o.writeMetrics(start, err)
	}
	return err
}

func (o *CreateOptions) run(ctx context.Context) error {
	var deps backup.Deps
	var repoPassword func(string) (string, error)
	if o.location.URL != "" {
		cat, closeFn, err := o.location.open(ctx)
		if err != nil {
			return err
		}
		defer closeFn()
		deps.Catalog = cat
		// Velero keeps backups/ and kopia/ too, and our keys/ would make it mark its location
		// Unavailable: never mix the two tools under one prefix.
		if err := velero.CheckNotVelero(ctx, cat.Location().Bucket(), cat.Location().String()); err != nil {
			return err
		}
		if !o.DryRun {
			if repoPassword, err = o.keyAndClaim(ctx, cat, &deps); err != nil {
				return err
			}
		}
	}
	if o.Name == "" { // a dry run of --generate-name
		o.setName(catalog.GenerateName(o.GenerateName, time.Now(), 1))
	}
	deps.Progress = o.output.reporter(ctx, o.streams)
	if o.GenerateName != "" {
		deps.Progress.Start("backup name")(o.Name, nil)
	}
	deps.Log = catalog.NewLog()
	defer kube.RouteWarnings(apiWarnings(deps.Log))()
	if err := o.connect(ctx, &deps, repoPassword); err != nil {
		if deps.Claim != nil {
			// backup.Run gives the name back when it stops before writing; here it was not reached.
			backup.ReleaseClaim(ctx, deps.Catalog, o.Name, deps.Claim)
		}
		return err
	}
	err := o.backup(ctx, deps)
	if o.early != nil {
		o.early.wait()
	}
	if deps.Catalog != nil && !o.DryRun && !o.SkipMaintenance && repoPassword != nil {
		o.maintain(ctx, deps, repoPassword)
	}
	return err
}

// keyAndClaim creates or opens the location's key, sets the archive key, claims the backup's
// name (deps.Claim) and saves the key's copy with the backup; it returns the repositories' keys.
// The key comes first: a location whose backups/ holds anything but no key file is an old one
// (keyring.ErrOldFormat), so the name's claim must not come before the key.
func (o *CreateOptions) keyAndClaim(ctx context.Context, cat *catalog.Catalog, deps *backup.Deps) (func(string) (string, error), error) {
	kr, err := keyring.Create(ctx, cat.Location(), o.pw)
	if err != nil {
		return nil, err
	}
	if o.cfg.ArchiveKey, err = kr.ArchiveKey(); err != nil {
		return nil, err
	}
	if err := repairKey(ctx, cat.Location(), kr, o.streams.ErrOut); err != nil {
		return nil, err
	}
	deps.Claim = catalog.NewClaim(time.Now(), version.Version)
	if err := o.claim(ctx, cat, deps.Claim); err != nil {
		return nil, err
	}
	// A copy of the wrapped key with each backup: the location survives losing keys/.
	if err := kr.SaveCopy(ctx, cat.Location(), o.Name); err != nil {
		backup.ReleaseClaim(ctx, deps.Catalog, o.Name, deps.Claim)
		return nil, err
	}
	return kr.RepoPassword, nil
}

// connect fills deps with the cluster's clients and the volume engine; repoPassword gives each
// mover its namespace's repository key.
func (o *CreateOptions) connect(ctx context.Context, deps *backup.Deps, repoPassword func(string) (string, error)) error {
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return err
	}
	deps.Dynamic, deps.Discovery, deps.Access = clients.Dynamic, clients.Discovery, kube.NewAccess(clients.Typed)
	if o.volNotice != "" {
		deps.Progress.Warn(o.volNotice)
	}
	var lock *store.Lock // an immutable location's: its new repositories are created locked
	if deps.Catalog != nil {
		lock = deps.Catalog.Location().Lock()
	}
	if o.volCfg != nil {
		vc := *o.volCfg
		vc.Mover.RepoPassword = repoPassword
		o.early = newEarlyRepos(o.lockedRepos(repoPassword, lock).Ensure)
		deps.Volumes = &volumes.Runner{Config: vc, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery, Dynamic: clients.Dynamic,
			Progress: deps.Progress, OnEvent: volumes.DataProgress(deps.Progress),
			Hooks:            &hooks.Executor{Kube: clients.Typed, Config: clients.Config},
			EnsureRepository: o.early.Ensure}}
	}
	if !o.SkipPreflight {
		deps.Preflight = o.preflight(clients, deps.Progress, repoPassword)
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
		o.result = res.Manifest
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
	fmt.Fprintf(o.streams.Out, "Backup %q %s: %s in %s%s, %s archive, %s.\n", m.Name, m.Status, progress.Plural(m.Items, "object", "objects"),
		progress.Plural(len(m.Namespaces), "namespace", "namespaces"), emptyTypes(m), progress.Bytes(m.Archive.Size), m.CompletionTime.Sub(m.StartTime))
	printExcluded(o.streams.Out, m)
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
		fmt.Fprintln(tw, "VOLUME\tMODE\tSTATUS\tFILES\tSIZE\tUPLOADED\tCOMPRESSION\tTIME\tDETAIL")
	}
	snapshots := false
	for _, v := range vols {
		snapshots = snapshots || v.Mode == "snapshot"
		q := printable.Name // describe prints a backup.json from the bucket through here
		name := q(v.Namespace + "/" + v.PVC)
		if plan {
			reason := v.Reason
			if v.Error != "" {
				reason = "error: " + v.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, orDash(v.Size), q(v.Mode), q(reason))
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
			if v.HardLinks > 0 {
				files += fmt.Sprintf(" (%d hard links)", v.HardLinks)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", name, q(v.Mode), q(v.Status), files, size, up, orDash(v.Compression), v.Seconds, q(detail))
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
		if c.Count == 0 { // folded into the summary; -o json keeps them
			continue
		}
		ns := c.Namespace
		if ns == "" {
			ns = "(cluster)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", printable.Name(c.Resource), printable.Name(ns), c.Count)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printVolumes(w, m.Volumes, true); err != nil {
		return err
	}
	fmt.Fprintf(w, "Plan for backup %q: %s in %s%s. Nothing was written (--dry-run).\n", m.Name, progress.Plural(m.Items, "object", "objects"), progress.Plural(len(m.Namespaces), "namespace", "namespaces"), emptyTypes(m))
	printExcluded(w, m)
	printProblems(w, m)
	return nil
}

func printProblems(w io.Writer, m *catalog.Manifest) {
	for _, e := range m.Errors {
		fmt.Fprintf(w, "  error: %s\n", printable.Lines(e))
	}
	for _, wn := range m.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", printable.Lines(wn.Message))
	}
}

// validateLabels checks --labels as the apiserver checks an object's labels.
func validateLabels(l map[string]string) error {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("--labels: key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(l[k]); len(errs) > 0 {
			return fmt.Errorf("--labels: value %q of %s: %s", l[k], k, strings.Join(errs, "; "))
		}
	}
	return nil
}

// apiWarnings puts the apiserver's warnings into the backup's log (`logs` shows them), not on
// the terminal: a backup lists every served type, and the deprecation of one it does not name
// ("v1 Endpoints is deprecated in v1.33+") is nothing its user can act on. A dry run keeps no log.
func apiWarnings(log *catalog.Log) func(string) {
	return func(msg string) {
		log.Add(catalog.LogEntry{Level: "warning", Message: "apiserver: " + msg})
	}
}

// emptyTypes is the summary's note of the resource types that had no objects: ", 41 resource
// types empty" ("" when none), so that they need not be listed one per line.
func emptyTypes(m *catalog.Manifest) string {
	totals := map[string]int{}
	for _, c := range m.Resources {
		totals[c.Resource] += c.Count
	}
	n := 0
	for _, t := range totals {
		if t == 0 {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s with no objects)", progress.Plural(n, "resource type", "resource types"))
}

// printExcluded says how many objects their exclusion label kept out (describe lists them).
func printExcluded(w io.Writer, m *catalog.Manifest) {
	if len(m.Excluded) > 0 {
		fmt.Fprintf(w, "Left out by their exclusion label: %s (see describe).\n", progress.Plural(len(m.Excluded), "object", "objects"))
	}
}
