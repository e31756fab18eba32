package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
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
	%[1]s restore shop-1 --include-resources configmaps,secrets --existing-resource-policy update`)

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
	mover             moverOptions

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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	o.location.addFlag(fs, "from")
	o.output.addFlag(fs)
	o.password.addFlag(fs)
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
	fs.StringSliceVar(&o.ClassMapping, "storage-class-mapping", nil, "restore PVCs and PVs with another StorageClass: old:new[,old2:new2]")
	o.mover.addFlags(fs)
	return cmd
}

// Complete fills the options from arguments and environment.
func (o *RestoreOptions) Complete(args []string) error {
	o.Name = args[0]
	o.location.complete()
	policy, err := restore.ParsePolicy(o.ExistingPolicy)
	if err != nil {
		return err
	}
	mapping, err := parseMapping(o.NamespaceMapping)
	if err != nil {
		return err
	}
	namespaces, resources := o.filters(nil)
	o.cfg = restore.Config{
		Backup:            o.Name,
		Namespaces:        namespaces,
		Resources:         resources,
		LabelSelector:     o.Selector,
		NamespaceMapping:  mapping,
		Policy:            policy,
		PreserveNodePorts: o.PreserveNodePorts,
		DryRun:            o.DryRun,
	}
	if o.cfg.Password, err = o.password.load(o.streams.ErrOut); err != nil {
		return err
	}
	o.cfg.RestoreVolumes = o.RestoreVolumes
	if o.cfg.StorageClassMapping, err = volumes.ParseMapping("storage-class-mapping", o.ClassMapping); err != nil {
		return err
	}
	if !o.RestoreVolumes || o.DryRun {
		return nil
	}
	mc, err := o.mover.config(o.location.URL, o.cfg.Password)
	if err != nil {
		o.volNotice = "volume data is not restored: " + err.Error()
		return nil
	}
	o.volCfg = &volumes.Config{Backup: o.Name, Mover: mc, Parallel: o.mover.Parallel, Timeout: o.mover.Timeout}
	return nil
}

func parseMapping(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	targets := map[string]string{}
	for _, p := range pairs {
		from, to, ok := strings.Cut(p, ":")
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("--namespace-mapping %q: use old:new", p)
		}
		if errs := validation.IsDNS1123Label(to); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-mapping %q: %q is not a valid namespace name: %s", p, to, strings.Join(errs, "; "))
		}
		if _, dup := m[from]; dup {
			return nil, fmt.Errorf("--namespace-mapping maps %q twice", from)
		}
		if other, dup := targets[to]; dup {
			return nil, fmt.Errorf("--namespace-mapping maps both %q and %q to %q", other, from, to)
		}
		m[from], targets[to] = to, from
	}
	return m, nil
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
	return o.location.validate()
}

// Run restores and prints the outcome per item.
func (o *RestoreOptions) Run(ctx context.Context) error {
	clients, err := kube.New(o.configFlags)
	if err != nil {
		return err
	}
	cat, closeFn, err := o.location.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	deps := restore.Deps{Dynamic: clients.Dynamic, Discovery: clients.Discovery, Catalog: cat, Progress: o.output.reporter(o.streams)}
	if o.volNotice != "" {
		deps.Progress.Warn(o.volNotice)
	}
	if o.volCfg != nil {
		deps.Volumes = &volumes.Runner{Config: *o.volCfg, Deps: volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery,
			Progress: deps.Progress, OnEvent: dataProgress(o.streams.ErrOut, o.output.Format != "")}}
	}
	res, err := restore.Run(ctx, deps, o.cfg)
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
		// A real restore lists what did not simply get created; a dry run lists everything.
		if !res.DryRun && it.Action == restore.Created {
			continue
		}
		if rows == 0 {
			fmt.Fprintln(tw, "RESOURCE\tNAMESPACE\tNAME\tRESULT\tREASON")
		}
		rows++
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Resource, orDash(it.Namespace), it.Name, it.Action, it.Reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Volumes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "VOLUME\tFROM\tMODE\tRESULT\tFILES\tSIZE\tTIME\tREASON")
		for _, v := range res.Volumes {
			files, size := "-", "-"
			if v.Action == restore.Restored {
				files, size = fmt.Sprint(v.Files), progress.Bytes(v.Bytes)
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%.1fs\t%s\n", v.Namespace, v.PVC, v.From, v.Mode, v.Action, files, size, v.Seconds, v.Reason)
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
	if len(parts) == 0 {
		parts = []string{"nothing selected"}
	}
	suffix := ""
	if res.DryRun {
		suffix = " Nothing was changed (--dry-run)."
	}
	fmt.Fprintf(w, "Restore of %q: %s.%s\n", res.Backup, strings.Join(parts, ", "), suffix)
	for _, wn := range res.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", wn)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
