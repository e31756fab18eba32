package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// exists deals with an object that is in the cluster already (cur; getErr when it could not be
// read): it is left alone (PolicyNone) or overwritten (PolicyUpdate), unless it is being deleted.
func (r *run) exists(ctx context.Context, ri dynamic.ResourceInterface, e *entry, cur *unstructured.Unstructured, getErr error) {
	if getErr == nil {
		if why := beingDeleted(cur); why != "" {
			// Skipping or updating it would restore nothing: it is about to go.
			r.record(e, Failed, why)
			return
		}
	}
	if r.cfg.Policy != PolicyUpdate {
		r.record(e, Skipped, "exists")
		if getErr == nil {
			r.setUID(e.oldUID, cur.GetUID())
		}
		return
	}
	if getErr != nil {
		r.record(e, Failed, "exists; update failed: "+reason(getErr))
		return
	}
	updated, err := r.update(ctx, ri, e, cur)
	if err != nil {
		r.record(e, Failed, "exists; update failed: "+reason(err))
		return
	}
	e.created = true
	r.restored(e, updated, Updated)
}

// beingDeleted explains, for an object that exists but is being deleted, why the restore cannot
// use it ("" if it is not being deleted): the usual case is a PVC held by kubernetes.io/pvc-protection
// while pods (finished ones too) still reference it.
func beingDeleted(o *unstructured.Unstructured) string {
	ts := o.GetDeletionTimestamp()
	if ts == nil {
		return ""
	}
	held := "its finalizers"
	if f := o.GetFinalizers(); len(f) > 0 {
		held = strings.Join(f, ", ")
	}
	hint := "restore it again once it is gone"
	if slices.Contains(o.GetFinalizers(), "kubernetes.io/pvc-protection") {
		hint = "pods still reference it, finished ones too: delete them, then restore again"
	}
	return fmt.Sprintf("exists but is being deleted (since %s, held by %s): %s", ts.UTC().Format(time.RFC3339), held, hint)
}

// update overwrites cur, the object as the cluster has it now, with the backup's.
func (r *run) update(ctx context.Context, ri dynamic.ResourceInterface, e *entry, cur *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	o := e.obj.DeepCopy()
	o.SetResourceVersion(cur.GetResourceVersion())
	// Fields the cluster allocated and will not let change.
	switch e.gr {
	case grService:
		for _, f := range []string{"clusterIP", "clusterIPs"} {
			if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", f); ok {
				if _, set, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", f); !set {
					_ = unstructured.SetNestedField(o.Object, v, "spec", f)
				}
			}
		}
		if !r.cfg.PreserveNodePorts {
			curPorts, _, _ := unstructured.NestedSlice(cur.Object, "spec", "ports")
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			for i := range ports {
				if i < len(curPorts) {
					if np, ok := curPorts[i].(map[string]any)["nodePort"]; ok {
						ports[i].(map[string]any)["nodePort"] = np
					}
				}
			}
			if ports != nil {
				_ = unstructured.SetNestedSlice(o.Object, ports, "spec", "ports")
			}
		}
	case grPVC:
		if v, ok, _ := unstructured.NestedString(cur.Object, "spec", "volumeName"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "volumeName")
		}
	case grJob:
		if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", "selector"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "selector")
		}
		if v, ok, _ := unstructured.NestedFieldCopy(cur.Object, "spec", "template"); ok {
			_ = unstructured.SetNestedField(o.Object, v, "spec", "template") // immutable
		}
	}
	return ri.Update(ctx, o, metav1.UpdateOptions{})
}
