package restore

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
)

// SanitizeOptions are the choices sanitising depends on.
type SanitizeOptions struct {
	PreserveNodePorts bool
	// RestoredPVs names the PersistentVolumes this restore creates; a PVC keeps its volumeName
	// only when its PV is among them.
	RestoredPVs map[string]bool
}

var (
	grService = schema.GroupResource{Resource: "services"}
	grPV      = schema.GroupResource{Resource: "persistentvolumes"}
	grPVC     = schema.GroupResource{Resource: "persistentvolumeclaims"}
	grPod     = schema.GroupResource{Resource: "pods"}
	grJob     = schema.GroupResource{Group: "batch", Resource: "jobs"}
)

// pvcAnnotations are written by the PV controller and the scheduler for one binding; a
// restored claim gets new ones.
var pvcAnnotations = []string{
	"pv.kubernetes.io/bind-completed",
	"pv.kubernetes.io/bound-by-controller",
	"volume.kubernetes.io/selected-node",
	"volume.beta.kubernetes.io/storage-provisioner",
	"volume.kubernetes.io/storage-provisioner",
}

// jobLabels tie a Job's pods to the old Job's uid; the apiserver sets new ones.
var jobLabels = []string{"controller-uid", "batch.kubernetes.io/controller-uid"}

// Sanitize removes from o what belongs to the cluster it was backed up from rather than to
// the application: identity, server-set fields, status, allocated IPs and ports, bindings.
// Owner references are handled by the restore, which knows which owners it creates.
func Sanitize(gr schema.GroupResource, o *unstructured.Unstructured, opts SanitizeOptions) {
	meta := o.Object["metadata"].(map[string]any)
	for _, f := range []string{"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"} {
		delete(meta, f)
	}
	delete(o.Object, "status")

	switch gr {
	case grService:
		spec, _ := o.Object["spec"].(map[string]any)
		if spec == nil {
			break
		}
		if ip, _ := spec["clusterIP"].(string); ip != "None" {
			delete(spec, "clusterIP")
			delete(spec, "clusterIPs")
		}
		delete(spec, "healthCheckNodePort")
		if !opts.PreserveNodePorts {
			ports, _ := spec["ports"].([]any)
			for _, p := range ports {
				if pm, ok := p.(map[string]any); ok {
					delete(pm, "nodePort")
				}
			}
		}
	case grPV:
		unstructured.RemoveNestedField(o.Object, "spec", "claimRef")
	case grPVC:
		if v, _, _ := unstructured.NestedString(o.Object, "spec", "volumeName"); v != "" && !opts.RestoredPVs[v] {
			unstructured.RemoveNestedField(o.Object, "spec", "volumeName")
		}
		removeAnnotations(o, pvcAnnotations)
	case grPod:
		// The node it ran on may not exist here; the scheduler picks one.
		unstructured.RemoveNestedField(o.Object, "spec", "nodeName")
	case grJob:
		if manual, _, _ := unstructured.NestedBool(o.Object, "spec", "manualSelector"); !manual {
			unstructured.RemoveNestedField(o.Object, "spec", "selector")
			// The Job's own labels were defaulted from its template's, old uid included.
			for _, l := range jobLabels {
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "labels", l)
				unstructured.RemoveNestedField(o.Object, "metadata", "labels", l)
			}
		}
	}
}

func removeAnnotations(o *unstructured.Unstructured, keys []string) {
	a := o.GetAnnotations()
	if a == nil {
		return
	}
	for _, k := range keys {
		delete(a, k)
	}
	if len(a) == 0 {
		a = nil
	}
	o.SetAnnotations(a)
}

// MapNamespace moves o into the mapped namespace, with the references that name namespaces:
// ServiceAccount subjects of (Cluster)RoleBindings.
func MapNamespace(gr schema.GroupResource, o *unstructured.Unstructured, m mapping.Map) {
	if len(m) == 0 {
		return
	}
	if ns := o.GetNamespace(); ns != "" {
		o.SetNamespace(m.Lookup(ns))
	}
	if gr == (schema.GroupResource{Resource: "namespaces"}) {
		o.SetName(m.Lookup(o.GetName()))
	}
	if gr.Group == "rbac.authorization.k8s.io" && strings.HasSuffix(gr.Resource, "rolebindings") {
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subjects {
			sm, ok := s.(map[string]any)
			if !ok {
				continue
			}
			if ns, _ := sm["namespace"].(string); ns != "" {
				sm["namespace"] = m.Lookup(ns)
			}
		}
		if subjects != nil {
			_ = unstructured.SetNestedSlice(o.Object, subjects, "subjects")
		}
	}
}
