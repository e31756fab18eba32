package volumes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Placement is where a mover may run (docs/volumes.md, "Where each mover runs").
type Placement struct {
	// Node pins the mover to one node: beside the running pod that mounts its claim, or the node
	// chosen for a claim that binds on its first consumer's node.
	Node string
	// Terms are node selector terms of which the mover's node must match one: the node affinity
	// of the volume it mounts or snapshots, or of the workload that will use the claim.
	Terms []corev1.NodeSelectorTerm
	// Tolerations let it onto the tainted nodes of the pod or workload it follows.
	Tolerations []corev1.Toleration
}

// affinity is the mover pod's node affinity (nil: anywhere).
func (p Placement) affinity() *corev1.Affinity {
	if p.Node == "" && len(p.Terms) == 0 {
		return nil
	}
	terms := make([]corev1.NodeSelectorTerm, 0, len(p.Terms))
	for _, t := range p.Terms {
		terms = append(terms, *t.DeepCopy())
	}
	if len(terms) == 0 {
		terms = []corev1.NodeSelectorTerm{{}}
	}
	if p.Node != "" {
		for i := range terms {
			terms[i].MatchFields = append(terms[i].MatchFields, corev1.NodeSelectorRequirement{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{p.Node}})
		}
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
}

// volumeTerms are the node affinity terms of the PersistentVolume bound to claim: the nodes
// (a zone's, or the one node of a local volume) where it, and its snapshots' copies made by a
// driver that cannot move data between nodes, can be mounted. None for an unbound claim or a
// volume reachable from everywhere.
func (e *engine) volumeTerms(ctx context.Context, claim *corev1.PersistentVolumeClaim) ([]corev1.NodeSelectorTerm, error) {
	if claim == nil || claim.Spec.VolumeName == "" {
		return nil, nil
	}
	pv, err := e.d.Kube.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // as in ReadFacts: the claim's own errors say more
	}
	if apierrors.IsForbidden(err) {
		// A namespace admin may not read PVs (cluster-scoped). The scheduler still honours the
		// bound volume's node affinity for the mover's pod; only the early check is lost.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get PersistentVolume %s of PVC %s: %w", claim.Spec.VolumeName, describeClaim(claim.Namespace, claim.Name), err)
	}
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return nil, nil
	}
	return pv.Spec.NodeAffinity.Required.NodeSelectorTerms, nil
}

// placeBackup is where the mover of a claim's backup runs. In fs mode it mounts the live claim:
// beside the pods that mount it when only one node can (beside), else where its volume's node
// affinity allows. In snapshot-move mode it mounts a claim made from the snapshot, which a
// node-local driver can make only where the volume is: the volume's node affinity again, with
// the tolerations of the pods that use it (their node may be tainted).
func (e *engine) placeBackup(ctx context.Context, mode Mode, claim *corev1.PersistentVolumeClaim, users []corev1.Pod) (Placement, error) {
	var p Placement
	if mode == ModeFS {
		node, tolerations, err := beside(users, claim)
		if err != nil {
			return p, fmt.Errorf("%w; use --volumes=snapshot-move (annotate the PVC %s=snapshot-move) or stop the pod", err, AnnotationMode)
		}
		p.Node, p.Tolerations = node, tolerations
	}
	terms, err := e.volumeTerms(ctx, claim)
	if err != nil {
		return p, err
	}
	p.Terms = terms
	if p.Tolerations == nil && len(users) > 0 {
		p.Tolerations = users[0].Spec.Tolerations
	}
	return p, nil
}
