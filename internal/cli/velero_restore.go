package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/velero"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

var veleroRestoreExample = examples(`
	# See first what restoring Velero's backup nightly-20260101 would do (nothing is changed)
	%[1]s velero restore nightly-20260101 --from-velero 's3://velero-backups/prod?region=eu-west-1' --dry-run

	# Restore it into namespace shop-copy, with the repository password Velero was given
	%[1]s velero restore nightly-20260101 --from-velero 's3://velero-backups/prod?region=eu-west-1' \
	    --namespace-mapping shop:shop-copy --velero-password-file ./velero-repo-password

	# Fill the existing, empty claim shop/data with its data from that backup, and nothing else
	%[1]s velero restore nightly-20260101 --from-velero 's3://velero-backups/prod?region=eu-west-1' \
	    --data-only --volumes shop/data`)

// VeleroRestoreOptions are the flags of `velero restore`: the restore engine's, with the backup
// read from Velero's location.
type VeleroRestoreOptions struct {
	RestoreOptions
	veleroLocation    veleroLocationOptions
	PasswordFile      string
	AllowPartial      bool
	RequireAllVolumes bool
}

// NewVeleroRestoreCmd builds `velero restore`.
func NewVeleroRestoreCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VeleroRestoreOptions{RestoreOptions: RestoreOptions{configFlags: flags, streams: streams}}
	cmd := &cobra.Command{
		Use:   "restore NAME --from-velero URL",
		Short: "Restore a Velero backup into this cluster, with nothing of Velero installed and nothing written to its bucket",
		Long: `Restore a backup Velero (1.x) wrote, through kubectl pvbackup's own restore engine: the objects come
from Velero's resources tarball, each claim's data from the Kopia snapshot Velero recorded (fs-backup
or its data mover), read from Velero's repository read-only and written into the new claim by a
restore mover before the workloads start.

Left out: Velero's own objects (DataUploads, PodVolumeBackups, ...), events, VolumeSnapshots Velero
made. Removed: Velero's restore-wait init containers, its labels and its marks on claims.
Volumes whose data is not in the bucket (CSI or native snapshots, restic, third-party movers) are
reported skipped and their claims created empty (exit 2); --require-all-volumes refuses instead.

--data-only fills claims from the backup's data and creates nothing else: the named volumes into
existing empty claims, or new ones made from Velero's copy of the claim.

The repository password: --velero-password-file, else the Secret velero-repo-credentials of
Velero's namespace when the cluster has it, else Velero's built-in default. It is checked on
every repository the restore reads before anything is created, also with --dry-run; then the
target is checked as restore checks it (--skip-preflight).`,
		Example: fmt.Sprintf(veleroRestoreExample, "kubectl pvbackup"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(cmd.Context(), o.Complete(args), o)
		},
	}
	fs := cmd.Flags()
	o.veleroLocation.addFlag(fs)
	o.output.addFlag(fs)
	o.addEngineFlags(fs, flags)
	fs.StringVar(&o.PasswordFile, "velero-password-file", "", "file holding the password of Velero's Kopia repositories (default: the Secret velero-repo-credentials, else Velero's built-in default)")
	fs.BoolVar(&o.AllowPartial, "allow-partially-failed", false, "restore a PartiallyFailed backup: what it holds")
	fs.BoolVar(&o.RequireAllVolumes, "require-all-volumes", false, "refuse, creating nothing, when a volume's data cannot be restored (instead of restoring its claim empty)")
	fs.BoolVar(&o.SkipPreflight, "skip-preflight", false, "do not check the target first (StorageClasses of the PVCs exist, a node can run the mover, the namespaces admit it)")
	fs.BoolVar(&o.DataOnly, "data-only", false, "restore the data of --volumes only, into new claims (from the backed-up spec) or existing empty ones: no other object is created or changed")
	fs.StringSliceVar(&o.DataVolumes, "volumes", nil, "with --data-only: the volumes to restore, as backed up: namespace/pvc[,namespace/pvc]")
	fs.StringVar(&o.TargetPVC, "target-pvc", "", "with --data-only and one volume: the claim to fill, namespace/name (default: the same name in the mapped namespace)")
	fs.StringVar(&o.IncludePath, "include-path", "", "with --data-only: restore only this directory of the volume (to the same path)")
	return cmd
}

// Complete fills the options from the arguments.
func (o *VeleroRestoreOptions) Complete(args []string) error {
	o.Name = args[0]
	if err := o.engineConfig(); err != nil {
		return err
	}
	if o.DataOnly && !o.DryRun { // data only is all about the data: no mover, no restore
		mc, err := o.mover.config(o.veleroLocation.URL)
		if err != nil {
			return err
		}
		o.volCfg = &volumes.Config{Backup: o.Name, Mover: mc, Parallel: o.mover.Parallel, Timeout: o.mover.Timeout}
		return nil
	}
	o.moverConfig(o.veleroLocation.URL) // --mover-location when the pods reach the bucket elsewhere
	return nil
}

// Validate checks the options without any I/O.
func (o *VeleroRestoreOptions) Validate() error {
	if err := o.veleroLocation.validate(); err != nil {
		return err
	}
	if err := velero.ValidateName(o.Name); err != nil {
		return err
	}
	if err := o.output.validate(); err != nil {
		return err
	}
	if o.DataOnly && len(o.DataVolumes) == 0 {
		return fmt.Errorf("--data-only needs --volumes namespace/pvc[,namespace/pvc] (see `kubectl pvbackup velero describe %s --from-velero URL`)", o.Name)
	}
	if err := o.validateDataOnly(); err != nil {
		return err
	}
	return o.cfg.Namespaces.Validate()
}

// Run reads the Velero backup whole, checks the password on each repository it reads, then
// restores through the engine.
func (o *VeleroRestoreOptions) Run(ctx context.Context) error {
	loc, err := o.veleroLocation.open(ctx)
	if err != nil {
		return err
	}
	defer loc.Close() //nolint:errcheck // read-only
	d, err := loc.Describe(ctx, o.Name)
	if err != nil {
		return err
	}
	src := velero.NewSource(d, o.AllowPartial)
	if _, err := src.Header(ctx); err != nil {
		return err
	}
	if unrestorable := o.unrestorable(d.Volumes); o.RequireAllVolumes && !o.DataOnly && len(unrestorable) > 0 {
		return fmt.Errorf("--require-all-volumes: %d volumes of Velero backup %q cannot be restored, nothing was created: %s", len(unrestorable), o.Name, strings.Join(unrestorable, "; "))
	}
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return err
	}
	rep := o.output.reporter(ctx, o.streams)
	if o.volNotice != "" {
		rep.Warn(o.volNotice)
	}
	if o.volCfg != nil || (o.DryRun && o.RestoreVolumes) {
		if err := o.openRepositories(ctx, loc, d, clients); err != nil {
			return err
		}
	}
	var runner *volumes.Runner
	var preflight restore.Preflight
	if o.volCfg != nil {
		runner = &volumes.Runner{Config: *o.volCfg, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery,
			Progress: rep, OnEvent: volumes.DataProgress(rep)}}
		if !o.SkipPreflight {
			preflight = o.restorePreflight(clients, rep) // the engine hands it the claims its movers fill
		}
	}
	if o.DataOnly {
		return o.runDataOnlyFrom(ctx, clients, src, runner, preflight, rep)
	}
	deps := restore.Deps{Dynamic: clients.Dynamic, Discovery: clients.Discovery, Source: src, Progress: rep, Preflight: preflight}
	if runner != nil {
		deps.Volumes = runner
	}
	res, err := restore.Run(ctx, deps, o.cfg)
	if ferr := o.finish(res, err); ferr != nil || res == nil {
		return ferr
	}
	return o.partial(res, d)
}

// runDataOnlyFrom fills the claims of --volumes from the Velero backup and changes nothing else.
func (o *VeleroRestoreOptions) runDataOnlyFrom(ctx context.Context, clients *kube.Clients, src *velero.Source, runner *volumes.Runner, preflight restore.Preflight, rep progress.Reporter) error {
	deps := restore.DataDeps{Kube: clients.Typed, Snap: clients.Snap, Source: src, Progress: rep, Preflight: preflight}
	if runner != nil {
		deps.Volumes = runner
	}
	res, err := restore.DataOnly(ctx, deps, restore.DataConfig{Backup: o.Name, Volumes: o.DataVolumes, Target: o.TargetPVC,
		NamespaceMapping: o.cfg.NamespaceMapping, StorageClassMapping: o.cfg.StorageClassMapping, IncludePath: o.IncludePath, DryRun: o.DryRun})
	return o.finish(res, err)
}

// unrestorable names the volumes of the restored namespaces whose data cannot be restored.
func (o *VeleroRestoreOptions) unrestorable(vols []velero.Volume) []string {
	var out []string
	for _, v := range vols {
		if !v.Restorable && o.cfg.Namespaces.Match(v.Namespace) {
			out = append(out, v.Key()+": "+v.Reason)
		}
	}
	return out
}

// partial is ErrPartial (exit 2) when a restored claim's data could not be restored: the claim
// was created empty.
func (o *VeleroRestoreOptions) partial(res *restore.Result, d *velero.Details) error {
	lost := map[string]bool{}
	for _, v := range d.Volumes {
		if !v.Restorable && v.PVC != "" {
			lost[v.Namespace+"/"+v.PVC] = true
		}
	}
	n := 0
	for _, v := range res.Volumes {
		if lost[v.From] && v.Action == restore.Skipped {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	what := fmt.Sprintf("the data of %d volumes is not in the bucket, their claims were", n)
	if n == 1 {
		what = "the data of 1 volume is not in the bucket, its claim was"
	}
	return fmt.Errorf("restore of Velero backup %q: %s created empty (listed above; --require-all-volumes refuses instead): %w", o.Name, what, ErrPartial)
}

// openRepositories picks the repository password and opens, read-only, every repository the
// restore reads: a wrong password fails here, naming the repository, before anything is created.
func (o *VeleroRestoreOptions) openRepositories(ctx context.Context, loc *velero.Location, d *velero.Details, clients *kube.Clients) error {
	ns := d.Backup.Namespace
	if ns == "" {
		ns = "velero"
	}
	var secret velero.SecretReader
	if o.PasswordFile == "" {
		secret = velero.SecretFrom(clients.Typed.CoreV1(), ns)
	}
	pw, err := velero.ResolvePassword(ctx, o.PasswordFile, secret)
	if err != nil {
		return err
	}
	if pw.Value == velero.DefaultPassword {
		fmt.Fprintf(o.streams.ErrOut, "warning: Velero's repository password: %s (%q), which every Velero install without its own uses; pass --velero-password-file if Velero was given another\n", pw.Source, velero.DefaultPassword)
	} else {
		fmt.Fprintf(o.streams.ErrOut, "Velero's repository password: %s\n", pw.Source)
	}
	for _, rns := range repositoriesRead(d, o.cfg, o.dataVolumes()) {
		r, err := loc.OpenRepository(ctx, rns, pw, "")
		if err != nil {
			return err
		}
		if err := r.Close(ctx); err != nil {
			return err
		}
	}
	if o.volCfg == nil {
		return nil // a dry run: the password is checked, no mover runs
	}
	o.volCfg.Mover.ReadOnlyRepository = true
	o.volCfg.Mover.RepoPassword = func(string) (string, error) { return pw.Value, nil }
	return nil
}

// dataVolumes are the volumes --data-only restores (nil: not a data-only restore).
func (o *VeleroRestoreOptions) dataVolumes() map[string]bool {
	if !o.DataOnly {
		return nil
	}
	out := map[string]bool{}
	for _, v := range o.DataVolumes {
		out[v] = true
	}
	return out
}

// repositoriesRead are the source namespaces whose repositories hold data the restore reads: of
// the volumes the namespace selection keeps, or only of those named (--data-only).
func repositoriesRead(d *velero.Details, cfg restore.Config, named map[string]bool) []string {
	seen := map[string]bool{}
	for _, v := range d.Volumes {
		picked := cfg.Namespaces.Match(v.Namespace)
		if named != nil {
			picked = named[v.Key()]
		}
		if v.Restorable && !v.Empty && v.PVC != "" && picked {
			seen[v.Namespace] = true
		}
	}
	out := make([]string, 0, len(seen))
	for ns := range seen {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
