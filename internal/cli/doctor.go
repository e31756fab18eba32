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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

var doctorExample = examples(`
	# Check the cluster, the rights in namespace shop and the location, in seconds
	%[1]s doctor -n shop --location 's3://backups/prod?region=eu-west-1'

	# Also take a real snapshot and restore of StorageClass gp3, with a mover that reaches the bucket
	%[1]s doctor -n shop --location 's3://backups/prod?region=eu-west-1' --storage-class gp3

	# Gate a CI job: exit 0 all ok, 2 warnings only, 1 a failure
	%[1]s doctor --include-namespaces 'team-*' -o json`)

// DoctorOptions are the flags of `doctor`.
type DoctorOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	location          locationOptions
	output            outputOptions
	password          passwordOptions
	IncludeNamespaces []string
	AllNamespaces     bool
	StorageClasses    []string
	SnapshotClasses   []string
	Volumes           string
	Probe             bool
	ProbeSize         string
	mover             moverOptions

	cfg doctor.Config
}

// NewDoctorCmd builds `doctor`.
func NewDoctorCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DoctorOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:   "doctor [--storage-class CLASS]",
		Short: "Check that backups and restores can work here: snapshots, rights, location, Pod Security, quotas, and a live probe",
		Long: `doctor checks, before the first backup, what makes backups fail later: the snapshot API and a
running snapshot controller; per CSI driver in use, the VolumeSnapshotClass create would choose and
why; the caller's rights for every call create and restore make (SelfSubjectAccessReview, per
namespace); the location (reachable, writable, the password unwraps its key, and each namespace's
key derived from it opens that namespace's repository); Pod Security and ResourceQuotas against the
mover pod the plugin would create (a server-side dry run); and each schedule printed by
schedule print (a CronJob labelled pvbackup.io/schedule): its ServiceAccount's rights for every
call its runs make (SubjectAccessReview, per backed-up namespace) and its Secret.

With --storage-class (or --probe) it also runs a live probe per class in a temporary namespace: a
PVC, a mover pod that writes a file and reaches the location from inside the cluster, a
VolumeSnapshot, a PVC restored from it and the file read back; each step is timed and bounded by
--timeout. Everything it creates is labelled and deleted, also on Ctrl-C (` + "`cleanup`" + ` finds leftovers).

Exit codes: 0 every check ok; 2 warnings only; 1 a check failed.`,
		Example: fmt.Sprintf(doctorExample, "kubectl pvbackup"),
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(cmd.Flags()), o) },
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "location")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
	fs.StringSliceVar(&o.IncludeNamespaces, "include-namespaces", nil, "namespaces whose rights, Pod Security and quotas are checked, globs allowed (default: the -n namespace, else the kubeconfig's)")
	fs.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "check for a backup of every namespace (rights cluster-wide)")
	fs.StringSliceVar(&o.StorageClasses, "storage-class", nil, "StorageClasses to check and probe (default: those of the PVCs in scope and the default class; probed only when given)")
	fs.StringSliceVar(&o.SnapshotClasses, "snapshot-class", nil, "VolumeSnapshotClass create would be given (--snapshot-class of create)")
	fs.StringVar(&o.Volumes, "volumes", "auto", "the --volumes mode of the backups to check for: auto, snapshot-move, fs, snapshot")
	fs.BoolVar(&o.Probe, "probe", false, "run the live probe per StorageClass (default on when --storage-class is given)")
	fs.StringVar(&o.ProbeSize, "probe-size", "1Gi", "size of the probe's PVC (some drivers have a minimum)")
	o.mover.addFlags(fs, flags)
	// The probe runs its classes two at a time and bounds its movers by --timeout: these two
	// shape nothing here.
	_ = fs.MarkHidden("parallel")
	_ = fs.MarkHidden("mover-deadline")
	// A probe step is a few seconds when things work: a short default says a stuck one sooner.
	if f := fs.Lookup("timeout"); f != nil {
		_ = f.Value.Set("2m")
		f.DefValue = "2m0s"
		f.Usage = "how long each probe step may take"
	}
	return cmd
}

// Complete fills the options from flags, environment and kubeconfig.
func (o *DoctorOptions) Complete(flags *pflag.FlagSet) error {
	o.location.complete()
	if !flags.Changed("probe") {
		o.Probe = len(o.StorageClasses) > 0
	}
	mode, err := volumes.ParseMode(o.Volumes)
	if err != nil {
		return fmt.Errorf("--volumes: %w", err)
	}
	if len(o.IncludeNamespaces) == 0 && !o.AllNamespaces {
		ns, _, err := o.configFlags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return fmt.Errorf("the kubeconfig's namespace: %w", err)
		}
		o.IncludeNamespaces = []string{ns}
	}
	o.cfg = doctor.Config{AllNamespaces: o.AllNamespaces, StorageClasses: o.StorageClasses, SnapshotClasses: o.SnapshotClasses,
		Mode: mode, Location: o.location.URL, Probe: o.Probe, Timeout: o.mover.Timeout, ProbeSize: o.ProbeSize}
	o.cfg.Mover, o.cfg.MoverErr = o.mover.config(o.location.URL)
	return nil
}

// Validate checks the options without any I/O.
func (o *DoctorOptions) Validate() error {
	if err := o.output.validate(); err != nil {
		return err
	}
	if err := (selection.NamespaceFilter{Include: o.IncludeNamespaces}).Validate(); err != nil {
		return err
	}
	if o.location.URL != "" {
		return o.location.validate()
	}
	return nil
}

// Run checks and prints the report; the error carries the exit code.
func (o *DoctorOptions) Run(ctx context.Context) error {
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return err
	}
	if !o.AllNamespaces {
		if o.cfg.Namespaces, err = resolveNamespaces(ctx, clients, o.IncludeNamespaces); err != nil {
			return err
		}
		for _, n := range o.IncludeNamespaces {
			o.cfg.ListNamespaces = o.cfg.ListNamespaces || strings.ContainsAny(n, "*?[")
		}
	}
	deps := doctorDeps(clients)
	deps.Keys = func(ctx context.Context, loc *store.Location) (func(string) (string, error), error) {
		pw, err := loadPassword(o.password.File, o.streams.ErrOut)
		if err != nil {
			return nil, err
		}
		kr, err := keyring.Open(ctx, loc, pw)
		if err != nil {
			return nil, err
		}
		if kr.Damage != "" { // the keys work: the repositories are still checked
			return kr.RepoPassword, fmt.Errorf("%s: %w", kr.Damage, keyring.ErrDamaged)
		}
		return kr.RepoPassword, nil
	}
	if o.output.Format == "" {
		deps.Progress = func(msg string) { fmt.Fprintf(o.streams.ErrOut, "... %s\n", printable.Lines(msg)) }
	}
	rep := doctor.Run(ctx, deps, o.cfg, doctor.StaticSteps())
	if o.output.Format != "" {
		if err := o.output.print(o.streams.Out, rep); err != nil {
			return err
		}
	} else if err := printReport(o.streams.Out, rep); err != nil {
		return err
	}
	return reportError(rep, ctx)
}

// resolveNamespaces expands globs against the cluster's namespaces; a plain name need not exist.
func resolveNamespaces(ctx context.Context, clients *kube.Clients, include []string) ([]string, error) {
	globs := false
	for _, n := range include {
		globs = globs || strings.ContainsAny(n, "*?[")
	}
	if !globs {
		return include, nil
	}
	list, err := clients.Typed.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var names []string
	for _, n := range list.Items {
		names = append(names, n.Name)
	}
	return selection.NamespaceFilter{Include: include}.Resolve(names)
}

// doctorDeps connects the doctor to the cluster; repositories are opened as movers open them.
func doctorDeps(c *kube.Clients) doctor.Deps {
	return doctor.Deps{Kube: c.Typed, Snap: c.Snap, Discovery: c.Discovery, Dynamic: c.Dynamic, OpenRepository: openRepository}
}

// openRepository is the one way the plugin's checks open a namespace's existing repository, with
// the namespace's key (keyring.RepoPassword).
func openRepository(ctx context.Context, location, namespace, key string) error {
	return (&repo.Service{Location: location, Key: repo.OneKey(key)}).Check(ctx, namespace)
}

// reportError maps a report to the exit code: 1 for a failure, 2 for warnings only.
func reportError(rep *doctor.Report, ctx context.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	n := 0
	for _, c := range rep.Checks {
		if c.Status == rep.Status {
			n++
		}
	}
	switch rep.Status {
	case doctor.Fail:
		return fmt.Errorf("%s failed", progress.Plural(n, "check", "checks"))
	case doctor.Warn:
		return fmt.Errorf("%s warned: %w", progress.Plural(n, "check", "checks"), ErrWarnings)
	}
	return nil
}

func printReport(w io.Writer, rep *doctor.Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tTIME\tDETAIL\tWHAT TO DO")
	counts := map[doctor.Status]int{}
	for _, c := range rep.Checks {
		counts[c.Status]++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", printable.Name(c.Check), c.Status, (time.Duration(c.Seconds * float64(time.Second))).Round(10*time.Millisecond), printable.Name(c.Detail), orDash(c.Fix))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range rep.Checks {
		if c.Grant != "" {
			fmt.Fprintf(w, "\n%s: to grant the rights missing, as a cluster admin (kubectl apply -f -):\n---\n%s", c.Check, c.Grant)
		}
	}
	_, err := fmt.Fprintf(w, "%d ok, %s, %d failed in %s.\n", counts[doctor.OK], progress.Plural(counts[doctor.Warn], "warning", "warnings"), counts[doctor.Fail],
		(time.Duration(rep.Seconds * float64(time.Second))).Round(10*time.Millisecond))
	return err
}
