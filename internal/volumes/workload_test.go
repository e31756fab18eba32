package volumes

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func labNode(name, zone string, taint bool, cordoned bool) *corev1.Node {
	n := readyNode(name)
	n.Labels = map[string]string{corev1.LabelHostname: name, corev1.LabelTopologyZone: zone}
	if taint {
		n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	}
	n.Spec.Unschedulable = cordoned
	return n
}

// A restore mover runs where the workload that will use its claim can run: its nodeSelector and
// tolerations, a node of its own per replica of a spread StatefulSet, and a failure naming both
// when the claim's volume and the workload share no schedulable node.
func TestPlaceForWorkload(t *testing.T) {
	ctx := context.Background()
	unbound := func(name string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}}
	}
	kube := fake.NewSimpleClientset(labNode("a", "zone-a", false, false), labNode("b", "zone-b", false, false), labNode("c", "zone-b", true, false),
		labNode("d", "zone-b", false, true), pvOn("pv-a", corev1.LabelTopologyZone, "zone-a"))
	e := &engine{d: Deps{Kube: kube}}
	p := &nodePicker{}
	tolerate := []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}}
	onC := &Workload{Name: "Deployment app/db", NodeSelector: map[string]string{corev1.LabelHostname: "c"}, Tolerations: tolerate}
	place, err := e.placeForWorkload(ctx, p, onC, unbound("db"))
	if err != nil || describePlacement(place.affinity(), place.Tolerations) != corev1.LabelHostname+" In [c]; tolerates dedicated" {
		t.Errorf("pinned Deployment: %+v, %v", place, err)
	}
	untolerated := &Workload{Name: "Deployment app/web", NodeSelector: map[string]string{corev1.LabelHostname: "c"}}
	if _, err := e.placeForWorkload(ctx, p, untolerated, unbound("web")); err == nil || !strings.Contains(err.Error(), "no schedulable node satisfies both Deployment app/web (nodes with kubernetes.io/hostname In c)") {
		t.Errorf("a workload no node takes: %v", err)
	}
	sts := &Workload{Name: "StatefulSet app/kv", Spread: "app/kv", SpreadKey: corev1.LabelHostname}
	var got []string
	for _, claim := range []string{"data-kv-0", "data-kv-1", "data-kv-2"} {
		place, err := e.placeForWorkload(ctx, p, sts, unbound(claim))
		got = append(got, place.Node)
		if claim == "data-kv-2" {
			// c is tainted, d cordoned: two nodes for three replicas.
			if err == nil || !strings.Contains(err.Error(), "no node is left for PVC app/data-kv-2 among a, b") {
				t.Errorf("third replica: %v", err)
			}
		} else if err != nil {
			t.Error(err)
		}
	}
	if got[0] != "a" || got[1] != "b" {
		t.Errorf("replicas placed on %v, want a and b", got)
	}
	bound := unbound("zonal")
	bound.Spec.VolumeName = "pv-a"
	inB := &Workload{Name: "Deployment app/zonal", NodeSelector: map[string]string{corev1.LabelTopologyZone: "zone-b"}}
	if _, err := e.placeForWorkload(ctx, p, inB, bound); err == nil || !strings.Contains(err.Error(), "and the volume of PVC app/zonal (nodes with topology.kubernetes.io/zone In zone-a)") {
		t.Errorf("zonal volume outside the workload's zone: %v", err)
	}
}
