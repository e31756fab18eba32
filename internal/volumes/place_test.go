package volumes

import (
	"fmt"
	"time"

	"context"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A mover that mounts a claim pods keep using (an in-place dry run reading it, a fill of an
// existing claim, a sync whose workload was not all stopped) runs on the node of the Running
// user when only one node can mount the claim — not on that of a user still Pending elsewhere
// (a rolling update's new pod stuck on Multi-Attach), which would only add a second Multi-Attach.
func TestPlaceRestore(t *testing.T) {
	claim := func(name string, mode corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{mode}}}
	}
	user := func(claim, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-" + claim, Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: node,
			Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Volumes:     []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	// The new pod of a rolling update, scheduled to node-3 and Pending there (Multi-Attach): its
	// name sorts before the Running holder's, so the pod list names it first.
	stuck := user("rwo", "node-3")
	stuck.Name, stuck.Status.Phase = "app-new-rwo", corev1.PodPending
	kube := fake.NewSimpleClientset(claim("rwo", corev1.ReadWriteOnce), stuck, user("rwo", "node-2"), claim("rwx", corev1.ReadWriteMany), user("rwx", "node-2"),
		claim("rwop", corev1.ReadWriteOncePod), user("rwop", "node-3"), claim("idle", corev1.ReadWriteOnce))
	e := &engine{d: Deps{Kube: kube}}
	for _, tc := range []struct {
		pvc      string
		diffOnly bool
		node     string
		err      string
	}{
		{pvc: "rwo", diffOnly: true, node: "node-2"},
		{pvc: "rwo", diffOnly: false, node: "node-2"}, // a fill of the claim in use: where it is attached
		{pvc: "rwx", diffOnly: true},
		{pvc: "idle", diffOnly: true},
		{pvc: "idle", diffOnly: false}, // a sync once the workload is stopped: anywhere
		{pvc: "rwop", diffOnly: true, err: "PVC shop/rwop is ReadWriteOncePod and in use by pod app-rwop"},
	} {
		pods := &podIndex{kube: kube, byNS: map[string][]corev1.Pod{}}
		place, err := e.placeRestore(context.Background(), pods, &nodePicker{}, RestoreItem{Namespace: "shop", PVC: tc.pvc, DiffOnly: tc.diffOnly, RequireEmpty: !tc.diffOnly})
		node, tol := place.Node, place.Tolerations
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.pvc, err, tc.err)
			}
			continue
		}
		if err != nil || node != tc.node || (node != "" && len(tol) != 1) {
			t.Errorf("%s (diff only %v): node %q, tolerations %v, %v; want node %q", tc.pvc, tc.diffOnly, node, tol, err, tc.node)
		}
	}
}

// pvOn is a CSI volume whose node affinity allows the nodes with label key=value.
func pvOn(name, key, value string) *corev1.PersistentVolume {
	pv := csiPV(name, "dir.csi")
	pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: corev1.NodeSelectorOpIn, Values: []string{value}}}},
	}}}
	return pv
}

// A mover lands where its volume (or the claim made from its snapshot) can be mounted: the
// volume's node affinity in both modes, beside the running pod that mounts an RWO claim in fs
// mode, with that pod's tolerations (its node may be tainted).
func TestBackupPlacementFollowsVolume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	user := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0"},
		Spec: corev1.PodSpec{NodeName: "node-c", Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "local"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	const nodeKey, zoneKey = "topology.local/node", "topology.zonal/zone"
	claims := []*corev1.PersistentVolumeClaim{boundClaim("local", "pv-local"), boundClaim("zonal", "pv-zonal"), boundClaim("shared", "pv-shared")}
	for _, mode := range []Mode{ModeSnapshotMove, ModeFS} {
		t.Run(string(mode), func(t *testing.T) {
			s := newSim(t, user, claims[0], claims[1], claims[2], pvOn("pv-local", nodeKey, "node-c"), pvOn("pv-zonal", zoneKey, "zone-b"), csiPV("pv-shared", "dir.csi"))
			s.run(ctx)
			vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(mode), claims)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range vols {
				if v.Status != catalog.VolumeCompleted {
					t.Fatalf("%s: %s %s", v.PVC, v.Status, v.Error)
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			got := map[string]string{}
			for _, j := range s.jobs {
				spec := j.Spec.Template.Spec
				got[j.Labels[LabelSourcePVC]] = describePlacement(spec.Affinity, spec.Tolerations)
			}
			want := map[string]string{
				"local":  nodeKey + " In [node-c]; tolerates dedicated",
				"zonal":  zoneKey + " In [zone-b]",
				"shared": "anywhere",
			}
			if mode == ModeFS {
				want["local"] = nodeKey + " In [node-c], metadata.name In [node-c]; tolerates dedicated"
			}
			for pvc, w := range want {
				if got[pvc] != w {
					t.Errorf("mover of %s: %q, want %q", pvc, got[pvc], w)
				}
			}
		})
	}
}

// describePlacement writes a mover's node affinity and tolerations short.
func describePlacement(a *corev1.Affinity, tol []corev1.Toleration) string {
	if a == nil && len(tol) == 0 {
		return "anywhere"
	}
	var parts []string
	if a != nil {
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			var reqs []string
			for _, r := range append(term.MatchExpressions, term.MatchFields...) {
				reqs = append(reqs, fmt.Sprintf("%s %s %v", r.Key, r.Operator, r.Values))
			}
			parts = append(parts, strings.Join(reqs, ", "))
		}
	}
	s := strings.Join(parts, " | ")
	for _, t := range tol {
		s += "; tolerates " + t.Key
	}
	return s
}
