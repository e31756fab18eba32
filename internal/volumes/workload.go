package volumes

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// Workload is what the pods that will mount a restored claim demand of their node: the pod
// template's nodeSelector, required node affinity and tolerations. A claim that binds on its
// first consumer's node (WaitForFirstConsumer) binds on its restore mover's, so the mover must
// run where the workload can: else the data lands on a node the application never reaches.
type Workload struct {
	// Name is "Kind namespace/name", for messages.
	Name         string
	NodeSelector map[string]string
	Terms        []corev1.NodeSelectorTerm
	Tolerations  []corev1.Toleration
	// Spread, when set, names the replicas that a required pod anti-affinity keeps on
	// different values of SpreadKey (a StatefulSet's claims, one per replica): each claim of
	// the group gets a node of its own value.
	Spread    string
	SpreadKey string
}

// terms are the workload's node selector terms with its nodeSelector in each.
func (w *Workload) terms() []corev1.NodeSelectorTerm {
	var sel []corev1.NodeSelectorRequirement
	keys := make([]string, 0, len(w.NodeSelector))
	for k := range w.NodeSelector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sel = append(sel, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{w.NodeSelector[k]}})
	}
	if len(w.Terms) == 0 {
		if len(sel) == 0 {
			return nil
		}
		return []corev1.NodeSelectorTerm{{MatchExpressions: sel}}
	}
	out := make([]corev1.NodeSelectorTerm, 0, len(w.Terms))
	for _, t := range w.Terms {
		t = *t.DeepCopy()
		t.MatchExpressions = append(t.MatchExpressions, sel...)
		out = append(out, t)
	}
	return out
}

// nodePicker hands out the nodes of a restore's workloads: it lists the nodes once, and
// remembers the spread values each Spread group has taken.
type nodePicker struct {
	mu    sync.Mutex
	nodes []corev1.Node
	read  bool
	taken map[string]map[string]bool // Spread → values of SpreadKey
}

func (p *nodePicker) list(ctx context.Context, e *engine) ([]corev1.Node, error) {
	if p.read {
		return p.nodes, nil
	}
	list, err := e.d.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes to place the restore movers: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	p.nodes, p.read, p.taken = list.Items, true, map[string]map[string]bool{}
	return p.nodes, nil
}

// placeForWorkload is where the restore mover of a claim runs so that the workload can use
// it: on the workload's nodes that also satisfy the claim's volume (volumeTerms, when it is
// bound already), a node of its own when the workload spreads its replicas. It fails when no
// schedulable node satisfies both, naming both.
func (e *engine) placeForWorkload(ctx context.Context, p *nodePicker, w *Workload, claim *corev1.PersistentVolumeClaim) (Placement, error) {
	vol, err := e.volumeTerms(ctx, claim)
	if err != nil {
		return Placement{}, err
	}
	place := Placement{Terms: w.terms(), Tolerations: w.Tolerations}
	p.mu.Lock()
	defer p.mu.Unlock()
	nodes, err := p.list(ctx, e)
	if err != nil {
		return Placement{}, err
	}
	fit := fitNodes(nodes, place, vol)
	what := describeClaim(claim.Namespace, claim.Name)
	if len(fit) == 0 {
		return Placement{}, fmt.Errorf("no schedulable node satisfies both %s (%s) and the volume of PVC %s (%s): the restored data could not be used; label or untaint a node, or map the claim's StorageClass (--storage-class-mapping)",
			w.Name, describeTerms(place.Terms, w.Tolerations), what, describeTerms(vol, nil))
	}
	if w.Spread == "" || claim.Spec.VolumeName != "" {
		return place, nil
	}
	if place.Node = p.spread(w, fit); place.Node != "" {
		return place, nil
	}
	return Placement{}, fmt.Errorf("%s keeps its replicas on different %s, and no node is left for PVC %s among %s", w.Name, w.SpreadKey, what, nodeNames(fit))
}

// spread takes for a replica of w's Spread group the first of fit whose SpreadKey value no
// replica of the group has yet ("" when none is left). The caller holds p.mu.
func (p *nodePicker) spread(w *Workload, fit []corev1.Node) string {
	taken := p.taken[w.Spread]
	if taken == nil {
		taken = map[string]bool{}
		p.taken[w.Spread] = taken
	}
	for _, n := range fit {
		if v := n.Labels[w.SpreadKey]; !taken[v] {
			taken[v] = true
			return n.Name
		}
	}
	return ""
}

func nodeNames(nodes []corev1.Node) string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return strings.Join(s, ", ")
}

// tolerates says whether tolerations let a pod onto a node with taints (those that keep pods
// off: NoSchedule, NoExecute).
func tolerates(tolerations []corev1.Toleration, taints []corev1.Taint) bool {
	for i := range taints {
		if taints[i].Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		ok := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), &taints[i], false) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// matchTerms says whether a node matches one of terms (all when there are none), as the
// scheduler reads a required node affinity.
func matchTerms(n *corev1.Node, terms []corev1.NodeSelectorTerm) bool {
	if len(terms) == 0 {
		return true
	}
	for _, t := range terms {
		if len(t.MatchExpressions)+len(t.MatchFields) == 0 {
			continue // an empty term matches nothing
		}
		ok := true
		for _, r := range t.MatchExpressions {
			v, has := n.Labels[r.Key]
			ok = ok && matchRequirement(r, v, has)
		}
		for _, r := range t.MatchFields {
			ok = ok && r.Key == "metadata.name" && matchRequirement(r, n.Name, true)
		}
		if ok {
			return true
		}
	}
	return false
}

func matchRequirement(r corev1.NodeSelectorRequirement, v string, has bool) bool {
	in := false
	for _, x := range r.Values {
		in = in || x == v
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && in
	case corev1.NodeSelectorOpNotIn:
		return !has || !in
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		return (r.Operator == corev1.NodeSelectorOpGt && a > b) || (r.Operator == corev1.NodeSelectorOpLt && a < b)
	}
	return false
}

// describeTerms writes node selector terms and tolerations short, for messages.
func describeTerms(terms []corev1.NodeSelectorTerm, tolerations []corev1.Toleration) string {
	var parts []string
	for _, t := range terms {
		var reqs []string
		for _, r := range append(append([]corev1.NodeSelectorRequirement{}, t.MatchExpressions...), t.MatchFields...) {
			reqs = append(reqs, fmt.Sprintf("%s %s %s", r.Key, r.Operator, strings.Join(r.Values, ",")))
		}
		parts = append(parts, strings.Join(reqs, " and "))
	}
	s := "any node"
	if len(parts) > 0 {
		s = "nodes with " + strings.Join(parts, ", or ")
	}
	if len(tolerations) > 0 {
		s += ", " + progress.Plural(len(tolerations), "toleration", "tolerations")
	}
	return s
}
