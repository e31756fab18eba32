package restore

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// transform turns each object to restore into what is created, in Velero's order: sanitise,
// map the StorageClass, apply the resource modifiers (to the object still in the namespace it
// was backed up from, which is what their namespaces condition names), then map the namespace.
// It changes nothing in the cluster: a modifier that fails fails the restore before anything is
// created.
func (r *run) transform(entries []*entry) error {
	var failed []string
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		Sanitize(e.gr, e.obj, SanitizeOptions{PreserveNodePorts: r.cfg.PreserveNodePorts, RestoredPVs: r.restoredPVs})
		mapStorageClass(e.gr, e.obj, r.cfg.StorageClassMapping)
		if e.suspend {
			_ = unstructured.SetNestedField(e.obj.Object, true, "spec", "suspend")
		}
		changed, err := r.cfg.Modifiers.Apply(e.gr, e.obj)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s %s: %v", e.gr, objectName(e.key.Namespace, e.key.Name), err))
			continue
		}
		if len(changed) > 0 {
			e.addNote("changed by " + ruleList(changed))
		}
		MapNamespace(e.gr, e.obj, r.cfg.NamespaceMapping)
		if e.gr == grPVC {
			r.prepareClaim(e)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("--resource-modifiers: %d of the objects to restore cannot be modified, nothing was restored: %s", len(failed), strings.Join(failed, "; "))
	}
	if idx := r.cfg.Modifiers.Unmatched(); len(idx) > 0 {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("--resource-modifiers: %s matched no restored object (conditions name the namespace an object was backed up from, and core resources without a group: \"persistentvolumeclaims\", not \"persistentvolumeclaims.storage.k8s.io\")", ruleList(idx)))
	}
	return nil
}

func objectName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

func ruleList(idx []int) string {
	parts := make([]string, len(idx))
	for i, x := range idx {
		parts[i] = fmt.Sprintf("resourceModifierRules[%d]", x)
	}
	return strings.Join(parts, ", ")
}
