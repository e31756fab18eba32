package restore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// betaClassAnnotation names a claim's StorageClass in manifests older than
// spec.storageClassName; many published StatefulSets still use it, and it wins over the field.
const betaClassAnnotation = "volume.beta.kubernetes.io/storage-class"

var (
	grStatefulSet   = schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	grStorageClass  = schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}
	gvrStorageClass = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}
)

// claimMaps returns the parts of o that name a StorageClass the way a claim does (spec and
// annotation): a PVC or PV itself, each volumeClaimTemplate of a StatefulSet.
func claimMaps(gr schema.GroupResource, o *unstructured.Unstructured) []map[string]any {
	switch gr {
	case grPVC, grPV:
		return []map[string]any{o.Object}
	case grStatefulSet:
		tmpls, _, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "volumeClaimTemplates")
		list, _ := tmpls.([]any)
		var out []map[string]any
		for _, t := range list {
			if m, ok := t.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// storageClasses returns the classes o names (each once).
func storageClasses(gr schema.GroupResource, o *unstructured.Unstructured) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range claimMaps(gr, o) {
		for _, c := range []string{classField(m), classAnnotation(m)} {
			if c != "" && !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

func classField(m map[string]any) string {
	s, _, _ := unstructured.NestedString(m, "spec", "storageClassName")
	return s
}

func classAnnotation(m map[string]any) string {
	s, _, _ := unstructured.NestedString(m, "metadata", "annotations", betaClassAnnotation)
	return s
}

// mapStorageClass applies --storage-class-mapping to a PVC, PV or StatefulSet: the spec field
// and the beta annotation, wherever they name a mapped class.
func mapStorageClass(gr schema.GroupResource, o *unstructured.Unstructured, mapping map[string]string) {
	if len(mapping) == 0 {
		return
	}
	for _, m := range claimMaps(gr, o) {
		if to := mapping[classField(m)]; to != "" {
			_ = unstructured.SetNestedField(m, to, "spec", "storageClassName")
		}
		if to := mapping[classAnnotation(m)]; to != "" {
			_ = unstructured.SetNestedField(m, to, "metadata", "annotations", betaClassAnnotation)
		}
	}
}

// mappedAway returns, for a StorageClass of the backup that --storage-class-mapping renames,
// why it is not restored: every restored object that named it names the new class instead.
func (r *run) mappedAway(e *entry) string {
	if e.gr != grStorageClass {
		return ""
	}
	to, ok := r.cfg.StorageClassMapping[e.key.Name]
	if !ok {
		return ""
	}
	return fmt.Sprintf("--storage-class-mapping %s:%s: the restored claims use %s instead", e.key.Name, to, to)
}

// checkClassMapping fails, before anything is created, on a mapping from a class that no
// restored object names (a typo, or the wrong backup) or to a class that neither this cluster
// nor the backup has (claims would stay Pending).
func (r *run) checkClassMapping(ctx context.Context, entries []*entry) error {
	m := r.cfg.StorageClassMapping
	if len(m) == 0 {
		return nil
	}
	used, brought := map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		if e.skip != "" {
			continue
		}
		for _, c := range storageClasses(e.gr, e.obj) {
			used[c] = true
		}
		if e.gr == grStorageClass {
			brought[e.key.Name] = true
		}
	}
	here := map[string]bool{}
	list, err := r.d.Dynamic.Resource(gvrStorageClass).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("--storage-class-mapping: list StorageClasses of this cluster: %w", err)
	}
	for _, sc := range list.Items {
		here[sc.GetName()] = true
	}
	var problems []string
	for _, from := range slices.Sorted(maps.Keys(m)) {
		to := m[from]
		if !used[from] {
			problems = append(problems, fmt.Sprintf("--storage-class-mapping %s:%s: no restored PVC, PV or StatefulSet uses StorageClass %q (they use: %s)", from, to, from, listOrNone(used)))
		}
		if !here[to] && !brought[to] {
			problems = append(problems, fmt.Sprintf("--storage-class-mapping %s:%s: StorageClass %q does not exist in this cluster and the backup does not bring it (this cluster has: %s)", from, to, to, listOrNone(here)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s; nothing was restored", strings.Join(problems, "; "))
	}
	return nil
}

func listOrNone(set map[string]bool) string {
	if len(set) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(maps.Keys(set)), ", ")
}
