package cli

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/schedule"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// NewScheduleCmd builds `schedule` and its one verb, `print`.
func NewScheduleCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "An optional in-cluster schedule: a CronJob that runs create and prune (printed, never applied)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(NewSchedulePrintCmd(flags, streams))
	return cmd
}

// createFlagsNotPassed are create's flags a schedule cannot pass on: its own flags set them, or
// they have no meaning in the CronJob's pod.
var createFlagsNotPassed = map[string]string{
	"output":            "the runs print their results as text, for the Job's log",
	"dry-run":           "use create --dry-run from your machine",
	"password-file":     "the password comes from the Secret's PVBACKUP_PASSWORD",
	"prometheus":        "a pod has no node-exporter textfile directory: use kubectl pvbackup status --max-age from a monitor",
	"resource-policies": "the file is on this machine, not in the pod: choose the volume mode with --volumes",
}

// maxScheduleName is the longest --generate-name prefix (catalog.ValidatePrefix).
const maxScheduleName = 45

// createFlagsSet are create's flags the schedule writes itself.
var createFlagsSet = map[string]bool{"to": true, "generate-name": true, "labels": true, "include-namespaces": true, "mover-image": true, "mover-pull-policy": true, "mover-pull-secret": true}

// ScheduleOptions are the flags of `schedule print`: its own, create's (checked as create
// checks them, then passed on) and prune's keep rules.
type ScheduleOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams

	create      CreateOptions
	createFlags *pflag.FlagSet
	keep        retention.Policy
	keepFlags   *pflag.FlagSet
	Maintenance string

	Name          string
	Cron          string
	TimeZone      string
	Secret        string
	AllNamespaces bool
	HistoryLimit  int32
	Deadline      time.Duration

	cfg  schedule.Config
	keys []string
}

// NewSchedulePrintCmd builds `schedule print`.
func NewSchedulePrintCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ScheduleOptions{configFlags: flags, streams: streams}
	o.create = CreateOptions{configFlags: flags, streams: streams}
	cmd := &cobra.Command{
		Use:   "print NAME --cron SPEC --to URL [-n NAMESPACE] [create flags] [--keep-daily N ...]",
		Short: "Print a CronJob, its ServiceAccount and least-privilege RBAC that back up on a schedule from inside the cluster",
		Long: `schedule print prints, and never applies, an optional in-cluster schedule: a CronJob in the -n
namespace that runs the plugin from the mover image (it holds the plugin binary) with
create --generate-name NAME and your create flags, then prune with your keep rules (only the
schedule's own backups: they carry the label pvbackup.io/schedule=NAMESPACE.NAME); a ServiceAccount
with the least rights those runs need: a Role in each backed-up namespace, a ClusterRole for the
cluster-scoped objects (and for every namespace with -A); concurrencyPolicy Forbid and a Job
history. The password and the bucket's credentials come from a Secret you create; the printed
header says how, and never holds a secret. Apply it with kubectl apply -f; the plugin still
installs nothing. doctor finds the CronJob by its label and checks its ServiceAccount's rights.

Schedules from CI or systemd instead: docs/schedules.md.`,
		Example: fmt.Sprintf(examples(`
			# Nightly at 02:00 UTC: namespace shop, kept 7 daily, 4 weekly, 12 monthly; the CronJob in namespace pvbackup
			%[1]s schedule print nightly -n pvbackup --include-namespaces shop --cron '0 2 * * *' \
			  --to 's3://backups/prod?region=eu-west-1' --keep-daily 7 --keep-weekly 4 --keep-monthly 12 > nightly.yaml
			kubectl -n pvbackup create secret generic pvbackup-nightly --from-env-file=pvbackup.env
			kubectl apply -f nightly.yaml`), "kubectl pvbackup"),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSteps(cmd.Context(), o.Complete(args, cmd.Flags()), o)
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

func (o *ScheduleOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Cron, "cron", "", "when to run, as the CronJob's schedule: five fields (\"0 2 * * *\") or @daily (required)")
	fs.StringVar(&o.TimeZone, "time-zone", "", "the CronJob's time zone (IANA name, e.g. Europe/Paris; default the cluster's, usually UTC)")
	fs.StringVar(&o.Secret, "secret", "", "the Secret, in the CronJob's namespace, with PVBACKUP_PASSWORD and the bucket's credentials (default pvbackup-NAME)")
	fs.BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "back up every namespace (the rights go in a ClusterRole)")
	fs.Int32Var(&o.HistoryLimit, "history-limit", 3, "finished Jobs kept, successful and failed each")
	fs.DurationVar(&o.Deadline, "deadline", 23*time.Hour, "a run that takes longer is stopped (the Job's activeDeadlineSeconds)")
	fs.StringVar(&o.Maintenance, "prune-maintenance", string(maintenance.Quick), "prune's --maintenance after removing: quick, full or none")
	o.createFlags = pflag.NewFlagSet("create", pflag.ContinueOnError)
	o.create.addFlags(o.createFlags)
	for name := range createFlagsNotPassed {
		_ = o.createFlags.MarkHidden(name)
	}
	_ = o.createFlags.MarkHidden("generate-name") // NAME is the prefix
	fs.AddFlagSet(o.createFlags)
	o.keepFlags = pflag.NewFlagSet("prune", pflag.ContinueOnError)
	kf := o.keepFlags
	kf.IntVar(&o.keep.Last, "keep-last", 0, "prune: keep the newest N backups of the schedule (-1: all)")
	kf.IntVar(&o.keep.Hourly, "keep-hourly", 0, "prune: keep the newest backup of each of the last N hours")
	kf.IntVar(&o.keep.Daily, "keep-daily", 0, "prune: keep the newest backup of each of the last N days")
	kf.IntVar(&o.keep.Weekly, "keep-weekly", 0, "prune: keep the newest backup of each of the last N ISO weeks")
	kf.IntVar(&o.keep.Monthly, "keep-monthly", 0, "prune: keep the newest backup of each of the last N months")
	kf.IntVar(&o.keep.Yearly, "keep-yearly", 0, "prune: keep the newest backup of each of the last N years")
	kf.DurationVar(&o.keep.Within, "keep-within", 0, "prune: keep every backup within this span of the newest")
	fs.AddFlagSet(kf)
}

// Complete checks create's flags as create does (without the password) and builds the schedule.
func (o *ScheduleOptions) Complete(args []string, flags *pflag.FlagSet) error {
	o.Name = args[0]
	for name, why := range createFlagsNotPassed {
		if o.createFlags.Changed(name) {
			return fmt.Errorf("--%s cannot be part of a schedule: %s", name, why)
		}
	}
	if o.createFlags.Changed("generate-name") {
		return fmt.Errorf("--generate-name: the schedule's backups are named after it: NAME-YYYYMMDD-HHMMSS")
	}
	c := &o.create
	c.noPasswd, c.GenerateName = true, o.Name
	cronNS, backedUp, wide, err := o.namespaces()
	if err != nil {
		return err
	}
	pullSecret, err := o.pullSecret(cronNS)
	if err != nil {
		return err
	}
	if pullSecret != "" { // in the CronJob's namespace, not the printer's kubeconfig's
		c.mover.PullSecret = cronNS + "/" + pullSecret
	}
	if err := c.Complete(nil, flags); err != nil {
		return err
	}
	if o.Secret == "" {
		o.Secret = "pvbackup-" + o.Name
	}
	o.cfg = schedule.Config{Name: o.Name, Namespace: cronNS, Cron: o.Cron, TimeZone: o.TimeZone, Location: c.location.URL, Image: c.mover.image(),
		PullPolicy: c.volumeConfig().PullPolicy, Secret: o.Secret, PullSecret: pullSecret, Namespaces: backedUp, ClusterWide: wide,
		Needs: o.needs(), ListEverything: c.ClusterResources == string(backup.ClusterAll),
		HistoryLimit: o.HistoryLimit, Deadline: o.Deadline, ToolVersion: version.Version}
	o.cfg.CreateArgs = o.createArgs()
	o.cfg.PruneArgs = o.pruneArgs()
	if u, err := url.Parse(c.location.URL); err == nil {
		o.keys = schedule.CredentialKeys(u.Scheme)
		o.cfg.GCPCredentials = u.Scheme == "gs"
	}
	return nil
}

// Validate checks the schedule and create's options without any I/O.
func (o *ScheduleOptions) Validate() error {
	if o.Cron == "" {
		return fmt.Errorf("--cron is required: when to run, e.g. --cron '0 2 * * *'")
	}
	if len(o.Name) > maxScheduleName {
		return fmt.Errorf("schedule name %q: at most %d characters (its backups are named NAME-YYYYMMDD-HHMMSS)", o.Name, maxScheduleName)
	}
	if err := o.create.Validate(); err != nil {
		return err
	}
	if strings.HasPrefix(o.create.location.URL, "file://") {
		return fmt.Errorf("location %s is a directory on this machine, which the CronJob's pods cannot reach: schedule backups to object storage, or run create from this machine's own scheduler (docs/schedules.md)", o.create.location.URL)
	}
	if err := (&PruneOptions{Policy: o.keep, IncompleteAfter: retention.DefaultIncompleteAfter, GroupBy: string(retention.GroupByNamespaces), Maintenance: o.Maintenance, location: o.create.location}).Validate(); err != nil {
		return err
	}
	return o.cfg.Validate()
}

// Run prints the schedule.
func (o *ScheduleOptions) Run(context.Context) error {
	return schedule.Print(o.streams.Out, o.cfg, o.keys)
}

// volumeConfig is create's mover configuration (zero without volumes).
func (o *CreateOptions) volumeConfig() volumes.MoverConfig {
	if o.volCfg == nil {
		mc, _ := o.mover.config(o.location.URL)
		return mc
	}
	return o.volCfg.Mover
}

// needs are what create and prune of this schedule need (doctor.Rights' needs).
func (o *ScheduleOptions) needs() []string {
	c := &o.create
	needs := []string{"resources"}
	if c.ClusterResources == string(backup.ClusterAuto) && !o.AllNamespaces {
		needs = append(needs, "needed-cluster")
	}
	if c.volCfg != nil {
		switch c.volCfg.Mode {
		case volumes.ModeFS:
			needs = append(needs, "volumes")
		case volumes.ModeSnapshot:
			needs = append(needs, "volumes", "snapshots", "prune")
		default: // auto, snapshot-move
			needs = append(needs, "volumes", "snapshots")
		}
		needs = append(needs, groupNeeds(c.volCfg)...)
	}
	if c.PreHook != "" || c.PostHook != "" {
		needs = append(needs, "hooks")
	}
	return needs
}

// groupNeeds are the rights of volume groups, granted only to a schedule that asks for groups
// (--volume-group-by or --volume-groups=auto): a schedule's role holds what its runs need and no
// more (TestScheduleLeastRights takes each rule away), and the printer cannot know whether claims
// will carry a group label. A schedule of claims labelled pvbackup.io/volume-group is printed with
// --volume-group-by pvbackup.io/volume-group to get them. Granted whether or not the cluster serves
// VolumeGroupSnapshots today (the schedule is printed without asking it). auto-groups is
// --volume-groups=auto's claim label.
func groupNeeds(c *volumes.Config) []string {
	if c.Mode == volumes.ModeFS || c.Mode == volumes.ModeNone {
		return nil
	}
	switch {
	case c.VolumeGroups == volumes.GroupsAuto:
		return []string{"groups", "auto-groups"}
	case c.VolumeGroupBy != "":
		return []string{"groups"}
	}
	return nil
}

// keepSet says whether prune has anything to decide: keep rules, or the TTL create records.
func (o *ScheduleOptions) keepSet() bool { return !o.keep.Empty() || o.create.TTL > 0 }

// pruneArgs are prune's arguments: the schedule's backups only, the keep rules given.
func (o *ScheduleOptions) pruneArgs() []string {
	if !o.keepSet() {
		return nil
	}
	args := []string{"prune", "--from=" + o.create.location.URL, "--selector=" + schedule.LabelSchedule + "=" + o.cfg.Label()}
	o.keepFlags.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			args = append(args, "--"+f.Name+"="+f.Value.String())
		}
	})
	if o.Maintenance != string(maintenance.Quick) {
		args = append(args, "--maintenance="+o.Maintenance)
	}
	return args
}
