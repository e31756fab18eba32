package restore

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func workloadEntry(kind, name string, spec map[string]any, skip string) *entry {
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": kind, "metadata": map[string]any{"name": name, "namespace": "shop"}, "spec": spec}}
	return &entry{obj: o, skip: skip}
}

func claimVolume(claim string) []any {
	return []any{map[string]any{"name": "d", "persistentVolumeClaim": map[string]any{"claimName": claim}}}
}

// The restore mover of a claim is told what the restored workload that mounts it demands of its
// node: a Deployment's nodeSelector and tolerations, a StatefulSet's replicas spread by a
// required anti-affinity (its volumeClaimTemplates' claims); nothing for a workload not restored.
func TestWorkloadFor(t *testing.T) {
	deploy := workloadEntry("Deployment", "db", map[string]any{"template": map[string]any{"spec": map[string]any{
		"nodeSelector": map[string]any{"kubernetes.io/hostname": "node-c"},
		"tolerations":  []any{map[string]any{"key": "dedicated", "operator": "Exists"}},
		"volumes":      claimVolume("db"),
	}}}, "")
	sts := workloadEntry("StatefulSet", "kv", map[string]any{
		"volumeClaimTemplates": []any{map[string]any{"metadata": map[string]any{"name": "data"}}},
		"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "kv"}}, "spec": map[string]any{
			"affinity": map[string]any{"podAntiAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": []any{
				map[string]any{"topologyKey": "kubernetes.io/hostname", "labelSelector": map[string]any{"matchLabels": map[string]any{"app": "kv"}}},
			}}},
		}},
	}, "")
	skipped := workloadEntry("Deployment", "old", map[string]any{"template": map[string]any{"spec": map[string]any{
		"nodeSelector": map[string]any{"x": "y"}, "volumes": claimVolume("old")}}}, "excluded")
	r := &run{entries: []*entry{skipped, deploy, sts}}

	w := r.workloadFor("shop", "db")
	if w == nil || w.Name != "Deployment shop/db" || w.NodeSelector["kubernetes.io/hostname"] != "node-c" || len(w.Tolerations) != 1 || w.Spread != "" {
		t.Errorf("db: %+v", w)
	}
	for _, claim := range []string{"data-kv-0", "data-kv-1"} {
		if w := r.workloadFor("shop", claim); w == nil || w.Name != "StatefulSet shop/kv" || w.Spread != "shop/kv" || w.SpreadKey != "kubernetes.io/hostname" {
			t.Errorf("%s: %+v", claim, w)
		}
	}
	for _, claim := range []string{"old", "data-kv-x", "data-kv", "data-other-0"} {
		if w := r.workloadFor("shop", claim); w != nil {
			t.Errorf("%s: %+v, want none", claim, w)
		}
	}
	if w := r.workloadFor("elsewhere", "db"); w != nil {
		t.Errorf("claim of another namespace: %+v", w)
	}
}
