package volumes

import (
	"context"
	"k8s.io/client-go/dynamic"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/policy"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// Deps are the engine's connections to the cluster and the user.
type Deps struct {
	Kube      kubernetes.Interface
	Snap      snapclient.Interface
	Discovery discovery.DiscoveryInterface
	Progress  progress.Reporter
	// OnEvent receives the movers' progress events (may be nil).
	OnEvent func(namespace, pvc string, ev mover.Event)
	// Hooks runs pre/post hooks in application pods (nil: no hooks).
	Hooks HookRunner
	// EnsureRepository creates a namespace's Kopia repository if it does not exist, before movers
	// of that namespace run in parallel (nil: the movers create it, one volume at a time).
	EnsureRepository func(ctx context.Context, namespace string) error
	// Dynamic reads and makes VolumeGroupSnapshots (nil: volume groups are cut per claim).
	Dynamic dynamic.Interface
}

// HookRunner executes one hook (hooks.Executor in the plugin).
type HookRunner interface {
	Run(ctx context.Context, h hooks.Hook) (hooks.Output, error)
}

// Config is how volumes are backed up or restored.
type Config struct {
	Backup          string
	Mode            Mode
	SnapshotClasses []string
	// VolumeGroupBy is the label key whose value groups claims (--volume-group-by), before the
	// pvbackup.io/volume-group and velero.io/volume-group labels.
	VolumeGroupBy string
	// VolumeGroups is GroupsAuto to group the claims no label groups by namespace and CSI driver
	// (--volume-groups=auto), else "" or GroupsLabels: only by labels.
	VolumeGroups string
	// GroupSnapshotClasses are the VolumeGroupSnapshotClasses named for this backup
	// (--volume-group-snapshot-class), each for its driver, before the drivers' defaults.
	GroupSnapshotClasses []string
	// Policies are the resource policy rules that choose a mode before Mode (nil: none).
	Policies *policy.Policies
	// SnapshotMoveData makes the policy action snapshot move the data (Velero's --snapshot-move-data).
	SnapshotMoveData bool
	Mover            MoverConfig
	Parallel         int
	// Timeout bounds each wait without progress (snapshot ready, pod start, mover silent).
	Timeout time.Duration
	// ControllerTimeout bounds the wait for a snapshot controller to take up a VolumeSnapshot.
	ControllerTimeout time.Duration
	// ErrorGrace is how long a snapshot's or group snapshot's status.error may stand before it
	// fails the wait (0: DefaultErrorGrace); an API conflict there never does by itself.
	ErrorGrace time.Duration
	DryRun     bool
	// HookFlags are the --pre-hook/--post-hook settings; pod annotations come first.
	HookFlags hooks.Flags
	// RunID makes this run's object names unique (default: random).
	RunID string
	// Compression is the backups' (create --compression; "" = the mover's default); a PVC's
	// annotation AnnotationCompression overrides it for its volume.
	Compression string
	// KeepSnapshots > 0 keeps, per PVC, the newest N VolumeSnapshots snapshot mode made (this one
	// included) and deletes older ones made by this tool.
	KeepSnapshots int
}

// DefaultParallel is how many volumes move at once unless --parallel says otherwise. Measured on
// the three-node lab (make bench-scale, 60 snapshot-move claims, the machine's two cores saturated):
// 8 at once took 21-23% less wall time than 4 for the backup and the restore, but each volume's
// turn grew by half and eight movers hold twice four's requests and limits against a namespace's
// ResourceQuota (a refused mover fails its volume); 4 stays the default, 8 the flag for namespaces
// of many volumes (docs/volumes.md, "Many volumes").
const DefaultParallel = 4

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeAuto
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.RunID == "" {
		c.RunID = NewRunID()
	}
	if c.ControllerTimeout == 0 {
		c.ControllerTimeout = 30 * time.Second
	}
	if c.ErrorGrace == 0 {
		c.ErrorGrace = DefaultErrorGrace
	}
	c.Mover.Defaults()
}

type engine struct {
	d   Deps
	cfg Config
	// precreated are the claims (ns/pvc) whose VolumeSnapshot was created inside their pod's hook
	// window; written before the volumes run in parallel, read-only after.
	precreated map[string]bool
	// done are claims backed up completely inside a hook window (fs).
	done map[string]bool
	// members are the claims (ns/pvc) cut in a VolumeGroupSnapshot: their member VolumeSnapshot.
	members map[string]string
	// pull is the user's pull Secret, read once (MoverConfig.PullSecret).
	pull pullSecrets
}

// Runner binds Deps and Config for the backup and restore engines.
type Runner struct {
	Deps   Deps
	Config Config
}

// Plan implements backup.VolumeEngine.
func (r *Runner) Plan(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	return Plan(ctx, r.Deps, r.Config, claims)
}

// Backup implements backup.VolumeEngine.
func (r *Runner) Backup(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	return Backup(ctx, r.Deps, r.Config, claims)
}

// Restore fills restored claims (restore.VolumeEngine).
func (r *Runner) Restore(ctx context.Context, items []RestoreItem) ([]RestoreOutcome, error) {
	return Restore(ctx, r.Deps, r.Config, items)
}
