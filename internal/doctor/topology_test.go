package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// doctor names the nodes no mover can run on, a StorageClass whose topology covers no
// schedulable node, and the drivers whose volumes and snapshots exist on one node only.
func TestCheckTopology(t *testing.T) {
	node := func(name, zone string, cordoned, taint bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"zone": zone, "local/node": name}},
			Spec:   corev1.NodeSpec{Unschedulable: cordoned},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
		if taint {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}}
		}
		return n
	}
	csiNode := func(name string) *storagev1.CSINode {
		return &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{
			{Name: "local.csi", NodeID: name, TopologyKeys: []string{"local/node"}},
			{Name: "zonal.csi", NodeID: name, TopologyKeys: []string{"zone"}},
		}}}
	}
	inC := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "zone-c-disk"}, Provisioner: "zonal.csi",
		AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: "zone", Values: []string{"zone-c"}}}}}}
	inA := inC.DeepCopy()
	inA.Name, inA.AllowedTopologies[0].MatchLabelExpressions[0].Values = "zone-a-disk", []string{"zone-a"}
	d := cluster(t, false, node("a", "zone-a", false, false), node("b", "zone-b", false, true), node("c", "zone-c", true, false),
		csiNode("a"), csiNode("b"), csiNode("c"), inC, inA)
	got := map[string]Result{}
	for _, r := range checkTopology(context.Background(), d, &Config{StorageClasses: []string{"zone-c-disk", "zone-a-disk"}}) {
		got[r.Check] = r
	}
	for check, want := range map[string]struct {
		status Status
		detail string
	}{
		"nodes":                           {Warn, "no mover can run on c: cordoned"},
		topologyCheck + " of zone-c-disk": {Fail, "StorageClass zone-c-disk allows only zone in zone-c, where no schedulable node is"},
		topologyCheck + " of local.csi":   {OK, "node-local: topology key local/node names the node itself on each of its 3 nodes"},
	} {
		if r := got[check]; r.Status != want.status || !strings.Contains(r.Detail, want.detail) {
			t.Errorf("%s: %s %q, want %s %q", check, r.Status, r.Detail, want.status, want.detail)
		}
	}
	for _, check := range []string{topologyCheck + " of zone-a-disk", topologyCheck + " of zonal.csi"} {
		if r, found := got[check]; found {
			t.Errorf("%s: %+v, want no finding", check, r)
		}
	}
}
