package volumes

import (
	"context"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func readyNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// A mover whose node fails under it ends at once with the node and what to do, never after the
// volume's whole --timeout: the kubelet stopped (NotReady: its pod stays "Running"), or a drain
// evicted the pod.
func TestMoverNodeFails(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(ctx context.Context, kube *fake.Clientset, pod *corev1.Pod) error
		want  string
	}{
		{"kubelet stopped", func(ctx context.Context, kube *fake.Clientset, _ *corev1.Pod) error {
			n := readyNode("node-b")
			n.Status.Conditions[0] = corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionUnknown, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}
			_, err := kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		}, "node node-b is NotReady (NodeStatusUnknown: Kubelet stopped posting node status.): mover pod app/"},
		{"drained", func(ctx context.Context, kube *fake.Clientset, pod *corev1.Pod) error {
			n := readyNode("node-b")
			n.Spec.Unschedulable = true
			if _, err := kube.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
				return err
			}
			pod.DeletionTimestamp = &metav1.Time{Time: time.Now()}
			pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting"}}
			_, err := kube.CoreV1().Pods(pod.Namespace).Update(ctx, pod, metav1.UpdateOptions{})
			return err
		}, "was evicted (EvictionByEvictionAPI: Eviction API: evicting) from node node-b (node node-b is cordoned (unschedulable): drained?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			kube := fake.NewSimpleClientset(readyNode("node-b"))
			go runOnNode(ctx, t, kube, "node-b", tc.fault)
			cfg := testConfig(ModeFS)
			cfg.Timeout = time.Minute
			e := &engine{d: Deps{Kube: kube}, cfg: cfg}
			tk := Task{Backup: "b1", Op: "backup", Namespace: "app", SourceNamespace: "app", PVC: "data", Run: "r0001"}
			start := time.Now()
			_, node, err := e.runMover(ctx, tk, &createdObjects{}, "data", "", Placement{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || node != "node-b" {
				t.Fatalf("node %q, error %v; want node-b and %q", node, err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s, want the failure at once", d)
			}
		})
	}
}

// runOnNode plays the Job controller and the scheduler: the mover Job's pod runs on node, then
// fault happens to it.
func runOnNode(ctx context.Context, t *testing.T, kube *fake.Clientset, node string, fault func(context.Context, *fake.Clientset, *corev1.Pod) error) {
	w, err := kube.BatchV1().Jobs("app").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	ev := <-w.ResultChan()
	j := ev.Object.(*batchv1.Job)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x1", Namespace: j.Namespace, Labels: j.Spec.Template.Labels}, Spec: j.Spec.Template.Spec}
	pod.Spec.NodeName = node
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}
	if pod, err = kube.CoreV1().Pods(j.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Error(err)
		return
	}
	if err := fault(ctx, kube, pod); err != nil {
		t.Error(err)
	}
}
