package volumes

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
)

func node(name, arch string, ready bool) *corev1.Node {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
}

// kubelet plays the nodes for CheckPull's pods: each ends with the container state state(pod).
func kubelet(ctx context.Context, t *testing.T, kube *fake.Clientset, state func(*corev1.Pod) corev1.ContainerState) {
	w, err := kube.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, kube: kube}
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			p := ev.Object.(*corev1.Pod).DeepCopy()
			p.Spec.NodeName = "node-" + p.Spec.NodeSelector[corev1.LabelArchStable]
			if _, err := kube.CoreV1().Pods(p.Namespace).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
				continue
			}
			cs := state(p)
			phase := corev1.PodPending
			if cs.Terminated != nil {
				phase = corev1.PodSucceeded
			}
			p.Status = corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName, State: cs}}}
			s.resyncPod(ctx, p)
		}
	}()
}

// TestCheckPull: one pod per architecture of the Ready linux nodes, made like a mover pod (image,
// pull Secret copy, non-root) and running the image's `version`; pods and copies are gone after.
func TestCheckPull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kube := fake.NewSimpleClientset(node("a", "amd64", true), node("b", "arm64", true), node("c", "s390x", false), userPullSecret(corev1.SecretTypeDockerConfigJson))
	kubelet(ctx, t, kube, func(*corev1.Pod) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}
	})
	cfg := Config{RunID: "r0001", Timeout: 10 * time.Second, Mover: MoverConfig{Image: "r.example/m:v1", PullSecret: &PullSecretRef{Namespace: "ops", Name: "regcred"}}}
	res, err := CheckPull(ctx, Deps{Kube: kube}, cfg, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Arch != "amd64" || res[1].Arch != "arm64" {
		t.Fatalf("checked %+v; want amd64 and arm64 (not the NotReady s390x node)", res)
	}
	for _, r := range res {
		// The fake clientset's logs are "fake logs".
		if !r.OK || r.Version != "fake logs" || r.Node != "node-"+r.Arch {
			t.Errorf("%+v", r)
		}
	}
	var pods []*corev1.Pod
	for _, a := range kube.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok && a.GetVerb() == "create" && a.GetResource().Resource == "pods" {
			pods = append(pods, c.GetObject().(*corev1.Pod))
		}
	}
	if len(pods) != 2 {
		t.Fatalf("%d pods created", len(pods))
	}
	p := pods[0]
	c := p.Spec.Containers[0]
	if c.Image != "r.example/m:v1" || strings.Join(c.Command, " ") != image.BinaryPath+" version" || p.Labels[LabelManagedBy] != ManagedBy ||
		len(p.Spec.ImagePullSecrets) != 1 || !*p.Spec.SecurityContext.RunAsNonRoot || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("check pod: %+v", p.Spec)
	}
	left, _ := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	secrets, _ := kube.CoreV1().Secrets("app").List(ctx, metav1.ListOptions{})
	if len(left.Items) != 0 || len(secrets.Items) != 0 {
		t.Errorf("left behind: %d pods, %d secrets in app", len(left.Items), len(secrets.Items))
	}
}

// TestCheckPullRefused: the registry's refusal is the architecture's error, at once.
func TestCheckPullRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kube := fake.NewSimpleClientset(node("a", "amd64", true))
	kubelet(ctx, t, kube, func(*corev1.Pod) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "failed to resolve reference: 401 Unauthorized"}}
	})
	start := time.Now()
	res, err := CheckPull(ctx, Deps{Kube: kube}, Config{Timeout: time.Minute, Mover: MoverConfig{Image: "r.example/m:v1"}}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].OK || !strings.Contains(res[0].Error, "401 Unauthorized") {
		t.Fatalf("%+v; want the 401 named", res)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if left, _ := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); len(left.Items) != 0 {
		t.Errorf("%d pods left", len(left.Items))
	}
}
