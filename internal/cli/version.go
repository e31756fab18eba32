package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// VersionOptions are the flags of `version`.
type VersionOptions struct {
	configFlags *genericclioptions.ConfigFlags
	streams     genericiooptions.IOStreams
	output      outputOptions
	Check       bool
	mover       moverOptions

	namespace string
	cfg       volumes.MoverConfig
}

// NewVersionCmd builds `version`.
func NewVersionCmd(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{configFlags: flags, streams: streams, mover: moverOptions{kubeconfig: flags}}
	cmd := &cobra.Command{
		Use:   "version [--check]",
		Short: "Print the plugin version and the mover image it uses; --check: whether the cluster's nodes pull it",
		Long: `version prints the plugin's version and the mover image its create, restore and doctor run
(--mover-image, else $` + EnvMoverImage + `, else ` + version.MoverImageRepo + `:<version>).

With --check it runs, in the namespace (-n, default the kubeconfig's), one short-lived pod per
architecture of the cluster's Ready linux nodes, made as a mover pod is (the image, pull policy,
service account and --mover-pull-secret), which runs the image's own ` + "`kubectl-pvbackup version`" + `: it says
whether the nodes can pull the image, run it, and which version it is. A registry that refuses the
pull fails it at once, with the registry's answer. The pods are labelled
` + volumes.LabelManagedBy + "=" + volumes.ManagedBy + ` and deleted, also on Ctrl-C.`,
		Example: fmt.Sprintf(examples(`
			# Which mover image does this plugin run?
			%[1]s version

			# Can the nodes pull it from a private registry, with a pull Secret of namespace shop?
			%[1]s version --check -n shop --mover-image registry.internal/pvbackup-mover:`+version.Version+` --mover-pull-secret regcred`), "kubectl pvbackup"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSteps(cmd.Context(), o.Complete(), o) },
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.Check, "check", false, "check that the cluster's nodes pull and run the mover image (a short-lived pod per node architecture)")
	o.mover.flags = fs
	fs.StringVar(&o.mover.Image, "mover-image", version.MoverImage(), "the mover image to print and check; without it $"+EnvMoverImage+" when set")
	fs.StringVar(&o.mover.PullPolicy, "mover-pull-policy", "IfNotPresent", "imagePullPolicy of the check's pod: IfNotPresent, Always or Never")
	fs.StringVar(&o.mover.PullSecret, "mover-pull-secret", "", "[NAMESPACE/]NAME of a docker-registry Secret to pull with (as create's)")
	fs.StringVar(&o.mover.ServiceAccount, "mover-service-account", "", "service account of the check's pod (its imagePullSecrets apply)")
	fs.Int64Var(&o.mover.RunAs, "mover-run-as", -1, "user and group ID the check's pod runs as (default the image's 65532)")
	fs.DurationVar(&o.mover.Timeout, "timeout", 2*time.Minute, "how long the check's pod may show no progress")
	o.output.addFlag(fs)
	return cmd
}

// Complete fills the namespace and the mover settings.
func (o *VersionOptions) Complete() error {
	o.mover.Image = o.mover.image() // the one create, restore and doctor would run
	if !o.Check {
		return nil
	}
	ns, _, err := o.configFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("the kubeconfig's namespace: %w", err)
	}
	o.namespace = ns
	o.cfg = volumes.MoverConfig{Image: o.mover.Image, PullPolicy: corev1.PullPolicy(o.mover.PullPolicy), ServiceAccount: o.mover.ServiceAccount}
	if o.mover.RunAs >= 0 {
		o.cfg.RunAsUser = &o.mover.RunAs
	}
	if o.mover.PullSecret != "" {
		if o.cfg.PullSecret, err = o.mover.pullSecret(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the options without any I/O.
func (o *VersionOptions) Validate() error {
	switch corev1.PullPolicy(o.mover.PullPolicy) {
	case corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever:
	default:
		return fmt.Errorf("--mover-pull-policy=%q: use IfNotPresent, Always or Never", o.mover.PullPolicy)
	}
	if o.mover.Image == "" {
		return fmt.Errorf("--mover-image is empty")
	}
	return o.output.validate()
}

// versionResult is what `version` prints with -o json|yaml.
type versionResult struct {
	Version    string              `json:"version"`
	MoverImage string              `json:"moverImage"`
	Check      []volumes.PullCheck `json:"check,omitempty"`
}

// Run prints the versions and, with --check, runs the check.
func (o *VersionOptions) Run(ctx context.Context) error {
	res := versionResult{Version: version.Version, MoverImage: o.mover.Image}
	var checkErr error
	if o.Check {
		res.Check, checkErr = o.check(ctx)
		if res.Check == nil && checkErr != nil {
			return checkErr
		}
	}
	if o.output.Format != "" {
		if err := o.output.print(o.streams.Out, res); err != nil {
			return err
		}
		return checkErr
	}
	if _, err := fmt.Fprintf(o.streams.Out, "kubectl-pvbackup %s\nmover image %s\n", res.Version, res.MoverImage); err != nil {
		return err
	}
	if !o.Check {
		return nil
	}
	tw := tabwriter.NewWriter(o.streams.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tNODE\tPULL\tTIME\tDETAIL")
	for _, c := range res.Check {
		status, detail := "ok", "pulled and ran: kubectl-pvbackup "+printable.Name(c.Version)
		if !c.OK {
			status, detail = "fail", printable.Name(c.Error)
		} else if c.Version != version.Version {
			detail += " (this plugin is " + version.Version + ": use one version for both)"
		}
		fmt.Fprintf(tw, "linux/%s\t%s\t%s\t%s\t%s\n", c.Arch, orDash(c.Node), status, (time.Duration(c.Seconds * float64(time.Second))).Round(10*time.Millisecond), detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return checkErr
}

// check runs the pods and turns failed architectures into the command's error.
func (o *VersionOptions) check(ctx context.Context) ([]volumes.PullCheck, error) {
	clients, err := kubeClients(o.configFlags)
	if err != nil {
		return nil, err
	}
	res, err := volumes.CheckPull(ctx, volumes.Deps{Kube: clients.Typed}, volumes.Config{Mover: o.cfg, Timeout: o.mover.Timeout}, o.namespace)
	if err != nil {
		return res, err
	}
	var failed []string
	for _, c := range res {
		if !c.OK {
			failed = append(failed, "linux/"+c.Arch)
		}
	}
	if len(failed) > 0 {
		return res, fmt.Errorf("the nodes of %s cannot pull or run %s (see DETAIL): mirror it into a registry they reach (kubectl pvbackup image push), or give its pull Secret with --mover-pull-secret", strings.Join(failed, ", "), o.mover.Image)
	}
	return res, nil
}
