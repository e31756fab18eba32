package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/modifiers"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

var restoreExample = examples(`
	# Restore everything in backup shop-1
	%[1]s restore shop-1 --from 's3://backups/prod?region=eu-west-1'

	# Restore namespace shop as shop-copy, and see first what would happen
	%[1]s restore shop-1 --namespace-mapping shop:shop-copy --dry-run

	# Overwrite objects that exist with the backup's version
	%[1]s restore shop-1 --include-resources configmaps,secrets --existing-resource-policy update

	# Restore onto another StorageClass, patching objects with a Velero resource modifier file
	%[1]s restore shop-1 --storage-class-mapping gp2:gp3 --resource-modifiers modifiers.yaml

	# The data of one volume only, into a new claim (nothing else is created or changed)
	%[1]s restore shop-1 --data-only --volumes shop/data --target-pvc shop/data-restored`)

// RestoreOptions are the flags of `restore`.
type RestoreOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	Name     string
	location locationOptions
	output   outputOptions
	password passwordOptions
	selectionOptions
	NamespaceMapping  []string
	ExistingPolicy    string
	PreserveNodePorts bool
	DryRun            bool
	RestoreVolumes    bool
	ClassMapping      []string
	FinishedJobs      bool
	RunningJobs       string
	ModifiersFile     string
	SkipPreflight     bool
	mover             moverOptions
	DataOnly          bool
	InPlace           bool
	DataVolumes       []string
	TargetPVC         string
	IncludePath       string

	pw        string // the user's password: it only unwraps the location key (internal/keyring)
	cfg       restore.Config
	volCfg    *volumes.Config
	volNotice string
}

// NewRestoreCmd builds `restore`.
func NewRestoreCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:     "restore NAME [--from URL]",
		Short:   "Restore a backup into this cluster",
		Example: fmt.Sprintf(restoreExample, "kubectl pvbackup"),
		Args:    cobra.ExactArgs(1),
		RunE:    func(cmd *cobra.Command, args []string) error { return runSteps(cmd.Context(), o.Complete(args), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	o.addEngineFlags(fs, flags)
	fs.BoolVar(&o.SkipPreflight, "skip-preflight", false, "do not check the target first (StorageClasses of the PVCs exist, a node can run the mover, the namespaces admit it)")
	fs.BoolVar(&o.DataOnly, "data-only", false, "restore the data of --volumes only, into new claims (from the backed-up spec) or existing empty ones: no other object is created or changed")
	fs.BoolVar(&o.InPlace, "in-place", false, "with --volumes: make the existing claims equal to the backup while their workloads are stopped (scaled to zero / suspended, put back as they were afterwards, also on failure or Ctrl-C); --dry-run lists the workloads and the data difference")
	fs.StringSliceVar(&o.DataVolumes, "volumes", nil, "with --data-only or --in-place: the volumes to restore, as backed up: namespace/pvc[,namespace/pvc]")
	fs.StringVar(&o.TargetPVC, "target-pvc", "", "with --data-only and one volume: the claim to fill, namespace/name (default: the same name in the mapped namespace)")
	fs.StringVar(&o.IncludePath, "include-path", "", "with --data-only: restore only this directory of the volume (to the same path)")
	return cmd
}

// addEngineFlags adds the flags of the restore engine and the movers: `restore` and `velero restore`.
func (o *RestoreOptions) addEngineFlags(fs *pflag.FlagSet, flags *genericclioptions.ConfigFlags) {
	o.selectionOptions.addFlags(fs, selectionHelp{
		includeNamespaces: "namespaces of the backup to restore, globs allowed (default all)",
		excludeNamespaces: "namespaces of the backup to leave out",
		includeResources:  "resource types to restore (default all)",
		excludeResources:  "resource types to leave out",
	})
	fs.StringSliceVar(&o.NamespaceMapping, "namespace-mapping", nil, "restore namespaces under other names: old:new[,old2:new2]")
	fs.StringVar(&o.ExistingPolicy, "existing-resource-policy", "none", "objects that exist: none (leave them) or update (overwrite with the backup's)")
	fs.BoolVar(&o.PreserveNodePorts, "preserve-nodeports", false, "keep Services' node ports instead of letting the cluster pick new ones")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print what would be restored and change nothing")
	fs.BoolVar(&o.RestoreVolumes, "restore-volumes", true, "fill restored PVCs with their backed-up data (a restore mover Job per PVC) before workloads are created; false restores specs only")
	fs.StringSliceVar(&o.ClassMapping, "storage-class-mapping", nil, "restore PVCs, PVs and StatefulSet volumeClaimTemplates with another StorageClass (spec and beta annotation): old:new[,old2:new2]")
	fs.BoolVar(&o.FinishedJobs, "include-finished-jobs", false, "also restore Jobs that had completed or failed and Pods that had succeeded or failed: they run again")
	fs.StringVar(&o.RunningJobs, "running-jobs", string(restore.RunningSuspend), "Jobs running at backup time: suspend (restore them with spec.suspend=true), restore (they start again) or skip")
	fs.StringVar(&o.ModifiersFile, "resource-modifiers", "", "patch objects on their way in with a Velero resource modifier file (version v1: JSON, merge and strategic patches)")
	o.mover.addFlags(fs, flags)
	o.mover.addLimitFlags(fs)
}

// Complete fills the options from arguments and environment.
func (o *RestoreOptions) Complete(args []string) error {
	o.Name = args[0]
	o.location.complete()
	if err := o.engineConfig(); err != nil {
		return err
	}
	var err error
	if o.pw, err = o.password.load(o.streams.ErrOut); err != nil {
		return err
	}
	if o.InPlace {
		o.DataOnly = true
	}
	if o.DataOnly && (!o.DryRun || o.InPlace) { // an in-place dry run compares with a read-only mover
		mc, err := o.mover.config(o.location.URL)
		if err != nil {
			return err
		}
		o.volCfg = &volumes.Config{Backup: o.Name, Mover: mc, Parallel: o.mover.Parallel, Timeout: o.mover.Timeout}
		return nil
	}
	o.moverConfig(o.location.URL)
	return nil
}

// moverConfig sets volCfg for a restore that fills claims, or volNotice when it cannot.
func (o *RestoreOptions) moverConfig(location string) {
	if !o.RestoreVolumes || o.DryRun {
		return
	}
	mc, err := o.mover.config(location)
	if err != nil {
		o.volNotice = "volume data is not restored: " + err.Error()
		return
	}
	o.volCfg = &volumes.Config{Backup: o.Name, Mover: mc, Parallel: o.mover.Parallel, Timeout: o.mover.Timeout}
}

// engineConfig builds the engine's Config from the flags of addEngineFlags.
func (o *RestoreOptions) engineConfig() error {
	policy, err := restore.ParsePolicy(o.ExistingPolicy)
	if err != nil {
		return err
	}
	nsMapping, err := mapping.Parse("namespace-mapping", mapping.Namespace, o.NamespaceMapping)
	if err != nil {
		return err
	}
	running, err := restore.ParseRunningJobs(o.RunningJobs)
	if err != nil {
		return err
	}
	namespaces, resources := o.filters(nil)
	o.cfg = restore.Config{
		Backup:              o.Name,
		Namespaces:          namespaces,
		Resources:           resources,
		LabelSelector:       o.Selector,
		NamespaceMapping:    nsMapping,
		Policy:              policy,
		PreserveNodePorts:   o.PreserveNodePorts,
		DryRun:              o.DryRun,
		IncludeFinishedJobs: o.FinishedJobs,
		RunningJobs:         running,
	}
	if o.ModifiersFile != "" {
		data, err := os.ReadFile(o.ModifiersFile)
		if err != nil {
			return fmt.Errorf("--resource-modifiers: %w", err)
		}
		if o.cfg.Modifiers, err = modifiers.Load(data); err != nil {
			return fmt.Errorf("--resource-modifiers %s: %w", o.ModifiersFile, err)
		}
	}
	o.cfg.RestoreVolumes = o.RestoreVolumes
	o.cfg.StorageClassMapping, err = mapping.Parse("storage-class-mapping", mapping.StorageClass, o.ClassMapping)
	return err
}

// Validate checks the options without any I/O.
func (o *RestoreOptions) Validate() error {
	if err := catalog.ValidateName(o.Name); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	if err := o.cfg.Namespaces.Validate(); err != nil {
		return err
	}
	if err := o.mover.limits(&volumes.MoverConfig{}); err != nil {
		return err
	}
	if err := o.validateDataOnly(); err != nil {
		return err
	}
	return o.location.validate()
}

func (o *RestoreOptions) validateDataOnly() error {
	if !o.DataOnly {
		if len(o.DataVolumes) > 0 || o.TargetPVC != "" || o.IncludePath != "" {
			return fmt.Errorf("--volumes, --target-pvc and --include-path go with --data-only")
		}
		return nil
	}
	if len(o.DataVolumes) == 0 {
		return fmt.Errorf("--data-only needs --volumes namespace/pvc[,namespace/pvc] (see `kubectl pvbackup ls %s`)", o.Name)
	}
	if o.TargetPVC != "" && len(o.DataVolumes) != 1 {
		return fmt.Errorf("--target-pvc takes one volume; --volumes names %d", len(o.DataVolumes))
	}
	if ignored := o.resourceOnlyFlags(); len(ignored) > 0 {
		return fmt.Errorf("--data-only restores volume data only (name them with --volumes): %s do not apply", strings.Join(ignored, ", "))
	}
	claims := o.DataVolumes
	if o.TargetPVC != "" {
		claims = append([]string{o.TargetPVC}, claims...)
	}
	for _, v := range claims {
		if ns, name, ok := strings.Cut(v, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("%q: name a claim as namespace/name", v)
		}
	}
	return nil
}

// resourceOnlyFlags are the flags given that shape how objects are restored, which a data-only
// restore does not do: refused rather than ignored without a word.
func (o *RestoreOptions) resourceOnlyFlags() []string {
	var set []string
	for _, f := range []struct {
		name string
		on   bool
	}{
		{"--include-resources", len(o.IncludeResources) > 0}, {"--exclude-resources", len(o.ExcludeResources) > 0}, {"-l", o.Selector != ""},
		{"--include-namespaces", len(o.IncludeNamespaces) > 0}, {"--exclude-namespaces", len(o.ExcludeNamespaces) > 0},
		{"--existing-resource-policy", o.ExistingPolicy != "none"}, {"--preserve-nodeports", o.PreserveNodePorts},
		{"--restore-volumes", !o.RestoreVolumes}, {"--include-finished-jobs", o.FinishedJobs},
		{"--running-jobs", o.RunningJobs != string(restore.RunningSuspend)}, {"--resource-modifiers", o.ModifiersFile != ""},
	} {
		if f.on {
			set = append(set, f.name)
		}
	}
	return set
}

// runDataOnly restores the data of the named volumes and nothing else.
func (o *RestoreOptions) runDataOnly(ctx context.Context, clients *kube.Clients, cat *catalog.Catalog) error {
	deps := restore.DataDeps{Kube: clients.Typed, Snap: clients.Snap, Catalog: cat, Progress: o.output.reporter(ctx, o.streams)}
	if o.volCfg != nil {
		deps.Volumes = &volumes.Runner{Config: *o.volCfg, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery,
			Progress: deps.Progress, OnEvent: volumes.DataProgress(deps.Progress)}}
	}
	if o.volCfg != nil && !o.SkipPreflight {
		deps.Preflight = o.restorePreflight(clients, deps.Progress)
	}
	run := restore.DataOnly
	if o.InPlace {
		run = restore.InPlace
	}
	res, err := run(ctx, deps, restore.DataConfig{Backup: o.Name, Volumes: o.DataVolumes, Target: o.TargetPVC,
		NamespaceMapping: o.cfg.NamespaceMapping, StorageClassMapping: o.cfg.StorageClassMapping, IncludePath: o.IncludePath,
		ArchiveKey: o.cfg.ArchiveKey, DryRun: o.DryRun, Timeout: o.mover.Timeout})
	return o.finish(res, err)
}

// Run restores and prints the outcome per item.
func (o *RestoreOptions) Run(ctx context.Context) error {
	cat, closeFn, err := o.location.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	// The password is checked before the cluster is touched.
	kr, err := keyring.Open(ctx, cat.Location(), o.pw)
	if err != nil {
		return err
	}
	if err := repairKey(ctx, cat.Location(), kr, o.streams.ErrOut); err != nil {
		return err
	}
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return err
	}
	if o.cfg.ArchiveKey, err = kr.ArchiveKey(); err != nil {
		return err
	}
	if o.volCfg != nil {
		// Each mover gets the key of the repository it reads: the source namespace's, also
		// when --namespace-mapping restores it elsewhere (volumes.Task.SourceNamespace).
		o.volCfg.Mover.RepoPassword = kr.RepoPassword
	}
	if o.DataOnly {
		return o.runDataOnly(ctx, clients, cat)
	}
	deps := restore.Deps{Dynamic: clients.Dynamic, Discovery: clients.Discovery, Catalog: cat, Progress: o.output.reporter(ctx, o.streams)}
	if o.volNotice != "" {
		deps.Progress.Warn(o.volNotice)
	}
	if o.volCfg != nil {
		deps.Volumes = &volumes.Runner{Config: *o.volCfg, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery,
			Progress: deps.Progress, OnEvent: volumes.DataProgress(deps.Progress)}}
		if !o.SkipPreflight {
			deps.Preflight = o.restorePreflight(clients, deps.Progress)
		}
	}
	res, err := restore.Run(ctx, deps, o.cfg)
	return o.finish(res, err)
}

// finish prints the result and maps failed items to ErrPartial.
func (o *RestoreOptions) finish(res *restore.Result, err error) error {
	if res != nil {
		if perr := o.print(res); perr != nil {
			return perr
		}
	}
	if err != nil {
		return err
	}
	if res.Failed() {
		vf := 0
		for _, v := range res.Volumes {
			if v.Action == restore.Failed {
				vf++
			}
		}
		return fmt.Errorf("restore of %q: %d of %d objects and %d of %d volumes failed (listed above): %w", o.Name, res.Summary[restore.Failed], len(res.Items), vf, len(res.Volumes), ErrPartial)
	}
	return nil
}

func (o *RestoreOptions) print(res *restore.Result) error {
	if o.output.Format != "" {
		return o.output.print(o.streams.Out, res)
	}
	w := o.streams.Out
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	rows := 0
	for _, it := range res.Items {
		// A real restore lists what did not simply get created (or was created with something
		// to know: a finished Job that runs again, a modified object); a dry run lists everything.
		if !res.DryRun && it.Action == restore.Created && it.Reason == "" {
			continue
		}
		if rows == 0 {
			fmt.Fprintln(tw, "RESOURCE\tNAMESPACE\tNAME\tRESULT\tREASON")
		}
		rows++
		q := printable.Name // names from the backup's archive and the cluster
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", q(it.Resource), orDash(it.Namespace), q(it.Name), it.Action, q(it.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Volumes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "VOLUME\tFROM\tMODE\tRESULT\tFILES\tSIZE\tTIME\tREASON")
		for _, v := range res.Volumes {
			files, size := "-", "-"
			if v.Action == restore.Restored || v.Action == restore.Synced {
				files, size = fmt.Sprint(v.Files), progress.Bytes(v.Bytes)
				if v.HardLinks > 0 {
					files += fmt.Sprintf(" (%d hard links)", v.HardLinks)
				}
			}
			q := printable.Name
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", q(v.Namespace+"/"+v.PVC), q(v.From), q(v.Mode), v.Action, files, size, v.Seconds, q(v.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var parts []string
	for _, a := range []restore.Action{restore.Created, restore.Updated, restore.WouldCreate, restore.WouldUpdate, restore.Skipped, restore.Failed} {
		if n := res.Summary[a]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, a))
		}
	}
	parts = append(parts, volumeCounts(res.Volumes)...)
	if n := hardLinks(res.Volumes); n > 0 {
		parts = append(parts, progress.Plural(int(n), "hard link", "hard links")+" made again")
	}
	if len(parts) == 0 {
		parts = []string{"nothing selected"}
	}
	suffix := ""
	if res.DryRun {
		suffix = " Nothing was changed (--dry-run)."
	}
	fmt.Fprintf(w, "Restore of %q: %s.%s\n", res.Backup, strings.Join(parts, ", "), suffix)
	for _, wn := range res.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", printable.Lines(wn))
	}
	return nil
}

func hardLinks(vols []restore.VolumeItem) int64 {
	var n int64
	for _, v := range vols {
		n += v.HardLinks
	}
	return n
}

// volumeCounts is "2 volumes synced", "1 volume failed", ... in the order volumes come.
func volumeCounts(vols []restore.VolumeItem) []string {
	counts := map[restore.Action]int{}
	var order []restore.Action
	for _, v := range vols {
		if counts[v.Action] == 0 {
			order = append(order, v.Action)
		}
		counts[v.Action]++
	}
	parts := make([]string, 0, len(order))
	for _, a := range order {
		noun := "volumes"
		if counts[a] == 1 {
			noun = "volume"
		}
		parts = append(parts, fmt.Sprintf("%d %s %s", counts[a], noun, a))
	}
	return parts
}

// orDash prints a value read from a backup or the cluster, "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return printable.Name(s)
}
