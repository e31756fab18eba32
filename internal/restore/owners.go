package restore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// builtinControllers are Kubernetes' own controllers that recreate, from their own spec, the
// objects they own: a restored Deployment makes its ReplicaSets again, so restoring those too
// would leave two. Everything else owned by something — a ConfigMap, Secret or claim owned by a
// custom resource, whose operator keeps state in it and may not even run yet — is restored,
// with its owner references pointed at the restored owners. Claims are in no list: their data
// is restored whoever owns them (a StatefulSet's claims with a retention policy, say).
var builtinControllers = map[schema.GroupKind][]schema.GroupResource{
	{Group: "apps", Kind: "Deployment"}:  {{Group: "apps", Resource: "replicasets"}},
	{Group: "apps", Kind: "ReplicaSet"}:  {grPod},
	{Group: "apps", Kind: "StatefulSet"}: {grPod, {Group: "apps", Resource: "controllerrevisions"}},
	{Group: "apps", Kind: "DaemonSet"}:   {grPod, {Group: "apps", Resource: "controllerrevisions"}},
	{Group: "batch", Kind: "Job"}:        {grPod},
	{Group: "batch", Kind: "CronJob"}:    {grJob},
	{Kind: "ReplicationController"}:      {grPod},
	{Kind: "Service"}:                    {{Group: "discovery.k8s.io", Resource: "endpointslices"}},
}

// leftToController returns the controller reference of e when a built-in controller that
// recreates e owns it (nil otherwise).
func leftToController(e *entry) *metav1.OwnerReference {
	ref := metav1.GetControllerOfNoCopy(e.obj)
	if ref == nil {
		return nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil
	}
	for _, gr := range builtinControllers[schema.GroupKind{Group: gv.Group, Kind: ref.Kind}] {
		if gr == e.gr {
			return ref
		}
	}
	return nil
}

// owners is what the restore knows about the owners of the objects it creates.
type owners struct {
	// restored are the objects of the backup that this restore creates, by their old uid.
	restored map[types.UID]*entry
	// kinds resolves an owner reference's apiVersion and kind to its resource, to find an owner
	// that is not restored but exists in the cluster.
	kinds map[schema.GroupVersionKind]schemaResource
}

type schemaResource struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

// ownerRefs returns e's owner references (e.owners, as backed up) as they can be set when e is
// created: those whose owner is restored already point at its new uid, those whose owner is
// restored later are returned apart (later, with the old uids) for linkOwners, and those whose
// owner is not restored point at the object of that name the cluster has, or are dropped (a
// reference to a uid that does not exist makes the garbage collector delete the object) with a
// note.
func (r *run) ownerRefs(ctx context.Context, e *entry) (refs, later []metav1.OwnerReference) {
	for _, ref := range e.owners {
		if o, ok := r.own.restored[ref.UID]; ok && !o.applied() {
			later = append(later, ref)
			continue
		}
		if ref, ok := r.resolve(ctx, e, ref); ok {
			refs = append(refs, ref)
		}
	}
	return refs, later
}

// resolve points ref at its owner's uid in this cluster: the restored owner's, or the object of
// its name that is there; false (and a note) when there is none.
func (r *run) resolve(ctx context.Context, e *entry, ref metav1.OwnerReference) (metav1.OwnerReference, bool) {
	if uid, ok := r.uidOf(ref.UID); ok {
		ref.UID = uid
		return ref, true
	}
	if uid, ok := r.existingOwner(ctx, e, ref); ok {
		ref.UID = uid
		return ref, true
	}
	e.addNote(fmt.Sprintf("owner reference to %s %s dropped: it is neither restored nor in the cluster", ref.Kind, ref.Name))
	return ref, false
}

// existingOwner finds the owner ref names in the cluster, in e's (mapped) namespace when the
// owner's kind is namespaced.
func (r *run) existingOwner(ctx context.Context, e *entry, ref metav1.OwnerReference) (types.UID, bool) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", false
	}
	res, ok := r.own.kinds[gv.WithKind(ref.Kind)]
	if !ok {
		return "", false
	}
	ns := ""
	if res.namespaced {
		if ns = e.obj.GetNamespace(); ns == "" {
			return "", false // a cluster-scoped object cannot have a namespaced owner
		}
	}
	o, err := r.client(res.gvr, ns).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return "", false
	}
	return o.GetUID(), true
}

// linkOwners sets, once every phase is done, the owner references of the objects whose owners
// were restored after them (a claim owned by a custom resource: claims are filled before the
// resources an operator acts on exist). An object whose references cannot be set is failed:
// without them its operator may not adopt it, and deleting the owner would leave it behind.
func (r *run) linkOwners(ctx context.Context) {
	for _, e := range r.linkLater {
		refs := e.obj.GetOwnerReferences() // those set when it was created
		added := false
		for _, ref := range e.later {
			if ref, ok := r.resolve(ctx, e, ref); ok {
				refs, added = append(refs, ref), true
			}
		}
		it := &r.res.Items[e.item]
		if it.Action == Created || it.Action == Updated {
			it.Reason = e.note // with the notes of references dropped now
		}
		if !added {
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"ownerReferences": refs}})
		_, err := r.client(e.key.GVR, e.obj.GetNamespace()).Patch(ctx, e.obj.GetName(), types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			it.Reason = strings.TrimPrefix(e.note+"; ", "; ") + fmt.Sprintf("%s, but its owner references (%s) could not be set: %s", it.Action, ownerNames(refs), reason(err))
			r.res.Summary[it.Action]--
			r.res.Summary[Failed]++
			it.Action = Failed
		}
	}
}

func ownerNames(refs []metav1.OwnerReference) string {
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Kind + " " + ref.Name
	}
	return strings.Join(names, ", ")
}
