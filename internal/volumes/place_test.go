package volumes

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A mover that reads a claim its workload keeps using (an in-place dry run) runs on the
// workload's node when only one node can mount the claim.
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
	kube := fake.NewSimpleClientset(claim("rwo", corev1.ReadWriteOnce), user("rwo", "node-2"), claim("rwx", corev1.ReadWriteMany), user("rwx", "node-2"),
		claim("rwop", corev1.ReadWriteOncePod), user("rwop", "node-3"), claim("idle", corev1.ReadWriteOnce))
	e := &engine{d: Deps{Kube: kube}}
	for _, tc := range []struct {
		pvc      string
		diffOnly bool
		node     string
		err      string
	}{
		{pvc: "rwo", diffOnly: true, node: "node-2"},
		{pvc: "rwo", diffOnly: false}, // a sync runs once the workload is stopped: anywhere
		{pvc: "rwx", diffOnly: true},
		{pvc: "idle", diffOnly: true},
		{pvc: "rwop", diffOnly: true, err: "PVC shop/rwop is ReadWriteOncePod and in use by pod app-rwop"},
	} {
		pods := &podIndex{kube: kube, byNS: map[string][]corev1.Pod{}}
		node, tol, err := e.placeRestore(context.Background(), pods, RestoreItem{Namespace: "shop", PVC: tc.pvc, DiffOnly: tc.diffOnly})
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
