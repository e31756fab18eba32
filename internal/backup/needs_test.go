package backup

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// TestNeedsStorageClasses: the classes a selected claim names by the beta annotation, and those
// of StatefulSet volumeClaimTemplates, are taken with the selection, as spec.storageClassName is.
func TestNeedsStorageClasses(t *testing.T) {
	b := &run{needs: map[schema.GroupResource]map[string]bool{}, crds: map[string]bool{}}
	pvc := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "data-db-0",
		"annotations": map[string]any{"volume.beta.kubernetes.io/storage-class": "beta-class"}}}}
	sts := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "db"}, "spec": map[string]any{
		"volumeClaimTemplates": []any{
			map[string]any{"metadata": map[string]any{"name": "data", "annotations": map[string]any{"volume.beta.kubernetes.io/storage-class": "beta-class"}}},
			map[string]any{"metadata": map[string]any{"name": "logs"}, "spec": map[string]any{"storageClassName": "template-class"}},
		}}}}
	b.noteNeeds(selection.Resource{GVR: schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}}, pvc)
	b.noteNeeds(selection.Resource{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}}, sts)
	if want := map[string]bool{"beta-class": true, "template-class": true}; !reflect.DeepEqual(b.needs[grSC], want) {
		t.Fatalf("needed classes %v, want %v", b.needs[grSC], want)
	}
}
