package restore

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// selectEntries marks what is not restored, and why. It reads the objects as backed up (with
// their status), before transform changes them.
func (r *run) selectEntries(entries []*entry, sel labels.Selector) {
	inSet := map[types.UID]*entry{}
	for _, e := range entries {
		ns := e.key.Namespace
		if e.gr == (schema.GroupResource{Resource: "namespaces"}) {
			ns = e.key.Name
		}
		switch {
		case !r.chosen[e.gr]:
			e.skip = "-" // filtered out: not reported
		case ns != "" && !r.cfg.Namespaces.Match(ns):
			e.skip = "-"
		case e.gr != (schema.GroupResource{Resource: "namespaces"}) && !sel.Matches(labels.Set(e.obj.GetLabels())):
			e.skip = "-"
		}
		if e.skip == "" && e.oldUID != "" {
			inSet[e.oldUID] = e
		}
	}
	notRestored := r.decideJobs(entries, inSet)
	r.restoredPVs = map[string]bool{}
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		if ref := leftToController(e); ref != nil && inSet[ref.UID] != nil {
			e.skip, e.note = fmt.Sprintf("left to its controller %s %s", ref.Kind, ref.Name), ""
			continue
		}
		if ref := metav1.GetControllerOfNoCopy(e.obj); ref != nil {
			if job, ok := notRestored[ref.UID]; ok {
				e.skip, e.note = fmt.Sprintf("its Job %s is not restored: %s", ref.Name, job.skip), ""
				continue
			}
		}
		switch e.gr {
		case schema.GroupResource{Resource: "secrets"}:
			if t, _, _ := unstructured.NestedString(e.obj.Object, "type"); t == "kubernetes.io/service-account-token" {
				e.skip = "service account token secrets are issued by the cluster"
			}
		case grPV:
			if p, _, _ := unstructured.NestedString(e.obj.Object, "spec", "persistentVolumeReclaimPolicy"); p != "Retain" {
				e.skip = fmt.Sprintf("reclaim policy %s: its storage was deleted with its claim; the claim gets a new volume", p)
			} else {
				r.restoredPVs[e.key.Name] = true
			}
		case grStorageClass:
			e.skip = r.mappedAway(e)
		}
	}
	r.own.restored = map[types.UID]*entry{}
	for _, e := range entries {
		if e.skip == "" && e.oldUID != "" {
			r.own.restored[e.oldUID] = e
		}
	}
}
