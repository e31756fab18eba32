package volumes

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// nodeTrouble says why a node cannot run a mover to its end ("" if it can): its kubelet stopped
// reporting (NotReady), or it is cordoned (a drain evicts what runs there).
func nodeTrouble(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			s := fmt.Sprintf("node %s is NotReady (%s", n.Name, c.Reason)
			if c.Message != "" {
				s += ": " + c.Message
			}
			return s + ")"
		}
	}
	if n.Spec.Unschedulable {
		return fmt.Sprintf("node %s is cordoned (unschedulable)", n.Name)
	}
	return ""
}

// watchNode follows the node a mover pod runs on until ctx ends, and calls fail once when the
// node goes NotReady: its pod would otherwise be reported Running until the volume's --timeout.
// A cordon alone does not stop a running mover; the drain that follows evicts its pod
// (evictedError).
func watchNode(ctx context.Context, c kubernetes.Interface, node, pod string, fail func(error)) {
	lw := kube.ListWatch(c.CoreV1().Nodes(), c, kube.Named(node))
	_ = kube.Until(ctx, lw, &corev1.Node{}, nil, func(ev watch.Event) (bool, error) {
		n, ok := ev.Object.(*corev1.Node)
		if !ok || n.Name != node {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			fail(fmt.Errorf("node %s of mover pod %s was deleted from the cluster; run the backup again", node, pod))
			return true, nil
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				fail(fmt.Errorf("%s: mover pod %s cannot finish there; bring the node back (or remove it), then run `kubectl pvbackup cleanup` and the backup or restore again", nodeTrouble(n), pod))
				return true, nil
			}
		}
		return false, nil
	})
}

// evictedError is the reason a mover pod is being deleted while it runs: a drain's eviction
// (the node cordoned), or someone's delete.
func evictedError(ctx context.Context, c kubernetes.Interface, p *corev1.Pod) error {
	why := "was deleted while it ran"
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.DisruptionTarget && cond.Status == corev1.ConditionTrue {
			why = fmt.Sprintf("was evicted (%s: %s)", cond.Reason, cond.Message)
		}
	}
	where := ""
	if p.Spec.NodeName != "" {
		where = " from node " + p.Spec.NodeName
		if n, err := c.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{}); err == nil {
			if tr := nodeTrouble(n); tr != "" {
				where += " (" + tr + ": drained?)"
			}
		}
	}
	return fmt.Errorf("mover pod %s/%s %s%s; the volume was not finished: run it again once the node is back or on another node (an RWO volume in use must follow its pod)", p.Namespace, p.Name, why, where)
}

// nodeWatch follows the nodes of a mover's pods (watchNode) until stop.
type nodeWatch struct {
	ctx      context.Context
	cancel   context.CancelFunc
	kube     kubernetes.Interface
	fail     func(error)
	watching map[string]bool
	wg       sync.WaitGroup
}

func newNodeWatch(ctx context.Context, kube kubernetes.Interface, fail func(error)) *nodeWatch {
	ctx, cancel := context.WithCancel(ctx)
	return &nodeWatch{ctx: ctx, cancel: cancel, kube: kube, fail: fail, watching: map[string]bool{}}
}

// follow starts watching the node of pod p once it has one.
func (w *nodeWatch) follow(p *corev1.Pod) {
	n := p.Spec.NodeName
	if n == "" || w.watching[n] {
		return
	}
	w.watching[n] = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		watchNode(w.ctx, w.kube, n, p.Namespace+"/"+p.Name, w.fail)
	}()
}

// stop ends the watches and waits for them (again: a no-op).
func (w *nodeWatch) stop() {
	w.cancel()
	w.wg.Wait()
}
