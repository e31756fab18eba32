package backup

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

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
