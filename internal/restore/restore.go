// Package restore is the engine of `kubectl pvbackup restore`: it reads a backup, decides what
// to create and in which order, sanitises each object and applies it to the cluster.
package restore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/modifiers"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Policy says what happens to objects that already exist.
type Policy string

// Existing-resource policies.
const (
	PolicyNone   Policy = "none"   // leave them as they are (reported as skipped)
	PolicyUpdate Policy = "update" // overwrite them with the backup's spec
)

// ParsePolicy checks an --existing-resource-policy value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyNone, PolicyUpdate:
		return p, nil
	}
	return "", fmt.Errorf("--existing-resource-policy=%q: use none or update", s)
}

// Config is what to restore.
type Config struct {
	Backup            string
	Namespaces        selection.NamespaceFilter // source namespaces
	Resources         selection.ResourceFilter
	LabelSelector     string
	NamespaceMapping  mapping.Map
	Policy            Policy
	PreserveNodePorts bool
	DryRun            bool
	// ArchiveKey decrypts the resources archive (keyring.ArchiveKey).
	ArchiveKey string
	// CRDTimeout bounds the wait for a restored CRD to become Established.
	CRDTimeout time.Duration
	// RestoreVolumes fills restored PVCs with their backed-up data before workloads are created.
	RestoreVolumes bool
	// StorageClassMapping renames the StorageClass of restored PVCs, PVs and StatefulSet
	// volumeClaimTemplates, in spec.storageClassName and the beta annotation: old → new.
	StorageClassMapping mapping.Map
	// IncludeFinishedJobs restores Jobs that had completed or failed and Pods that had
	// succeeded or failed; they run again.
	IncludeFinishedJobs bool
	// RunningJobs decides about Jobs that were running at backup time (default suspend).
	RunningJobs RunningJobs
	// Modifiers patch objects after sanitising and storage class mapping, before namespace
	// mapping (Velero's order); nil: none.
	Modifiers *modifiers.Modifiers
	// Parallel is how many objects of one resource type are created at once (0: 16).
	Parallel int
}

// VolumeEngine fills restored claims with their data (internal/volumes through the CLI).
type VolumeEngine interface {
	Restore(ctx context.Context, items []volumes.RestoreItem) ([]volumes.RestoreOutcome, error)
}

// VolumeItem is what happened to one claim's data.
type VolumeItem struct {
	Namespace     string `json:"namespace"`
	PVC           string `json:"pvc"`
	From          string `json:"from"` // source namespace/pvc
	Mode          string `json:"mode"`
	Action        Action `json:"action"`
	Reason        string `json:"reason,omitempty"`
	KopiaSnapshot string `json:"kopiaSnapshot,omitempty"`
	Files         int64  `json:"files,omitempty"`
	Bytes         int64  `json:"bytes,omitempty"`
	// HardLinks are the files linked again to another path, as they were at the backup.
	HardLinks int64   `json:"hardLinks,omitempty"`
	Seconds   float64 `json:"durationSeconds,omitempty"`
	// MoverNode is the node the restore mover ran on.
	MoverNode string `json:"moverNode,omitempty"`
	// MoverSeconds is the mover's own work (Seconds less it: placing, starting and ending it).
	MoverSeconds float64 `json:"moverSeconds,omitempty"`
}

// Deps are the engine's connections to the world.
type Deps struct {
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Catalog   *catalog.Catalog
	// Source, when set, is the backup instead of Catalog and Config.ArchiveKey (a Velero backup).
	Source   Source
	Progress progress.Reporter
	Volumes  VolumeEngine // nil: specs only
	// Preflight checks the claims the movers fill before anything is created (nil: none).
	Preflight Preflight
}

// Action is what happened to one object.
type Action string

// Actions.
const (
	Created     Action = "created"
	Updated     Action = "updated"
	Skipped     Action = "skipped"
	Failed      Action = "failed"
	WouldCreate Action = "would-create"
	WouldUpdate Action = "would-update"
)

// Item is the outcome for one object.
type Item struct {
	Resource  string `json:"resource"` // group/resource, "pods" for core
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    Action `json:"action"`
	Reason    string `json:"reason,omitempty"`
}

// Result is what a restore did.
type Result struct {
	Backup   string         `json:"backup"`
	DryRun   bool           `json:"dryRun,omitempty"`
	Items    []Item         `json:"items"`
	Summary  map[Action]int `json:"summary"`
	Volumes  []VolumeItem   `json:"volumes,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// Failed reports whether any item or volume failed.
func (r *Result) Failed() bool {
	for _, v := range r.Volumes {
		if v.Action == Failed {
			return true
		}
	}
	return r.Summary[Failed] > 0
}

// Volume actions.
const (
	Restored     Action = "restored"      // filled by a mover
	FromSnapshot Action = "from-snapshot" // provisioned from the kept VolumeSnapshot
	WouldRestore Action = "would-restore"
)

// ErrWrongPassword is returned when the archive cannot be decrypted.
var ErrWrongPassword = archive.ErrWrongPassword

// entry is one object from the archive on its way into the cluster.
type entry struct {
	key     archive.Key // as backed up
	gr      schema.GroupResource
	obj     *unstructured.Unstructured
	oldUID  types.UID
	skip    string // reason, when it is not restored
	note    string // what the user should know about restoring it
	suspend bool   // a running Job restored suspended
	created bool
	// refused is why a claim was not created: no node could use its data (refuseUnplaceable).
	refused string
	// row is its outcome, recorded by its worker; item is the row's index in Result.Items once
	// committed (rows are committed in restore order, whatever order the workers finish in).
	row  Item
	item int
	done atomic.Bool // applyOne has finished with it
	// owners are its owner references as backed up (uids of the source cluster); later are
	// those whose owners are restored after it, which linkOwners sets.
	owners []metav1.OwnerReference
	later  []metav1.OwnerReference
}

func (e *entry) applied() bool { return e.done.Load() }

func (e *entry) addNote(n string) {
	if e.note != "" {
		n = e.note + "; " + n
	}
	e.note = n
}

// Run restores the backup. It reads and decrypts the whole archive before it changes anything,
// so a wrong password or a damaged archive leaves the cluster untouched.
func Run(ctx context.Context, d Deps, cfg Config) (*Result, error) {
	d, cfg = withDefaults(d, cfg)
	sel, err := labels.Parse(cfg.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", cfg.LabelSelector, err)
	}
	r := &run{d: d, cfg: cfg, chosen: map[schema.GroupResource]bool{}, newUID: map[types.UID]types.UID{}, vols: map[string]catalog.Volume{},
		crds: map[string]bool{}, own: owners{kinds: map[schema.GroupVersionKind]schemaResource{}}}
	// Every refusal comes before anything in the cluster changes: apply is the one step that
	// writes.
	for _, s := range r.steps(sel) {
		if err := s.do(ctx); err != nil {
			return nil, err
		}
	}
	return r.apply(ctx, r.entries)
}

// step is one named step of a restore of objects.
type step struct {
	name string
	do   func(context.Context) error
}

// steps are what Run does before it applies the objects, in order.
func (r *run) steps(sel labels.Selector) []step {
	return []step{
		{"read the backup", r.read},
		{"resolve the resources chosen", r.resolveResources},
		{"select objects", func(context.Context) error { r.selectEntries(r.entries, sel); return nil }},
		{"check --storage-class-mapping", func(ctx context.Context) error { return r.checkClassMapping(ctx, r.entries) }},
		{"sanitise and map objects", func(context.Context) error { return r.transform(r.entries) }},
		{"preflight", func(ctx context.Context) error { return r.preflight(ctx, r.entries) }},
	}
}

// withDefaults fills what the caller left zero.
func withDefaults(d Deps, cfg Config) (Deps, Config) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	if cfg.Policy == "" {
		cfg.Policy = PolicyNone
	}
	if cfg.RunningJobs == "" {
		cfg.RunningJobs = RunningSuspend
	}
	if cfg.CRDTimeout == 0 {
		cfg.CRDTimeout = time.Minute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 16
	}
	return d, cfg
}

type run struct {
	d      Deps
	cfg    Config
	res    *Result
	served map[schema.GroupVersionResource]bool
	chosen map[schema.GroupResource]bool
	// mu guards what the workers of one resource type share: newUID, linkLater.
	mu sync.Mutex
	// newUID maps the uid an object had in the backup to the uid it has now, to rewrite the
	// owner references of objects restored after their owners.
	newUID map[types.UID]types.UID
	own    owners
	// linkLater are the objects created before an owner of theirs (see linkOwners).
	linkLater []*entry
	// crds are the names of the CRDs this restore created (or would create).
	crds map[string]bool
	// held are the nodePorts in use, for a dry run's check (nodeports.go).
	held *nodePortHolders
	// vols are the backup's volume records by source namespace/pvc.
	vols map[string]catalog.Volume
	// claims are the PVC entries in restore order, filled once the claims phase ends.
	claims []*entry
	// entries are the archive's objects as restored (workloadFor reads their pod templates).
	entries []*entry
	// restoredPVs are the PVs this restore creates.
	restoredPVs map[string]bool
}

// reason returns the apiserver's message, which names the field that was refused.
func reason(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
