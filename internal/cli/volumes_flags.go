package cli

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// --mover-credentials values.
const (
	credentialsCopy     = "copy"
	credentialsIdentity = "identity"
)

// EnvMoverImage names the mover image when --mover-image is not given: set once where the
// default image cannot be pulled (a mirror, an air gap, a local test cluster), for every command
// and every scheduled run.
const EnvMoverImage = "PVBACKUP_MOVER_IMAGE"

// moverOptions are the flags that shape mover Jobs, shared by create and restore.
type moverOptions struct {
	flags          *pflag.FlagSet // to tell a --mover-image given from its default
	Image          string
	PullPolicy     string
	Location       string
	Secret         string
	ServiceAccount string
	Credentials    string
	PullSecret     string
	RunAs          int64
	FSGroup        int64
	Privileged     bool
	CPURequest     string
	MemoryRequest  string
	CPULimit       string
	MemoryLimit    string
	Parallel       int
	Timeout        time.Duration
	Deadline       time.Duration
	Debug          bool
	// UploadLimit and DownloadLimit bound each mover's bandwidth (repo.ParseRate).
	UploadLimit, DownloadLimit string

	// kubeconfig gives the namespace of a --mover-pull-secret given without one.
	kubeconfig *genericclioptions.ConfigFlags
}

func (o *moverOptions) addFlags(fs *pflag.FlagSet, kubeconfig *genericclioptions.ConfigFlags) {
	o.flags = fs
	o.kubeconfig = kubeconfig
	fs.StringVar(&o.Image, "mover-image", version.MoverImage(), "image of the mover Jobs (default $"+EnvMoverImage+" when set; make image builds one locally; mirror it for air-gapped clusters)")
	fs.StringVar(&o.PullPolicy, "mover-pull-policy", "IfNotPresent", "imagePullPolicy of the mover: IfNotPresent, Always or Never")
	fs.StringVar(&o.Location, "mover-location", "", "the backup location as mover pods reach it, when it differs from --to/--from (e.g. an in-cluster S3 endpoint)")
	fs.StringVar(&o.Secret, "mover-secret", "", "a Secret of yours, in each namespace, with the storage credentials for the movers (instead of copying those of your environment into a temporary Secret); the namespace's repository key still comes in a temporary Secret")
	fs.StringVar(&o.ServiceAccount, "mover-service-account", "", "an existing ServiceAccount, in each namespace, that the mover pods run as (workload identity: EKS IRSA or Pod Identity, GKE Workload Identity, Azure Workload Identity; docs/install.md)")
	fs.StringVar(&o.Credentials, "mover-credentials", credentialsCopy, "what cloud credentials the mover Secret carries: copy (those of your environment) or identity (none: the movers use their pod's identity, e.g. --mover-service-account; the Secret holds the namespace's repository key only)")
	fs.StringVar(&o.PullSecret, "mover-pull-secret", "", "[NAMESPACE/]NAME of a docker-registry Secret (default namespace: the kubeconfig's) for pulling --mover-image: copied into each mover's namespace for the run and removed with the mover. Without it movers pull with their namespace ServiceAccount's imagePullSecrets and the nodes' credentials")
	fs.Int64Var(&o.RunAs, "mover-run-as", -1, "user and group ID the mover runs as (default the image's 65532): the owner of the volume's files")
	fs.Int64Var(&o.FSGroup, "mover-fs-group", -1, "fsGroup of the mover pods: files readable by this group can be read")
	fs.BoolVar(&o.Privileged, "mover-privileged", false, "run the mover as root with CHOWN, DAC_OVERRIDE, FOWNER, FSETID (all allowed by Pod Security baseline): reads every file and restores owners; needs Pod Security baseline")
	fs.StringVar(&o.CPURequest, "mover-cpu-request", "100m", "CPU request of mover pods")
	fs.StringVar(&o.MemoryRequest, "mover-memory-request", "256Mi", "memory request of mover pods")
	fs.StringVar(&o.CPULimit, "mover-cpu-limit", "", "CPU limit of mover pods (default none)")
	fs.StringVar(&o.MemoryLimit, "mover-memory-limit", "2Gi", "memory limit of mover pods")
	fs.IntVar(&o.Parallel, "parallel", volumes.DefaultParallel, "volumes moved at the same time")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "how long a step (snapshot ready, mover start, mover output) may show no progress before its volume fails")
	fs.DurationVar(&o.Deadline, "mover-deadline", 6*time.Hour, "activeDeadlineSeconds of mover Jobs")
}

// addDebugFlag adds --mover-debug (create only: a backup keeps what its movers report).
func (o *moverOptions) addDebugFlag(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Debug, "mover-debug", false, "movers report each storage call of opening the repository, and any call slower than 1s, with HTTP-level timings (connection reused or new, time to first byte): kept in the backup's manifest and log")
}

// image is --mover-image, else $PVBACKUP_MOVER_IMAGE, else the plugin's own version's image.
func (o *moverOptions) image() string {
	if v := os.Getenv(EnvMoverImage); v != "" && (o.flags == nil || !o.flags.Changed("mover-image")) {
		return v
	}
	return o.Image
}

// config builds the mover configuration. location is --to/--from. The repository passwords are
// set by Run, once the location's key is open.
// addLimitFlags adds --upload-limit and --download-limit (create and restore).
func (o *moverOptions) addLimitFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.UploadLimit, "upload-limit", "", "bytes per second each mover uploads to the location at most, e.g. 20MiB/s for backups in business hours (units B, KB, MB, GB, KiB, MiB, GiB; default no limit)")
	fs.StringVar(&o.DownloadLimit, "download-limit", "", "bytes per second each mover downloads from the location at most, e.g. 50MB/s (default no limit)")
}

func (o *moverOptions) config(location string) (volumes.MoverConfig, error) {
	c := volumes.MoverConfig{Image: o.image(), PullPolicy: corev1.PullPolicy(o.PullPolicy), Location: location,
		Secret: o.Secret, ServiceAccount: o.ServiceAccount, Privileged: o.Privileged, ActiveDeadline: o.Deadline, Debug: o.Debug}
	switch c.PullPolicy {
	case corev1.PullIfNotPresent, corev1.PullAlways, corev1.PullNever:
	default:
		return c, fmt.Errorf("--mover-pull-policy=%q: use IfNotPresent, Always or Never", o.PullPolicy)
	}
	if c.Image == "" {
		return c, fmt.Errorf("--mover-image is empty")
	}
	if err := o.moverLocation(&c); err != nil {
		return c, err
	}
	if o.PullSecret != "" {
		ref, err := o.pullSecret()
		if err != nil {
			return c, err
		}
		c.PullSecret = ref
	}
	if o.RunAs >= 0 {
		c.RunAsUser = &o.RunAs
	}
	if o.FSGroup >= 0 {
		c.FSGroup = &o.FSGroup
	}
	if o.Parallel < 1 {
		return c, fmt.Errorf("--parallel %d: must be 1 or more", o.Parallel)
	}
	if err := o.limits(&c); err != nil {
		return c, err
	}
	var err error
	if c.Requests, err = resources("request", o.CPURequest, o.MemoryRequest); err != nil {
		return c, err
	}
	if c.Limits, err = resources("limit", o.CPULimit, o.MemoryLimit); err != nil {
		return c, err
	}
	return c, o.credentials(&c)
}

// moverLocation sets --mover-location, and refuses a location the mover pods cannot reach.
func (o *moverOptions) moverLocation(c *volumes.MoverConfig) error {
	if o.Location != "" {
		if _, _, err := store.Parse(o.Location); err != nil {
			return fmt.Errorf("--mover-location: %w", err)
		}
		c.Location = o.Location
	}
	if bucketURL, _, err := store.Parse(c.Location); err == nil && strings.HasPrefix(bucketURL, "file://") {
		return fmt.Errorf("location %s is a directory on this machine, which mover pods cannot reach: back up volumes to object storage, or pass --mover-location with a URL the pods reach (or --volumes=none)", store.Redact(c.Location))
	}
	return nil
}

// credentials sets what the movers reach the storage with (--mover-credentials): a copy of this
// machine's credentials when no --mover-secret brings them, or none (identity).
func (o *moverOptions) credentials(c *volumes.MoverConfig) error {
	switch o.Credentials {
	case credentialsCopy, "":
	case credentialsIdentity:
		if o.Secret != "" {
			return fmt.Errorf("--mover-credentials=identity puts no credentials in the movers' Secrets, and --mover-secret brings some: choose one")
		}
		// No credential of this machine's environment goes to the cluster; store settings that
		// are not secrets (the region, the Azure account's name) do, as plain env.
		c.Identity, c.Settings = true, map[string]string{}
		for _, k := range volumes.SettingsEnv {
			if v, ok := os.LookupEnv(k); ok {
				c.Settings[k] = v
			}
		}
		return nil
	default:
		return fmt.Errorf("--mover-credentials=%q: use copy or identity", o.Credentials)
	}
	if c.Secret != "" {
		return nil
	}
	c.Env = map[string]string{}
	for _, k := range volumes.CredentialEnv {
		if v, ok := os.LookupEnv(k); ok {
			c.Env[k] = v
		}
	}
	for _, k := range volumes.CredentialFiles {
		if err := copyCredentialFile(c, k); err != nil {
			return err
		}
	}
	return nil
}

// copyCredentialFile copies the file variable k names, if set, into c.Files for the movers.
func copyCredentialFile(c *volumes.MoverConfig, k string) error {
	p := os.Getenv(k)
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%s=%s: %w (the movers need its content)", k, p, err)
	}
	if k == "AWS_SHARED_CREDENTIALS_FILE" {
		// Only the profile in use, and its name for the mover's SDK. Without a
		// [default] (an empty file, /dev/null) the file is not needed: nothing goes.
		profile := os.Getenv("AWS_PROFILE")
		if profile != "" {
			c.Env["AWS_PROFILE"] = profile
		}
		b, err = awsProfileOnly(b, p, cmp.Or(profile, "default"))
		if errors.Is(err, errNoProfile) && profile == "" {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if c.Files == nil {
		c.Files = map[string][]byte{}
	}
	c.Files[k] = b
	return nil
}

func resources(kind, cpu, mem string) (corev1.ResourceList, error) {
	l := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem} {
		if v == "" {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("--mover-%s-%s=%q: %w", name, kind, v, err)
		}
		l[name] = q
	}
	return l, nil
}

// pullSecret parses --mover-pull-secret [NAMESPACE/]NAME.
func (o *moverOptions) pullSecret() (*volumes.PullSecretRef, error) {
	ns, name, found := strings.Cut(o.PullSecret, "/")
	if !found {
		name, ns = o.PullSecret, ""
		if o.kubeconfig != nil {
			var err error
			if ns, _, err = o.kubeconfig.ToRawKubeConfigLoader().Namespace(); err != nil {
				return nil, fmt.Errorf("--mover-pull-secret %s: the kubeconfig's namespace: %w", o.PullSecret, err)
			}
		}
	}
	for _, part := range []string{ns, name} {
		if errs := validation.IsDNS1123Subdomain(part); len(errs) > 0 {
			return nil, fmt.Errorf("--mover-pull-secret %q: use [NAMESPACE/]NAME of a docker-registry Secret (%s)", o.PullSecret, strings.Join(errs, "; "))
		}
	}
	return &volumes.PullSecretRef{Namespace: ns, Name: name}, nil
}

// limits checks --upload-limit and --download-limit and puts them into c, as written: each
// mover reads them again (mover.Invocation).
func (o *moverOptions) limits(c *volumes.MoverConfig) error {
	if _, err := repo.ParseRate(o.UploadLimit); err != nil {
		return fmt.Errorf("--upload-limit: %w", err)
	}
	if _, err := repo.ParseRate(o.DownloadLimit); err != nil {
		return fmt.Errorf("--download-limit: %w", err)
	}
	c.UploadLimit, c.DownloadLimit = strings.TrimSpace(o.UploadLimit), strings.TrimSpace(o.DownloadLimit)
	return nil
}
