package volumes

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// Before a restore creates a claim it fills for a workload, the claim is refused when no
// schedulable node satisfies both the workload and the claim's volume topology — the node
// affinity of the PersistentVolume it names, else its StorageClass's allowedTopologies (the
// default class when it names none) — and the refusal names both.
func TestCheckPlacement(t *testing.T) {
	ctx := context.Background()
	zonalA := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "zonal-a"}, Provisioner: "zonal.csi",
		AllowedTopologies: []corev1.TopologySelectorTerm{{MatchLabelExpressions: []corev1.TopologySelectorLabelRequirement{{Key: corev1.LabelTopologyZone, Values: []string{"zone-a"}}}}}}
	std := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "std"}, Provisioner: "dir.csi"}
	defaultStd := std.DeepCopy()
	defaultStd.Annotations = map[string]string{defaultClassAnnotation: "true"}
	defaultZonal := zonalA.DeepCopy()
	defaultZonal.Name, defaultZonal.Annotations = "default-zonal", map[string]string{defaultClassAnnotation: "true"}
	nodes := []*corev1.Node{labNode("a", "zone-a", false, false), labNode("b", "zone-b", false, false), labNode("c", "zone-b", true, false), labNode("d", "zone-b", false, true)}
	pinned := func(node string, tolerate bool) *Workload {
		w := &Workload{Name: "Deployment app/" + node, NodeSelector: map[string]string{corev1.LabelHostname: node}}
		if tolerate {
			w.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
		}
		return w
	}
	for _, tc := range []struct {
		name    string
		class   *storagev1.StorageClass // the cluster's default class (std when nil)
		claim   PlannedClaim
		refused string // "" when the claim may be created
	}{
		{"zonal class, workload in its zone", nil, PlannedClaim{StorageClass: ptr.To("zonal-a"), Workload: pinned("a", false)}, ""},
		{"zonal class, workload in another zone", nil, PlannedClaim{StorageClass: ptr.To("zonal-a"), Workload: pinned("c", true)},
			"no schedulable node satisfies both Deployment app/c (nodes with kubernetes.io/hostname In c, 1 toleration) and PVC app/db (StorageClass zonal-a: nodes with topology.kubernetes.io/zone In zone-a)"},
		{"workload on a tainted node it does not tolerate", nil, PlannedClaim{StorageClass: ptr.To("std"), Workload: pinned("c", false)},
			"no schedulable node satisfies both Deployment app/c (nodes with kubernetes.io/hostname In c) and PVC app/db (StorageClass std: any node)"},
		{"workload on a cordoned node", nil, PlannedClaim{StorageClass: ptr.To("std"), Workload: pinned("d", false)}, "Deployment app/d (nodes with kubernetes.io/hostname In d)"},
		{"the default class's topology", defaultZonal, PlannedClaim{Workload: pinned("b", false)}, "PVC app/db (StorageClass default-zonal: nodes with topology.kubernetes.io/zone In zone-a)"},
		{"no class: bound by name, anywhere", defaultZonal, PlannedClaim{StorageClass: ptr.To(""), Workload: pinned("b", false)}, ""},
		{"a restored volume's node affinity", nil, PlannedClaim{StorageClass: ptr.To("std"), VolumeName: "pv-a", Workload: pinned("b", false)},
			"PVC app/db (its PersistentVolume pv-a: nodes with topology.kubernetes.io/zone In zone-a)"},
		{"a class this cluster lacks", nil, PlannedClaim{StorageClass: ptr.To("gone"), Workload: pinned("b", false)}, ""},
		{"no workload", nil, PlannedClaim{StorageClass: ptr.To("zonal-a")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := []runtime.Object{zonalA, pvOn("pv-a", corev1.LabelTopologyZone, "zone-a")}
			if tc.class != nil {
				objs = append(objs, std, tc.class)
			} else {
				objs = append(objs, defaultStd)
			}
			for _, n := range nodes {
				objs = append(objs, n)
			}
			kube := fake.NewSimpleClientset(objs...)
			claim := tc.claim
			claim.Namespace, claim.Name = "app", "db"
			errs, err := CheckPlacement(ctx, Deps{Kube: kube}, []PlannedClaim{claim})
			if err != nil || len(errs) != 1 {
				t.Fatalf("%v, %v", errs, err)
			}
			switch {
			case tc.refused == "" && errs[0] != nil:
				t.Errorf("refused: %v", errs[0])
			case tc.refused != "" && (errs[0] == nil || !strings.Contains(errs[0].Error(), tc.refused)):
				t.Errorf("got %v\nwant it to say %q", errs[0], tc.refused)
			}
		})
	}
	t.Run("a spread StatefulSet with more replicas than nodes", func(t *testing.T) {
		objs := []runtime.Object{defaultStd}
		for _, n := range nodes {
			objs = append(objs, n)
		}
		sts := &Workload{Name: "StatefulSet app/kv", Spread: "app/kv", SpreadKey: corev1.LabelHostname}
		var claims []PlannedClaim
		for _, name := range []string{"data-kv-0", "data-kv-1", "data-kv-2"} {
			claims = append(claims, PlannedClaim{Namespace: "app", Name: name, Workload: sts})
		}
		errs, err := CheckPlacement(ctx, Deps{Kube: fake.NewSimpleClientset(objs...)}, claims)
		// c is tainted, d cordoned: two nodes for three replicas.
		const want = "StatefulSet app/kv keeps its replicas on different kubernetes.io/hostname, and no schedulable node is left for PVC app/data-kv-2 among a, b"
		if err != nil || errs[0] != nil || errs[1] != nil || errs[2] == nil || !strings.Contains(errs[2].Error(), want) {
			t.Errorf("%v, %v; want the third refused saying %q", errs, err, want)
		}
	})
}
