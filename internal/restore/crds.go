package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// crdRestored reports whether this restore created (or would create) a CRD serving gvr. It reads
// what commit wrote, between batches: the CRDs' phase is over before custom resources are made.
func (r *run) crdRestored(gvr schema.GroupVersionResource) bool {
	return r.crds[gvr.Resource+"."+gvr.Group]
}

// waitCRDs waits, with a deadline, until every restored CRD is Established.
func (r *run) waitCRDs(ctx context.Context, crds []*entry) {
	done := r.d.Progress.Start("wait for custom resource definitions")
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CRDTimeout)
	defer cancel()
	var late []string
	for _, e := range crds {
		if err := waitEstablished(ctx, r.d.Dynamic, e.key.GVR, e.obj.GetName()); err != nil {
			late = append(late, fmt.Sprintf("%s: %v", e.obj.GetName(), err))
		}
	}
	if len(late) > 0 {
		msg := "CRDs not Established after " + r.cfg.CRDTimeout.String() + ": " + strings.Join(late, "; ")
		r.res.Warnings = append(r.res.Warnings, msg)
		done("", errors.New(msg))
		return
	}
	done(fmt.Sprintf("%d", len(crds)), nil)
}

// waitEstablished waits until CRD name (of resource gvr) is Established.
func waitEstablished(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, name string) error {
	established := func(o *unstructured.Unstructured) bool {
		conds, _, _ := unstructured.NestedSlice(o.Object, "status", "conditions")
		for _, c := range conds {
			cm, _ := c.(map[string]any)
			if cm["type"] == "Established" && cm["status"] == "True" {
				return true
			}
		}
		return false
	}
	lw := kube.ListWatch(dyn.Resource(gvr), dyn, kube.Named(name))
	return kube.Until(ctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		o, ok := ev.Object.(*unstructured.Unstructured)
		return ok && o.GetName() == name && established(o), nil
	})
}
