// Package backup is the engine of `kubectl pvbackup create`: it lists the selected objects,
// streams them into the encrypted resources archive and writes the manifest last.
package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
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

// VolumeEngine backs up PVC data (internal/volumes through the CLI): Plan decides without
// creating anything, Backup moves the data. Each returns one record per claim.
type VolumeEngine interface {
	Plan(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error)
	Backup(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error)
}

// Result is what a backup did, or on a dry run what it would do.
type Result struct {
	Manifest *catalog.Manifest
	DryRun   bool
}

// Run backs up what cfg selects. The returned error is nil for Completed and PartiallyFailed
// backups (see Result.Manifest.Status); a Failed backup returns its manifest and an error.
func Run(ctx context.Context, d Deps, cfg Config) (*Result, error) {
	d, cfg = withDefaults(d, cfg)
	start := d.Now().UTC().Truncate(time.Second)
	started := false // set once the backup's first file is being written
	if !cfg.DryRun && d.Catalog != nil {
		if d.Claim == nil {
			d.Claim = catalog.NewClaim(start, version.Version)
			if err := d.Catalog.Claim(ctx, cfg.Name, d.Claim); err != nil {
				return nil, err
			}
		}
		defer func() {
			if !started {
				ReleaseClaim(ctx, d.Catalog, cfg.Name, d.Claim)
			}
		}()
	}
	// Checked after the claim's release is deferred: a bad selector gives the name back.
	sel, err := checkSelection(cfg)
	if err != nil {
		return nil, err
	}
	m := newManifest(d, cfg, start)
	b := &run{d: d, cfg: cfg, sel: sel, m: m, log: catalog.NewLog(), counts: map[countKey]int{}}
	plan, err := b.plan(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.DryRun {
		return b.dryRun(ctx, plan)
	}
	if d.Catalog == nil {
		return nil, errors.New("backup: no location")
	}
	if d.Preflight != nil {
		if err := d.Preflight(ctx, plan.preflight(d.Volumes != nil)); err != nil {
			return nil, err
		}
	}
	started = true
	runErr := b.write(ctx, plan)
	if runErr == nil && d.Volumes != nil && len(b.claims) > 0 {
		vols, err := d.Volumes.Backup(ctx, b.claims)
		b.addVolumes(vols)
		runErr = err
	}
	b.finish()
	return b.record(ctx, runErr)
}

func withDefaults(d Deps, cfg Config) (Deps, Config) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPage
	}
	if cfg.ClusterResources == "" {
		cfg.ClusterResources = ClusterAuto
	}
	return d, cfg
}

// checkSelection parses the label selector and refuses selections that cannot go together.
func checkSelection(cfg Config) (labels.Selector, error) {
	sel, err := labels.Parse(cfg.LabelSelector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", cfg.LabelSelector, err)
	}
	if cfg.LabelSelector != "" && len(cfg.OrSelectors) > 0 {
		return nil, errors.New("--selector and --or-selector cannot be used together")
	}
	if cfg.PolicyScoped != nil && cfg.Scoped == nil {
		return nil, errors.New("the resource policy's includeExcludePolicy cannot be used with --include-resources, --exclude-resources or --include-cluster-resources (old-style filters): use the scoped filters")
	}
	return sel, nil
}

// newManifest is the backup.json of a run started at start, before anything is read.
func newManifest(d Deps, cfg Config, start time.Time) *catalog.Manifest {
	m := &catalog.Manifest{
		FormatVersion: catalog.FormatVersion,
		KeyScheme:     keyring.Scheme,
		Name:          cfg.Name,
		Labels:        cfg.Labels,
		ToolVersion:   version.Version,
		Cluster:       d.Cluster,
		Selection: catalog.Selection{
			IncludeNamespaces:       cfg.Namespaces.Include,
			ExcludeNamespaces:       cfg.Namespaces.Exclude,
			IncludeResources:        cfg.Resources.Include,
			ExcludeResources:        cfg.Resources.Exclude,
			LabelSelector:           cfg.LabelSelector,
			OrLabelSelectors:        cfg.OrSelectors,
			IncludeClusterResources: string(cfg.ClusterResources),
			ResourcePolicies:        cfg.ResourcePolicies,
		},
		StartTime: start,
	}
	if cfg.TTL > 0 {
		m.TTL, m.ExpiresAt = cfg.TTL.String(), m.StartTime.Add(cfg.TTL)
	}
	if f := cfg.Scoped; f != nil {
		m.Selection.IncludeClusterResources = ""
		m.Selection.IncludeClusterScopedResources, m.Selection.ExcludeClusterScopedResources = f.IncludeCluster, f.ExcludeCluster
		m.Selection.IncludeNamespaceScopedResources, m.Selection.ExcludeNamespaceScopedResources = f.IncludeNamespaced, f.ExcludeNamespaced
	}
	return m
}

// dryRun walks what would be backed up and plans its volumes, writing nothing.
func (b *run) dryRun(ctx context.Context, plan *planned) (*Result, error) {
	if err := b.walk(ctx, plan, nil); err != nil {
		return nil, err
	}
	if b.d.Volumes != nil && len(b.claims) > 0 {
		vols, err := b.d.Volumes.Plan(ctx, b.claims)
		if err != nil {
			return nil, err
		}
		b.addVolumes(vols)
	}
	b.finish()
	return &Result{Manifest: b.m, DryRun: true}, nil
}

// record writes the log and backup.json — also when ctx was cancelled: a user who pressed
// Ctrl-C should find a Failed backup that says so, not an unexplained directory.
func (b *run) record(ctx context.Context, runErr error) (*Result, error) {
	m, name := b.m, b.cfg.Name
	if runErr != nil {
		m.Status = catalog.Failed
		m.Errors = append(m.Errors, runErr.Error())
	}
	wctx, cancel := cleanup.Context(ctx, cleanup.Call)
	defer cancel()
	b.log.Add(catalog.LogEntry{Level: "info", Message: "backup " + string(m.Status)})
	if err := b.d.Catalog.WriteLog(wctx, name, b.log); err != nil {
		m.Warnings = append(m.Warnings, catalog.Warning{Message: err.Error()})
	}
	if err := b.d.Catalog.WriteManifest(wctx, m); err != nil {
		return &Result{Manifest: m}, fmt.Errorf("%w (the backup is incomplete)", err)
	}
	if m.Status == catalog.Failed {
		return &Result{Manifest: m}, fmt.Errorf("backup %q failed: %w", name, runErr)
	}
	return &Result{Manifest: m}, nil
}

// ReleaseClaim gives the name back after a run that wrote nothing but its claim, even when ctx
// was cancelled; a failure leaves an Incomplete backup that `delete` removes.
func ReleaseClaim(ctx context.Context, cat *catalog.Catalog, name string, cl *catalog.Claim) {
	rctx, cancel := cleanup.Context(ctx, cleanup.Call)
	defer cancel()
	_ = cat.Release(rctx, name, cl)
}

type countKey struct{ resource, namespace string }

type run struct {
	d      Deps
	cfg    Config
	sel    labels.Selector
	m      *catalog.Manifest
	log    *catalog.Log
	counts map[countKey]int
	items  int
	// needs collects the cluster-scoped objects the selected objects refer to (auto mode).
	needs map[schema.GroupResource]map[string]bool
	crds  map[string]bool // plural.group of every CRD, to tell custom resources apart
	// claims are the selected PVCs, for the volume engine.
	claims []*corev1.PersistentVolumeClaim
	// denied are the resource types the caller may not list, with the namespaces ("" cluster-wide).
	denied map[string][]string
}

// addVolumes records the volume outcomes; a failed volume is an error of the backup.
func (b *run) addVolumes(vols []catalog.Volume) {
	b.m.Volumes = append(b.m.Volumes, vols...)
	for _, v := range vols {
		where := v.Namespace + "/" + v.PVC
		if v.Status == catalog.VolumeFailed {
			b.m.Errors = append(b.m.Errors, fmt.Sprintf("volume %s (%s): %s", where, v.Mode, v.Error))
			b.log.Add(catalog.LogEntry{Level: "error", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: v.Error})
		} else {
			b.log.Add(catalog.LogEntry{Level: "info", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC,
				Message: fmt.Sprintf("volume %s: %s (%s)", v.Status, v.Mode, v.Reason)})
		}
		for _, d := range v.MoverDebug {
			b.log.Add(catalog.LogEntry{Level: "debug", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: "mover storage call " + d})
		}
		for _, h := range v.Hooks {
			b.log.Add(catalog.LogEntry{Level: "info", Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: h})
		}
		for _, w := range v.Warnings {
			b.warn(catalog.Warning{Resource: "persistentvolumeclaims", Namespace: v.Namespace, Name: v.PVC, Message: "volume " + where + ": " + w})
		}
	}
}

// planned is the walk's input: the resources to list and the namespaces to list them in.
type planned struct {
	namespaced []selection.Resource
	cluster    []selection.Resource // listed whole (ClusterAll, or all namespaces in auto)
	byGR       map[schema.GroupResource]selection.Resource
	namespaces []string
	allNS      bool
	auto       bool // fetch only what is needed
	// needExcluded keeps a needed cluster-scoped resource out (the user excluded it).
	needExcluded func(selection.Resource) bool
	// nsObjects are the selected namespaces' own objects, read once while planning; listNS:
	// they were listed, not read one by one.
	nsObjects map[string]*unstructured.Unstructured
	listNS    bool
}

// chooseResources fills the plan's resource lists from the old-style filter (--include-resources
// and the cluster mode) or from Velero's scoped filters.
func (b *run) chooseResources(p *planned, all []selection.Resource, nsRes selection.Resource) error {
	if b.cfg.Scoped != nil {
		f := *b.cfg.Scoped
		if b.cfg.PolicyScoped != nil {
			f = f.Merge(*b.cfg.PolicyScoped, all)
		}
		sc, err := f.Resolve(all, p.allNS)
		if err != nil {
			return err
		}
		p.namespaced, p.cluster = sc.Namespaced, sc.Cluster
		if sc.Namespaces {
			p.cluster = append([]selection.Resource{nsRes}, p.cluster...)
		}
		p.auto = !sc.AllCluster
		p.needExcluded = sc.Excluded
		return nil
	}
	chosen, err := b.cfg.Resources.Resolve(all)
	if err != nil {
		return err
	}
	mode := b.cfg.ClusterResources
	p.auto = mode == ClusterAuto && !p.allNS
	p.needExcluded = func(r selection.Resource) bool { return excluded(b.cfg.Resources, r) }
	includeNamespaceObjects := false
	for _, r := range chosen {
		switch {
		case r.Namespaced:
			p.namespaced = append(p.namespaced, r)
		case r.GVR.Group == "" && r.GVR.Resource == "namespaces":
			includeNamespaceObjects = true
		case mode == ClusterAll || (mode == ClusterAuto && p.allNS):
			p.cluster = append(p.cluster, r)
		}
	}
	if includeNamespaceObjects {
		// The selected namespaces' own objects (labels, annotations) go with them in every mode.
		p.cluster = append([]selection.Resource{nsRes}, p.cluster...)
	}
	return nil
}

func (p *planned) preflight(volumes bool) PreflightPlan {
	pp := PreflightPlan{Namespaces: p.namespaces, AllNamespaces: p.allNS, ListNamespaces: p.listNS, ClusterNeeds: p.auto}
	for _, r := range p.namespaced {
		pp.Resources = append(pp.Resources, r.GVR.GroupResource().String())
		if r.GVR.Group == "" && r.GVR.Resource == "persistentvolumeclaims" {
			pp.Claims = volumes
		}
	}
	return pp
}

func (b *run) plan(ctx context.Context) (*planned, error) {
	done := b.d.Progress.Start("discover API resources")
	all, warns, err := selection.Discover(b.d.Discovery)
	if err != nil {
		done("", err)
		return nil, err
	}
	for _, w := range warns {
		b.warn(catalog.Warning{Message: w})
	}
	p := &planned{byGR: map[schema.GroupResource]selection.Resource{}}
	for _, r := range all {
		p.byGR[r.GVR.GroupResource()] = r
	}
	nsRes, ok := p.byGR[schema.GroupResource{Resource: "namespaces"}]
	if !ok {
		done("", errors.New("the cluster serves no namespaces resource"))
		return nil, errors.New("the cluster serves no namespaces resource")
	}
	found, err := b.findNamespaces(ctx, nsRes)
	if err != nil {
		done("", err)
		return nil, err
	}
	var existing []string
	excludedNS := map[string]string{}
	p.nsObjects, p.listNS = map[string]*unstructured.Unstructured{}, b.literalNamespaces() == nil
	for _, n := range found {
		existing = append(existing, n.GetName())
		p.nsObjects[n.GetName()] = n
		if label := selection.ExcludedBy(n.GetLabels()); label != "" {
			excludedNS[n.GetName()] = label
		}
	}
	selected, err := b.cfg.Namespaces.Resolve(existing)
	if err != nil {
		done("", err)
		return nil, err
	}
	for _, n := range selected {
		// A selected Namespace labelled for exclusion is left out with all it holds, as in Velero.
		label := excludedNS[n]
		if label == "" {
			p.namespaces = append(p.namespaces, n)
			continue
		}
		b.m.Excluded = append(b.m.Excluded, catalog.Excluded{Resource: "namespaces", Name: n, Label: label})
		b.log.Add(catalog.LogEntry{Level: "info", Resource: "namespaces", Name: n, Message: "left out with everything in it: labelled " + label})
		for _, inc := range b.cfg.Namespaces.Include {
			if inc == n {
				b.warn(catalog.Warning{Resource: "namespaces", Name: n, Message: fmt.Sprintf("namespace %s is named in --include-namespaces but labelled %s: it is left out", n, label)})
			}
		}
	}
	// A labelled namespace does not turn a whole-cluster backup into a partial one: the
	// cluster-scoped choice follows the flags.
	p.allNS = b.cfg.Namespaces.All()
	if err := b.chooseResources(p, all, nsRes); err != nil {
		done("", err)
		return nil, err
	}
	if p.auto {
		b.needs = map[schema.GroupResource]map[string]bool{}
		b.crds = map[string]bool{}
		if crd, ok := p.byGR[grCRD]; ok && !b.allowed(ctx, "list", grCRD, "") {
			b.warn(catalog.Warning{Resource: crd.GroupResource(), Message: "not allowed to list CustomResourceDefinitions (cluster-scoped): the CRDs of the selection's custom resources are not in the backup; a restore needs them installed"})
		} else if ok {
			list, err := b.d.Dynamic.Resource(crd.GVR).List(ctx, metav1.ListOptions{})
			if err != nil {
				b.warn(catalog.Warning{Resource: crd.GroupResource(), Message: "list CRDs: " + err.Error() + " (CRDs of custom resources will be missing)"})
			} else {
				for _, c := range list.Items {
					b.crds[c.GetName()] = true
				}
			}
		}
	}
	done(fmt.Sprintf("%d resource types, %d namespaces", len(p.namespaced)+len(p.cluster), len(p.namespaces)), nil)
	return p, nil
}

// write streams the archive to the bucket. The object appears only if everything succeeded.
func (b *run) write(ctx context.Context, p *planned) (err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := b.d.Catalog.NewWriter(wctx, b.cfg.Name, catalog.ResourcesFile, "application/octet-stream")
	if err != nil {
		return err
	}
	cw := &countingWriter{w: bw}
	aw, err := archive.NewWriter(cw, b.cfg.ArchiveKey)
	if err != nil {
		cancel()
		_ = bw.Close()
		return err
	}
	if err := b.walk(ctx, p, aw); err != nil {
		cancel() // abandon the upload: gocloud does not create the object
		_ = bw.Close()
		return err
	}
	done := b.d.Progress.Start("upload resources archive")
	if err := aw.Close(); err != nil {
		cancel()
		_ = bw.Close()
		done("", err)
		return fmt.Errorf("finish resources archive: %w", err)
	}
	if err := bw.Close(); err != nil {
		done("", err)
		return fmt.Errorf("upload resources archive to %s: %w", b.d.Catalog.Location(), err)
	}
	done(progress.Bytes(cw.n), nil)
	b.m.Archive = catalog.ArchiveRef{File: catalog.ResourcesFile, Size: cw.n, Encrypted: "age-scrypt"}
	return nil
}

// walk lists every planned resource and hands each object to aw (nil: count only).
func (b *run) walk(ctx context.Context, p *planned, aw *archive.Writer) error {
	b.m.Namespaces = p.namespaces
	for _, r := range p.cluster {
		list := b.listResource
		if r.GVR.Group == "" && r.GVR.Resource == "namespaces" {
			list = b.addNamespaces
		}
		if err := list(ctx, r, p, aw); err != nil {
			return err
		}
	}
	for _, r := range p.namespaced {
		if len(p.namespaces) == 0 {
			break
		}
		if err := b.listResource(ctx, r, p, aw); err != nil {
			return err
		}
	}
	if p.auto {
		if err := b.fetchNeeds(ctx, p, aw); err != nil {
			return err
		}
	}
	return nil
}

// listResource lists one resource, across the selected namespaces, and archives what matches.
// Errors of one resource (forbidden, a broken aggregated API) are warnings; archive errors stop.
func (b *run) listResource(ctx context.Context, r selection.Resource, p *planned, aw *archive.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := b.d.Progress.Start(r.GroupResource())
	before := b.items
	inNS := map[string]bool{}
	for _, n := range p.namespaces {
		inNS[n] = true
	}
	isNamespaceList := !r.Namespaced && r.GVR.Group == "" && r.GVR.Resource == "namespaces"
	var scopes []string
	switch {
	case !r.Namespaced:
		scopes = []string{""}
	case p.allNS || len(p.namespaces) > clusterWideAbove:
		scopes = []string{metav1.NamespaceAll}
	default:
		scopes = p.namespaces
	}
	var listErrs []string
	gone := false
	for i := 0; i < len(scopes) && !gone; i++ {
		ns := scopes[i]
		seen := map[types.UID]bool{} // an object matching several --or-selector terms is taken once
		err := b.listSelected(ctx, r, ns, isNamespaceList, func(o *unstructured.Unstructured) error {
			if r.Namespaced && !inNS[o.GetNamespace()] {
				return nil
			}
			if isNamespaceList && !inNS[o.GetName()] {
				return nil
			}
			if uid := o.GetUID(); uid != "" {
				if seen[uid] {
					return nil
				}
				seen[uid] = true
			}
			return b.add(r, o, aw)
		})
		if err != nil {
			if ctx.Err() != nil {
				done("", ctx.Err())
				return ctx.Err()
			}
			var ae *archiveError
			if errors.As(err, &ae) {
				done("", err)
				return err
			}
			if ns == metav1.NamespaceAll && r.Namespaced && apierrors.IsForbidden(err) {
				// Allowed per namespace only: fall back to one list per selected namespace.
				scopes = append(scopes, p.namespaces...)
				continue
			}
			if apierrors.IsNotFound(err) && !b.named(r) {
				// The type went away after discovery (its CRD deleted while the backup ran): no
				// object of it is left to back up, which is no failure of the backup.
				gone = true
				break
			}
			if apierrors.IsForbidden(err) && !b.named(r) {
				// A type the user may not read, and did not ask for by name: a namespace admin
				// backs up what their role lets them read; the plan says what it leaves out.
				b.deny(r, ns)
				continue
			}
			where := ""
			if ns != "" {
				where = " in namespace " + ns
			}
			msg := fmt.Sprintf("list %s%s: %v", r.GroupResource(), where, err)
			listErrs = append(listErrs, msg)
			b.warn(catalog.Warning{Resource: r.GroupResource(), Namespace: ns, Message: msg})
		}
	}
	n := b.items - before
	if gone && len(listErrs) == 0 {
		b.warn(catalog.Warning{Resource: r.GroupResource(), Message: fmt.Sprintf("%s is no longer served (its CustomResourceDefinition was removed during the backup): %d of its objects backed up", r.GroupResource(), n)})
		done(fmt.Sprintf("%d; no longer served", n), nil)
		return nil
	}
	if nss := b.denied[r.GroupResource()]; len(nss) > 0 && len(listErrs) == 0 {
		done(fmt.Sprintf("%d; not allowed in %s", n, plural(len(nss), "namespace")), nil)
		return nil
	}
	if len(listErrs) > 0 {
		done(fmt.Sprintf("%d", n), errors.New(strings.Join(listErrs, "; ")))
		b.m.Errors = append(b.m.Errors, listErrs...)
		return nil
	}
	done(fmt.Sprintf("%d", n), nil)
	if n == 0 {
		// Recorded with its zero, so -o json keeps every count; text output folds them.
		b.counts[countKey{resourceID(r.GVR), ""}] += 0
	}
	if n > 0 {
		b.log.Add(catalog.LogEntry{Level: "info", Resource: r.GroupResource(), Message: fmt.Sprintf("backed up %d objects", n)})
	}
	return nil
}

// listSelected lists r with the label selector, or once per --or-selector term (the API has no
// OR of selectors). Namespace objects go with the selection whatever their labels: restores need them.
func (b *run) listSelected(ctx context.Context, r selection.Resource, ns string, unfiltered bool, fn func(*unstructured.Unstructured) error) error {
	if unfiltered || len(b.cfg.OrSelectors) == 0 {
		sel := b.cfg.LabelSelector
		if unfiltered {
			sel = ""
		}
		return b.listPages(ctx, r, ns, sel, fn)
	}
	for _, sel := range b.cfg.OrSelectors {
		if err := b.listPages(ctx, r, ns, sel, fn); err != nil {
			return err
		}
	}
	return nil
}

func (b *run) listPages(ctx context.Context, r selection.Resource, ns, selector string, fn func(*unstructured.Unstructured) error) error {
	opts := metav1.ListOptions{Limit: b.cfg.PageSize, LabelSelector: selector}
	var ri dynamic.ResourceInterface = b.d.Dynamic.Resource(r.GVR)
	if r.Namespaced {
		ri = b.d.Dynamic.Resource(r.GVR).Namespace(ns)
	}
	for {
		list, err := ri.List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			if err := fn(&list.Items[i]); err != nil {
				return err
			}
		}
		opts.Continue = list.GetContinue()
		if opts.Continue == "" {
			return nil
		}
	}
}

type archiveError struct{ err error }

func (e *archiveError) Error() string { return e.err.Error() }
func (e *archiveError) Unwrap() error { return e.err }

// add archives one object (aw nil: counts it) and notes what cluster objects it needs.
func (b *run) add(r selection.Resource, o *unstructured.Unstructured, aw *archive.Writer) error {
	lbls := o.GetLabels()
	if label := selection.ExcludedBy(lbls); label != "" {
		b.m.Excluded = append(b.m.Excluded, catalog.Excluded{Resource: r.GroupResource(), Namespace: o.GetNamespace(), Name: o.GetName(), Label: label})
		b.log.Add(catalog.LogEntry{Level: "info", Resource: r.GroupResource(), Namespace: o.GetNamespace(), Name: o.GetName(), Message: "left out: labelled " + label})
		return nil
	}
	for k, v := range selection.ControllerManagedLabels {
		if lbls[k] == v {
			return nil
		}
	}
	if b.needs != nil && r.Namespaced {
		b.noteNeeds(r, o)
	}
	if r.Namespaced && r.GVR.Group == "" && r.GVR.Resource == "persistentvolumeclaims" && b.d.Volumes != nil {
		var c corev1.PersistentVolumeClaim
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &c); err != nil {
			return fmt.Errorf("decode PVC %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		b.claims = append(b.claims, &c)
	}
	if aw != nil {
		// managedFields only say which client last wrote each field; restore drops them anyway.
		o.SetManagedFields(nil)
		data, err := json.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s/%s: %w", r.GroupResource(), o.GetNamespace(), o.GetName(), err)
		}
		k := archive.Key{GVR: r.GVR, Namespace: o.GetNamespace(), Name: o.GetName()}
		if err := aw.Add(k, data); err != nil {
			return &archiveError{err}
		}
	}
	b.items++
	b.counts[countKey{resourceID(r.GVR), o.GetNamespace()}]++
	return nil
}

var (
	grPV   = schema.GroupResource{Resource: "persistentvolumes"}
	grSC   = schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}
	grCRD  = schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}
	grRole = schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}
)

func (b *run) need(gr schema.GroupResource, name string) {
	if name == "" {
		return
	}
	if b.needs[gr] == nil {
		b.needs[gr] = map[string]bool{}
	}
	b.needs[gr][name] = true
}

// needClasses notes the StorageClass a claim, claim template or PV names, in its spec or in the
// beta annotation that published manifests still use.
func (b *run) needClasses(claim map[string]any) {
	sc, _, _ := unstructured.NestedString(claim, "spec", "storageClassName")
	b.need(grSC, sc)
	beta, _, _ := unstructured.NestedString(claim, "metadata", "annotations", "volume.beta.kubernetes.io/storage-class")
	b.need(grSC, beta)
}

func (b *run) noteNeeds(r selection.Resource, o *unstructured.Unstructured) {
	gr := r.GVR.GroupResource()
	switch gr {
	case schema.GroupResource{Resource: "persistentvolumeclaims"}:
		v, _, _ := unstructured.NestedString(o.Object, "spec", "volumeName")
		b.need(grPV, v)
		b.needClasses(o.Object)
	case schema.GroupResource{Group: "apps", Resource: "statefulsets"}:
		// Replicas added after a restore get claims from these templates.
		tmpls, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
		for _, t := range tmpls {
			if m, ok := t.(map[string]any); ok {
				b.needClasses(m)
			}
		}
	case schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}:
		kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		if kind == "ClusterRole" {
			b.need(grRole, name)
		}
	}
	if crd := gr.Resource + "." + gr.Group; b.crds[crd] {
		b.need(grCRD, crd)
	}
}

// fetchNeeds archives the cluster-scoped objects the selection refers to. PVs come first so
// that their StorageClasses are needed too.
func (b *run) fetchNeeds(ctx context.Context, p *planned, aw *archive.Writer) error {
	for _, gr := range []schema.GroupResource{grPV, grSC, grCRD, grRole} {
		names := b.needs[gr]
		if len(names) == 0 {
			continue
		}
		r, ok := p.byGR[gr]
		if !ok {
			continue
		}
		if p.needExcluded(r) {
			continue
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		if !b.allowed(ctx, "get", gr, "") {
			b.warn(catalog.Warning{Resource: r.GroupResource(), Message: fmt.Sprintf("not allowed to get %s (cluster-scoped): %s, which the selection needs, are not in the backup; a restore needs them to exist", r.GroupResource(), strings.Join(sorted, ", "))})
			continue
		}
		done := b.d.Progress.Start(r.GroupResource() + " (needed by the selection)")
		n := 0
		for _, name := range sorted {
			o, err := b.d.Dynamic.Resource(r.GVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				if ctx.Err() != nil {
					done("", ctx.Err())
					return ctx.Err()
				}
				b.warn(catalog.Warning{Resource: r.GroupResource(), Name: name, Message: fmt.Sprintf("get %s %s, needed by the selection: %v", r.GroupResource(), name, err)})
				continue
			}
			if gr == grPV {
				b.needClasses(o.Object)
			}
			if err := b.add(r, o, aw); err != nil {
				done("", err)
				return err
			}
			n++
		}
		done(fmt.Sprintf("%d", n), nil)
	}
	return nil
}

func excluded(f selection.ResourceFilter, r selection.Resource) bool {
	got, err := selection.ResourceFilter{Exclude: f.Exclude}.Resolve([]selection.Resource{r})
	return err == nil && len(got) == 0
}

func (b *run) warn(w catalog.Warning) {
	b.m.Warnings = append(b.m.Warnings, w)
	b.d.Progress.Warn(w.Message)
	b.log.Add(catalog.LogEntry{Level: "warning", Resource: w.Resource, Namespace: w.Namespace, Name: w.Name, Message: w.Message})
}

// finish fills the manifest's counts, status and end time.
func (b *run) finish() {
	b.warnDenied()
	b.m.Items = b.items
	sort.SliceStable(b.m.Excluded, func(i, j int) bool {
		a, c := b.m.Excluded[i], b.m.Excluded[j]
		return a.Resource+"/"+a.Namespace+"/"+a.Name < c.Resource+"/"+c.Namespace+"/"+c.Name
	})
	b.m.Resources = b.m.Resources[:0]
	for k, n := range b.counts {
		b.m.Resources = append(b.m.Resources, catalog.Count{Resource: k.resource, Namespace: k.namespace, Count: n})
	}
	sort.Slice(b.m.Resources, func(i, j int) bool {
		a, c := b.m.Resources[i], b.m.Resources[j]
		if a.Resource != c.Resource {
			return a.Resource < c.Resource
		}
		return a.Namespace < c.Namespace
	})
	switch {
	case b.m.Status == catalog.Failed:
	case len(b.m.Errors) > 0:
		b.m.Status = catalog.PartiallyFailed
	default:
		b.m.Status = catalog.Completed
	}
	b.m.CompletionTime = b.d.Now().UTC().Truncate(time.Second)
}

// resourceID is "group/version/resource", "v1/resource" for the core group.
func resourceID(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Version + "/" + gvr.Resource
	}
	return gvr.Group + "/" + gvr.Version + "/" + gvr.Resource
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
