// Package backup is the engine of `kubectl pvbackup create`: it lists the selected objects,
// streams them into the encrypted resources archive and writes the manifest last.
package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
)

// ClusterMode says which cluster-scoped objects a backup takes.
type ClusterMode string

// Cluster modes (--include-cluster-resources).
const (
	// ClusterAuto takes every cluster-scoped object when all namespaces are selected, and
	// otherwise only those the selected objects need: bound PVs, their StorageClasses, the CRDs
	// of custom resources, ClusterRoles that RoleBindings refer to.
	ClusterAuto ClusterMode = "auto"
	ClusterAll  ClusterMode = "true"
	ClusterNone ClusterMode = "false"
	defaultPage             = 500
	// clusterWideAbove: with more selected namespaces than this, one cluster-wide list per
	// resource beats a list per namespace.
	clusterWideAbove = 3
)

// ParseClusterMode checks a --include-cluster-resources value.
func ParseClusterMode(s string) (ClusterMode, error) {
	switch m := ClusterMode(s); m {
	case ClusterAuto, ClusterAll, ClusterNone:
		return m, nil
	}
	return "", fmt.Errorf("--include-cluster-resources=%q: use auto, true or false", s)
}

// Config is what to back up.
type Config struct {
	Name             string
	Namespaces       selection.NamespaceFilter
	Resources        selection.ResourceFilter
	LabelSelector    string
	ClusterResources ClusterMode
	// ArchiveKey encrypts the resources archive (keyring.ArchiveKey: derived from the location
	// key, never the password itself).
	ArchiveKey string
	DryRun     bool
	PageSize   int64
	// TTL, when > 0, is recorded in the manifest: `prune` removes the backup once it has passed.
	TTL time.Duration
	// Labels are the backup's own labels (--labels), recorded in the manifest.
	Labels map[string]string
	// OrSelectors select objects matching any of them (--or-selector); exclusive with LabelSelector.
	OrSelectors []string
	// Scoped is Velero's new-style filter; when set, Resources and ClusterResources are unused.
	Scoped *selection.ScopedFilter
	// PolicyScoped is a resource policy's includeExcludePolicy, merged under Scoped.
	PolicyScoped *selection.ScopedFilter
	// ResourcePolicies is the policy file's name, recorded in the manifest.
	ResourcePolicies string
}

// Deps are the engine's connections to the world.
type Deps struct {
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	Catalog   *catalog.Catalog // may be nil on a dry run
	Cluster   catalog.Cluster
	Progress  progress.Reporter
	Now       func() time.Time
	// Volumes backs up the data of the selected PVCs; nil backs up resources only.
	Volumes VolumeEngine
	// Claim is this run's claim on the name when the caller took it (the CLI does, before it
	// touches the cluster); nil: Run claims the name itself.
	Claim *catalog.Claim
	// Preflight, when set, checks the plan before anything is written or created (not on a dry
	// run); its error stops the backup and gives the name's claim back.
	Preflight func(ctx context.Context, p PreflightPlan) error
	// Access is asked before cluster-scoped objects are read (nil: they are read, and a refusal
	// is a warning per object).
	Access Access
	// Log, when set, is the backup's log, which the caller may add to while the run goes (the
	// apiserver's warnings); nil: a new one.
	Log *catalog.Log
}

// PreflightPlan is what a backup is about to cover, for Deps.Preflight.
type PreflightPlan struct {
	Namespaces    []string
	AllNamespaces bool
	// ListNamespaces: the namespaces were listed (chosen by pattern, or all of them).
	ListNamespaces bool
	// Claims is whether PVCs are selected and their data goes through Volumes.
	Claims bool
	// Resources are the namespaced resource types the backup lists, as "resource.group"
	// ("secrets", "deployments.apps").
	Resources []string
	// ClusterNeeds: the cluster objects the selected ones refer to are fetched (PVs,
	// StorageClasses, CRDs, ClusterRoles: --include-cluster-resources=auto on some namespaces).
	ClusterNeeds bool
}

// Result is what a backup did, or on a dry run what it would do.
type Result struct {
	Manifest *catalog.Manifest
	DryRun   bool
}

// Run backs up what cfg selects. The returned error is nil for Completed and PartiallyFailed
// backups (see Result.Manifest.Status); a Failed backup returns its manifest and an error.
//
// A backup is a sequence of named steps (see steps). An error of a step before the first that
// writes stops the run and gives the name's claim back; from then on it fails the backup, whose
// manifest records why — also when ctx was cancelled.
func Run(ctx context.Context, d Deps, cfg Config) (*Result, error) {
	d, cfg = withDefaults(d, cfg)
	start := d.Now().UTC().Truncate(time.Second)
	b := &run{d: d, cfg: cfg, start: start, m: newManifest(d, cfg, start), log: d.Log, counts: map[countKey]int{}}
	defer b.releaseUnlessStarted(ctx)
	var runErr error
	for _, s := range b.steps() {
		b.started = b.started || s.writes
		if runErr = s.do(ctx); runErr != nil {
			if !b.started {
				return nil, runErr
			}
			break
		}
	}
	b.finish()
	if cfg.DryRun {
		return &Result{Manifest: b.m, DryRun: true}, nil
	}
	return b.record(ctx, runErr)
}

// step is one named step of a backup; writes: from this step on, the backup's files are being
// written and an error fails the backup instead of giving its name back.
type step struct {
	name   string
	do     func(context.Context) error
	writes bool
}

// steps are the phases of a backup, in order; a dry run plans the same and writes nothing.
func (b *run) steps() []step {
	steps := []step{
		{name: "claim the name", do: b.claim},
		{name: "check the selection", do: b.checkSelection},
		{name: "plan the resources", do: b.plan},
	}
	if b.cfg.DryRun {
		return append(steps,
			step{name: "count the objects", do: b.count},
			step{name: "plan the volumes", do: b.planVolumes})
	}
	return append(steps,
		step{name: "check the location", do: b.checkLocation},
		step{name: "preflight", do: b.preflight},
		step{name: "write the resources archive", do: b.write, writes: true},
		step{name: "back up the volumes", do: b.backupVolumes, writes: true})
}

func withDefaults(d Deps, cfg Config) (Deps, Config) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = catalog.NewLog()
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPage
	}
	if cfg.ClusterResources == "" {
		cfg.ClusterResources = ClusterAuto
	}
	return d, cfg
}

// claim takes the backup's name in the catalog (not on a dry run), unless the caller has.
func (b *run) claim(ctx context.Context) error {
	if b.cfg.DryRun || b.d.Catalog == nil {
		return nil
	}
	if b.d.Claim == nil {
		b.d.Claim = catalog.NewClaim(b.start, version.Version)
		if err := b.d.Catalog.Claim(ctx, b.cfg.Name, b.d.Claim); err != nil {
			return err
		}
	}
	b.claimed = true
	return nil
}

// releaseUnlessStarted gives the name back when the run stopped before it wrote anything.
func (b *run) releaseUnlessStarted(ctx context.Context) {
	if b.claimed && !b.started {
		ReleaseClaim(ctx, b.d.Catalog, b.cfg.Name, b.d.Claim)
	}
}

// checkSelection parses the label selector and refuses selections that cannot go together.
// It runs after the claim: a bad selector gives the name back.
func (b *run) checkSelection(context.Context) error {
	cfg := b.cfg
	if _, err := labels.Parse(cfg.LabelSelector); err != nil {
		return fmt.Errorf("label selector %q: %w", cfg.LabelSelector, err)
	}
	if cfg.LabelSelector != "" && len(cfg.OrSelectors) > 0 {
		return errors.New("--selector and --or-selector cannot be used together")
	}
	if cfg.PolicyScoped != nil && cfg.Scoped == nil {
		return errors.New("the resource policy's includeExcludePolicy cannot be used with --include-resources, --exclude-resources or --include-cluster-resources (old-style filters): use the scoped filters")
	}
	return nil
}

// checkLocation refuses a backup with nowhere to write it.
func (b *run) checkLocation(context.Context) error {
	if b.d.Catalog == nil {
		return errors.New("backup: no location")
	}
	return nil
}

// preflight hands the plan to Deps.Preflight, before anything is written or created.
func (b *run) preflight(ctx context.Context) error {
	if b.d.Preflight == nil {
		return nil
	}
	return b.d.Preflight(ctx, b.p.preflight(b.d.Volumes != nil))
}

type countKey struct{ resource, namespace string }

type run struct {
	d     Deps
	cfg   Config
	start time.Time
	// claimed: this run holds the name's claim; started: it began writing the backup's files.
	claimed, started bool
	p                *planned
	m                *catalog.Manifest
	log              *catalog.Log
	counts           map[countKey]int
	items            int
	// needs collects the cluster-scoped objects the selected objects refer to (auto mode).
	needs map[schema.GroupResource]map[string]bool
	crds  map[string]bool // plural.group of every CRD, to tell custom resources apart
	// claims are the selected PVCs, for the volume engine.
	claims []*corev1.PersistentVolumeClaim
	// denied are the resource types the caller may not list, with the namespaces ("" cluster-wide).
	denied map[string][]string
}
