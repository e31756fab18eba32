package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// createFailure is the reason a create failed, with the way out where the restore knows one.
func createFailure(e *entry, err error) string {
	msg := reason(err)
	if e.gr == grService && strings.Contains(msg, "provided port is already allocated") {
		msg += " (another Service holds a nodePort this Service had: restore without --preserve-nodeports to get new ones, or free the port)"
	}
	return msg
}

// nodePortHolders maps each nodePort in use in the cluster to the Service holding it
// ("namespace/name"), listed once per dry run.
type nodePortHolders struct {
	held map[int64]string
	err  error
}

// checkNodePorts warns, on a dry run, when a Service restored with its nodePorts
// (--preserve-nodeports) would ask for a port another Service holds: the restore would fail it.
func (r *run) checkNodePorts(ctx context.Context, e *entry) {
	if e.gr != grService || !r.cfg.PreserveNodePorts {
		return
	}
	ports, _, _ := unstructured.NestedSlice(e.obj.Object, "spec", "ports")
	self := e.obj.GetNamespace() + "/" + e.obj.GetName()
	for _, p := range ports {
		np, ok := nodePortOf(p)
		if !ok {
			continue
		}
		h := r.nodePorts(ctx)
		if h.err != nil {
			e.addNote("--preserve-nodeports: the nodePorts in use cannot be checked: " + h.err.Error())
			return
		}
		if holder, ok := h.held[np]; ok && holder != self {
			msg := fmt.Sprintf("nodePort %d is held by Service %s: creating Service %s with it would fail (restore without --preserve-nodeports to get a new port)", np, holder, self)
			e.addNote(msg)
			r.mu.Lock()
			r.res.Warnings = append(r.res.Warnings, msg)
			r.mu.Unlock()
		}
	}
}

func nodePortOf(p any) (int64, bool) {
	pm, _ := p.(map[string]any)
	switch v := pm["nodePort"].(type) {
	case int64:
		return v, v > 0
	case float64:
		return int64(v), v > 0
	}
	return 0, false
}

// nodePorts lists the cluster's Services once (a dry run's workers share the list).
func (r *run) nodePorts(ctx context.Context) *nodePortHolders {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held != nil {
		return r.held
	}
	r.held = &nodePortHolders{held: map[int64]string{}}
	list, err := r.d.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "services"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) {
			err = errors.New("listing Services in every namespace is not allowed")
		}
		r.held.err = err
		return r.held
	}
	for _, s := range list.Items {
		ports, _, _ := unstructured.NestedSlice(s.Object, "spec", "ports")
		for _, p := range ports {
			if np, ok := nodePortOf(p); ok {
				r.held.held[np] = s.GetNamespace() + "/" + s.GetName()
			}
		}
	}
	return r.held
}
