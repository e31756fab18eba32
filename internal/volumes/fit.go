package volumes

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultClassAnnotation marks the StorageClass a claim without storageClassName gets.
const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

// PlannedClaim is a claim a restore is about to create and fill, with the workload that will
// mount it.
type PlannedClaim struct {
	Namespace, Name string
	// StorageClass is the class it is created with: nil for the cluster's default class, ""
	// for none (bound to a volume by name).
	StorageClass *string
	// VolumeName is the PersistentVolume it names (one the restore brought), "" when provisioned.
	VolumeName string
	Workload   *Workload
}

// CheckPlacement says, before any of claims is created, which of them no schedulable node
// (Ready, not cordoned, its taints tolerated) can hold for its workload: the node must satisfy
// the workload's nodeSelector and required node affinity and the claim's volume topology — the
// node affinity of the PersistentVolume it names, else its StorageClass's allowedTopologies.
// The replicas of a spread StatefulSet need a node each (Workload.Spread), taken in claims'
// order as the movers take them. errs[i] is claims[i]'s refusal, naming both, or nil. Facts it may not read (nodes, classes or
// volumes a namespace admin cannot get) refuse nothing: the mover's placement still applies.
func CheckPlacement(ctx context.Context, d Deps, claims []PlannedClaim) ([]error, error) {
	errs := make([]error, len(claims))
	e := &engine{d: d}
	p := &nodePicker{}
	for i, c := range claims {
		if c.Workload == nil {
			continue
		}
		terms, topo, err := e.plannedTopology(ctx, c)
		if err != nil {
			return nil, err
		}
		nodes, err := p.list(ctx, e)
		if apierrors.IsForbidden(err) {
			return errs, nil
		}
		if err != nil {
			return nil, err
		}
		place := Placement{Terms: c.Workload.terms(), Tolerations: c.Workload.Tolerations}
		w, what := c.Workload, describeClaim(c.Namespace, c.Name)
		switch fit := fitNodes(nodes, place, terms); {
		case len(fit) == 0:
			errs[i] = fmt.Errorf("no schedulable node satisfies both %s (%s) and PVC %s (%s): the restored data could not be used, so the claim is not created; label or untaint a node, or map the claim's StorageClass (--storage-class-mapping)",
				w.Name, describeTerms(place.Terms, place.Tolerations), what, topo)
		case w.Spread != "" && c.VolumeName == "" && p.spread(w, fit) == "":
			errs[i] = fmt.Errorf("%s keeps its replicas on different %s, and no schedulable node is left for PVC %s among %s (%s): the claim is not created; add or untaint a node, or scale the StatefulSet down",
				w.Name, w.SpreadKey, what, nodeNames(fit), topo)
		}
	}
	return errs, nil
}

// fitNodes are the nodes that can run a pod placed by place and mount a volume of terms.
func fitNodes(nodes []corev1.Node, place Placement, terms []corev1.NodeSelectorTerm) []corev1.Node {
	var fit []corev1.Node
	for _, n := range nodes {
		if nodeTrouble(&n) == "" && tolerates(place.Tolerations, n.Spec.Taints) && matchTerms(&n, place.Terms) && matchTerms(&n, terms) {
			fit = append(fit, n)
		}
	}
	return fit
}

// plannedTopology is where a claim about to be created can be mounted, and that said for
// messages: the node affinity of the PersistentVolume it names, or the allowedTopologies of its
// StorageClass (nil terms: anywhere, or not known).
func (e *engine) plannedTopology(ctx context.Context, c PlannedClaim) ([]corev1.NodeSelectorTerm, string, error) {
	if c.VolumeName != "" {
		claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, Name: c.Name}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: c.VolumeName}}
		terms, err := e.volumeTerms(ctx, claim)
		return terms, fmt.Sprintf("its PersistentVolume %s: %s", c.VolumeName, describeTerms(terms, nil)), err
	}
	if c.StorageClass != nil && *c.StorageClass == "" {
		return nil, "no StorageClass: any node", nil
	}
	class, err := e.claimClass(ctx, c.StorageClass)
	if err != nil || class == nil {
		return nil, "its StorageClass: any node", err
	}
	var terms []corev1.NodeSelectorTerm
	for _, t := range class.AllowedTopologies {
		var term corev1.NodeSelectorTerm
		for _, x := range t.MatchLabelExpressions {
			term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: x.Key, Operator: corev1.NodeSelectorOpIn, Values: x.Values})
		}
		terms = append(terms, term)
	}
	return terms, fmt.Sprintf("StorageClass %s: %s", class.Name, describeTerms(terms, nil)), nil
}

// claimClass is the StorageClass named, or the default class for nil (nil: none, or not readable).
func (e *engine) claimClass(ctx context.Context, name *string) (*storagev1.StorageClass, error) {
	if name != nil {
		class, err := e.d.Kube.StorageV1().StorageClasses().Get(ctx, *name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			return nil, nil // the claim's own creation or binding says more
		}
		if err != nil {
			return nil, fmt.Errorf("get StorageClass %s to place the restore: %w", *name, err)
		}
		return class, nil
	}
	list, err := e.d.Kube.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list StorageClasses to place the restore: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].Annotations[defaultClassAnnotation] == "true" {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// CheckPlacement implements restore.PlacementChecker.
func (r *Runner) CheckPlacement(ctx context.Context, claims []PlannedClaim) ([]error, error) {
	return CheckPlacement(ctx, r.Deps, claims)
}
