package backup

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

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

// plan discovers the served resources, finds the selected namespaces and chooses what to list,
// under one progress line.
func (b *run) plan(ctx context.Context) error {
	done := b.d.Progress.Start("discover API resources")
	p, err := b.makePlan(ctx)
	if err != nil {
		done("", err)
		return err
	}
	b.p = p
	done(progress.Plural(len(p.namespaced)+len(p.cluster), "resource type", "resource types")+", "+progress.Plural(len(p.namespaces), "namespace", "namespaces"), nil)
	return nil
}

func (b *run) makePlan(ctx context.Context) (*planned, error) {
	all, warns, err := selection.Discover(b.d.Discovery)
	if err != nil {
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
		return nil, errors.New("the cluster serves no namespaces resource")
	}
	if err := b.selectNamespaces(ctx, p, nsRes); err != nil {
		return nil, err
	}
	// A labelled namespace does not turn a whole-cluster backup into a partial one: the
	// cluster-scoped choice follows the flags.
	p.allNS = b.cfg.Namespaces.All()
	if err := b.chooseResources(p, all, nsRes); err != nil {
		return nil, err
	}
	if p.auto {
		b.needs = map[schema.GroupResource]map[string]bool{}
		b.readCRDs(ctx, p)
	}
	return p, nil
}

// selectNamespaces fills the plan's namespaces: the existing ones the filter selects, less those
// labelled for exclusion.
func (b *run) selectNamespaces(ctx context.Context, p *planned, nsRes selection.Resource) error {
	found, err := b.findNamespaces(ctx, nsRes)
	if err != nil {
		return err
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
		return err
	}
	for _, n := range selected {
		if label := excludedNS[n]; label != "" {
			b.leaveOutNamespace(n, label)
			continue
		}
		p.namespaces = append(p.namespaces, n)
	}
	return nil
}

// leaveOutNamespace records a selected Namespace labelled for exclusion: it is left out with all
// it holds, as in Velero.
func (b *run) leaveOutNamespace(n, label string) {
	b.m.Excluded = append(b.m.Excluded, catalog.Excluded{Resource: "namespaces", Name: n, Label: label})
	b.log.Add(catalog.LogEntry{Level: "info", Resource: "namespaces", Name: n, Message: "left out with everything in it: labelled " + label})
	for _, inc := range b.cfg.Namespaces.Include {
		if inc == n {
			b.warn(catalog.Warning{Resource: "namespaces", Name: n, Message: fmt.Sprintf("namespace %s is named in --include-namespaces but labelled %s: it is left out", n, label)})
		}
	}
}

// readCRDs notes the name of every CRD (auto mode), to tell the selection's custom resources
// apart; without them the CRDs are left out, with a warning.
func (b *run) readCRDs(ctx context.Context, p *planned) {
	b.crds = map[string]bool{}
	crd, ok := p.byGR[grCRD]
	if !ok {
		return
	}
	if !b.allowed(ctx, "list", grCRD, "") {
		b.warn(catalog.Warning{Resource: crd.GroupResource(), Message: "not allowed to list CustomResourceDefinitions (cluster-scoped): the CRDs of the selection's custom resources are not in the backup; a restore needs them installed"})
		return
	}
	list, err := b.d.Dynamic.Resource(crd.GVR).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.warn(catalog.Warning{Resource: crd.GroupResource(), Message: "list CRDs: " + err.Error() + " (CRDs of custom resources will be missing)"})
		return
	}
	for _, c := range list.Items {
		b.crds[c.GetName()] = true
	}
}

func excluded(f selection.ResourceFilter, r selection.Resource) bool {
	got, err := selection.ResourceFilter{Exclude: f.Exclude}.Resolve([]selection.Resource{r})
	return err == nil && len(got) == 0
}
