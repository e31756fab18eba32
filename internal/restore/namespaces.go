package restore

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
)

// ensureNamespaces creates the namespaces objects will go into that the backup does not bring
// (a mapped namespace, or a namespace whose object was filtered out).
func (r *run) ensureNamespaces(ctx context.Context, byKey map[archive.Key]*entry) error {
	brought := map[string]bool{}
	needed := map[string]bool{}
	for k, e := range byKey {
		if e.gr == (schema.GroupResource{Resource: "namespaces"}) {
			brought[e.obj.GetName()] = true
		} else if k.Namespace != "" {
			needed[e.obj.GetNamespace()] = true
		}
	}
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	for ns := range needed {
		if brought[ns] {
			continue
		}
		_, err := r.d.Dynamic.Resource(nsGVR).Get(ctx, ns, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("look up namespace %s: %w", ns, err)
		}
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
		e := &entry{gr: nsGVR.GroupResource(), obj: o, key: archive.Key{GVR: nsGVR, Name: ns}}
		byKey[e.key] = e
		r.applyOne(ctx, e)
		r.commit(e)
	}
	return nil
}
