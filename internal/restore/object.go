package restore

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// record notes the outcome of e; commit adds it to the result.
func (r *run) record(e *entry, a Action, reason string) {
	if reason == "" && (a == Created || a == WouldCreate || a == Updated || a == WouldUpdate) {
		reason = e.note
	} else if a == WouldUpdate && e.note != "" {
		reason += "; " + e.note
	}
	e.row = Item{Resource: e.gr.String(), Namespace: e.obj.GetNamespace(), Name: e.obj.GetName(), Action: a, Reason: reason}
}

// commit adds e's recorded outcome to the result. Only the goroutine that runs the phases
// calls it, between the workers' batches.
func (r *run) commit(e *entry) {
	e.item = len(r.res.Items)
	r.res.Items = append(r.res.Items, e.row)
	r.res.Summary[e.row.Action]++
	if e.gr == grCRD && (e.row.Action == Created || e.row.Action == Updated || e.row.Action == WouldCreate) {
		r.crds[e.obj.GetName()] = true
	}
}

// applyOne creates e, or deals with the object of its name that exists, and records the outcome.
// Workers of one resource type run it side by side.
func (r *run) applyOne(ctx context.Context, e *entry) {
	defer e.done.Store(true)
	gvr := e.key.GVR
	if !r.served[gvr] && !r.crdRestored(gvr) {
		r.record(e, Failed, fmt.Sprintf("%s is not served by this cluster (install its API or CRD first)", resourceString(gvr)))
		return
	}
	e.owners = e.obj.GetOwnerReferences()
	refs, later := r.ownerRefs(ctx, e)
	e.later = later
	if len(e.owners) > 0 {
		e.obj.SetOwnerReferences(refs)
	}
	ri := r.client(gvr, e.obj.GetNamespace())
	if r.cfg.DryRun {
		r.dryRunOne(ctx, ri, e)
		return
	}
	created, err := r.create(ctx, ri, gvr, e.obj)
	if err == nil {
		e.created = true
		r.restored(e, created, Created)
		return
	}
	// The apiserver validates an object before it looks for one of the same name: a Service
	// whose preserved nodePort is its own fails with "provided port is already allocated", not
	// AlreadyExists. Whatever the refusal, an object of that name is what exists.
	cur, gerr := ri.Get(ctx, e.obj.GetName(), metav1.GetOptions{})
	if !apierrors.IsAlreadyExists(err) && gerr != nil {
		r.record(e, Failed, createFailure(e, err))
		return
	}
	r.exists(ctx, ri, e, cur, gerr)
}

// restored records an object created or updated as o.
func (r *run) restored(e *entry, o *unstructured.Unstructured, a Action) {
	r.setUID(e.oldUID, o.GetUID())
	if len(e.later) > 0 {
		r.mu.Lock()
		r.linkLater = append(r.linkLater, e)
		r.mu.Unlock()
	}
	r.record(e, a, "")
}

func (r *run) dryRunOne(ctx context.Context, ri dynamic.ResourceInterface, e *entry) {
	cur, err := ri.Get(ctx, e.obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err != nil && r.crdRestored(e.key.GVR)):
		r.checkNodePorts(ctx, e)
		r.record(e, WouldCreate, "")
	case err != nil:
		r.record(e, Failed, err.Error())
	case beingDeleted(cur) != "":
		r.record(e, Failed, beingDeleted(cur))
	case r.cfg.Policy == PolicyUpdate:
		r.checkNodePorts(ctx, e)
		r.record(e, WouldUpdate, "exists")
	default:
		r.record(e, Skipped, "exists")
	}
}

func (r *run) setUID(old, now types.UID) {
	if old == "" {
		return
	}
	r.mu.Lock()
	r.newUID[old] = now
	r.mu.Unlock()
}

func (r *run) uidOf(old types.UID) (types.UID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	uid, ok := r.newUID[old]
	return uid, ok
}

// create retries briefly on NotFound for custom resources: a CRD can be Established a moment
// before every apiserver handler serves it.
func (r *run) create(ctx context.Context, ri dynamic.ResourceInterface, gvr schema.GroupVersionResource, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := ri.Create(ctx, o, metav1.CreateOptions{})
		if err == nil || !apierrors.IsNotFound(err) || time.Now().After(deadline) || r.served[gvr] || !r.crdRestored(gvr) {
			return out, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (r *run) client(gvr schema.GroupVersionResource, ns string) dynamic.ResourceInterface {
	if ns == "" {
		return r.d.Dynamic.Resource(gvr)
	}
	return r.d.Dynamic.Resource(gvr).Namespace(ns)
}

func resourceString(gvr schema.GroupVersionResource) string {
	if gvr.Group == "" {
		return gvr.Version + "/" + gvr.Resource
	}
	return gvr.Group + "/" + gvr.Version + " " + gvr.Resource
}
