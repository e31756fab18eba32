package restore

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// templatePaths are where the workloads this restore brings back keep their pod spec.
var templatePaths = map[string][]string{
	"Pod":         nil,
	"Deployment":  {"spec", "template"},
	"ReplicaSet":  {"spec", "template"},
	"StatefulSet": {"spec", "template"},
	"DaemonSet":   {"spec", "template"},
	"Job":         {"spec", "template"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template"},
}

// podTemplate reads a workload's pod template (a Pod: its own metadata and spec); false for
// other kinds or a template that does not parse.
func podTemplate(o *unstructured.Unstructured) (corev1.PodTemplateSpec, bool) {
	var tpl corev1.PodTemplateSpec
	path, ok := templatePaths[o.GetKind()]
	if !ok {
		return tpl, false
	}
	m := o.Object
	if path != nil {
		if m, ok, _ = unstructured.NestedMap(o.Object, path...); !ok {
			return tpl, false
		}
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &tpl); err != nil {
		return tpl, false
	}
	return tpl, true
}

// workloadFor is what the first restored workload that mounts claim (namespace/name as
// restored) demands of its node, nil when no restored workload mounts it. A StatefulSet's
// claims are its volumeClaimTemplates' (<template>-<set>-<ordinal>).
func (r *run) workloadFor(ns, claim string) *volumes.Workload {
	for _, e := range r.entries {
		if e.skip != "" || e.obj.GetNamespace() != ns {
			continue
		}
		tpl, ok := podTemplate(e.obj)
		if !ok || !(mounts(tpl.Spec, claim) || setClaim(e.obj, claim)) {
			continue
		}
		w := &volumes.Workload{Name: fmt.Sprintf("%s %s/%s", e.obj.GetKind(), ns, e.obj.GetName()), NodeSelector: tpl.Spec.NodeSelector, Tolerations: tpl.Spec.Tolerations}
		if a := tpl.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			w.Terms = a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		}
		if key := spreadKey(tpl); key != "" && e.obj.GetKind() == "StatefulSet" {
			w.Spread, w.SpreadKey = ns+"/"+e.obj.GetName(), key
		}
		return w
	}
	return nil
}

func mounts(spec corev1.PodSpec, claim string) bool {
	for _, v := range spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

var ordinal = regexp.MustCompile(`^[0-9]{1,9}$`)

// setClaim says whether claim is one of a StatefulSet's volumeClaimTemplates' claims.
func setClaim(o *unstructured.Unstructured, claim string) bool {
	if o.GetKind() != "StatefulSet" {
		return false
	}
	tpls, _, _ := unstructured.NestedSlice(o.Object, "spec", "volumeClaimTemplates")
	for _, t := range tpls {
		m, ok := t.(map[string]any)
		if !ok {
			continue
		}
		name, _, _ := unstructured.NestedString(m, "metadata", "name")
		prefix := name + "-" + o.GetName() + "-"
		if name != "" && strings.HasPrefix(claim, prefix) && ordinal.MatchString(strings.TrimPrefix(claim, prefix)) {
			return true
		}
	}
	return false
}

// spreadKey is the topology key of a required pod anti-affinity that keeps a template's pods
// apart from each other ("" if none).
func spreadKey(tpl corev1.PodTemplateSpec) string {
	a := tpl.Spec.Affinity
	if a == nil || a.PodAntiAffinity == nil {
		return ""
	}
	for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
		sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
		if err == nil && term.LabelSelector != nil && !sel.Empty() && sel.Matches(labels.Set(tpl.Labels)) && term.TopologyKey != "" {
			return term.TopologyKey
		}
	}
	return ""
}
