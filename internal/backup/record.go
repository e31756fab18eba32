package backup

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
)

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

// record writes the log and backup.json — also when ctx was cancelled: a user who pressed
// Ctrl-C should find a Failed backup that says so, not an unexplained directory.
func (b *run) record(ctx context.Context, runErr error) (*Result, error) {
	m, name := b.m, b.cfg.Name
	runErr = progress.Explain(ctx, runErr) // "interrupted (Ctrl-C)", not "context canceled"
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
