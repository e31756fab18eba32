package volumes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// OpCheck labels the pods of CheckPull.
const OpCheck = "check"

// PullCheck is how one architecture's nodes did with the mover image.
type PullCheck struct {
	Arch string `json:"arch"`
	Node string `json:"node,omitempty"`
	OK   bool   `json:"ok"`
	// Version is what the image's binary says it is (`kubectl-pvbackup version`).
	Version string  `json:"version,omitempty"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// CheckPull runs in namespace ns, for each architecture of the cluster's Ready, schedulable linux
// nodes, one short-lived pod as a mover pod is made (image, pull policy, service account, pull
// Secret, security context) that runs the image's own `kubectl-pvbackup version`: whether the
// nodes pull the image and can run it. A pull the registry refuses fails at once (ErrImagePull
// with its answer); cfg.Timeout bounds a wait without progress. The pods and the pull Secret's
// copies are deleted afterwards, also when ctx is cancelled.
func CheckPull(ctx context.Context, d Deps, cfg Config, ns string) ([]PullCheck, error) {
	cfg.defaults()
	arches, err := nodeArches(ctx, d)
	if err != nil {
		return nil, err
	}
	e := &engine{d: d, cfg: cfg}
	out := make([]PullCheck, len(arches))
	var wg sync.WaitGroup
	for i, arch := range arches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.checkPull(ctx, Task{Backup: "check-" + cfg.RunID, Op: OpCheck, Namespace: ns, SourceNamespace: ns, PVC: arch, Run: cfg.RunID}, arch)
		}()
	}
	wg.Wait()
	return out, ctx.Err()
}

// nodeArches are the architectures of the Ready, schedulable linux nodes, sorted.
func nodeArches(ctx context.Context, d Deps) ([]string, error) {
	nodes, err := d.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: corev1.LabelOSStable + "=linux"})
	if err != nil {
		return nil, fmt.Errorf("list the cluster's linux nodes: %w", err)
	}
	seen := map[string]bool{}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable || !nodeReady(&n) {
			continue
		}
		if a := n.Labels[corev1.LabelArchStable]; a != "" {
			seen[a] = true
		}
	}
	if len(seen) == 0 {
		return nil, errors.New("no Ready, schedulable linux node to check on")
	}
	var arches []string
	for a := range seen {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	return arches, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// checkPull runs one architecture's pod and removes it.
func (e *engine) checkPull(ctx context.Context, t Task, arch string) PullCheck {
	res := PullCheck{Arch: arch}
	start := time.Now()
	var created createdObjects
	defer func() {
		cctx, cancel := cleanup.Context(ctx, cleanup.Call)
		defer cancel()
		if err := e.d.Kube.CoreV1().Pods(t.Namespace).Delete(cctx, t.name("chk"), metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil && !apierrors.IsNotFound(err) && res.Error == "" {
			res.OK, res.Error = false, fmt.Sprintf("delete pod %s/%s: %v", t.Namespace, t.name("chk"), err)
		}
		if err := e.cleanup(cctx, t, &createdObjects{pullSecret: created.pullSecret}, false); err != nil && res.Error == "" {
			res.OK, res.Error = false, err.Error()
		}
	}()
	p, err := e.runCheckPod(ctx, t, &created, arch)
	res.Seconds = time.Since(start).Seconds()
	if p != nil {
		res.Node = p.Spec.NodeName
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Version, err = e.checkOutput(ctx, p)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.OK = true
	return res
}

// runCheckPod creates the pod and waits until its container has terminated.
func (e *engine) runCheckPod(ctx context.Context, t Task, created *createdObjects, arch string) (*corev1.Pod, error) {
	if err := e.createPullSecret(ctx, t, created); err != nil {
		return nil, err
	}
	pod := t.CheckPodSpec(&e.cfg.Mover, arch, e.cfg.Timeout)
	if _, err := e.d.Kube.CoreV1().Pods(t.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", t.Namespace, pod.Name, err)
	}
	var last *corev1.Pod
	pulls := newPullRetries()
	err := until(ctx, e.d.Kube, waitSpec{
		Namespace: t.Namespace,
		What:      fmt.Sprintf("pod %s/%s (image %s on a linux/%s node)", t.Namespace, pod.Name, e.cfg.Mover.Image, arch),
		Timeout:   e.cfg.Timeout,
		LW:        kube.ListWatch(e.d.Kube.CoreV1().Pods(t.Namespace), e.d.Kube, kube.Named(pod.Name)),
		Obj:       &corev1.Pod{},
		Mine:      named(pod.Name),
		Events:    func(ref corev1.ObjectReference) bool { return ref.Kind == "Pod" && ref.Name == pod.Name },
		Cond: func(o runtime.Object, _ *kube.Stall) (bool, string, error) {
			last = o.(*corev1.Pod)
			return podStatus(last, pulls)
		},
	})
	return last, err
}

// checkOutput reads what the image's binary printed; a non-zero exit is the error.
func (e *engine) checkOutput(ctx context.Context, p *corev1.Pod) (string, error) {
	var term *corev1.ContainerStateTerminated
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == containerName && cs.State.Terminated != nil {
			term = cs.State.Terminated
		}
	}
	if term == nil {
		return "", fmt.Errorf("pod %s/%s %s before its container ran: %s %s", p.Namespace, p.Name, p.Status.Phase, p.Status.Reason, p.Status.Message)
	}
	if term.ExitCode != 0 {
		return "", fmt.Errorf("the image was pulled, but its binary exited with code %d (%s) on node %s: %s (is it built for this node's architecture?)", term.ExitCode, term.Reason, p.Spec.NodeName, tailLogs(ctx, e.d.Kube, p))
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := e.d.Kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: containerName, LimitBytes: ptr.To(int64(4096))}).DoRaw(lctx)
	if err != nil {
		return "", fmt.Errorf("read the output of pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimPrefix(first, "kubectl-pvbackup "), nil
}

// CheckPodSpec is the pod of CheckPull for arch: a mover pod's image, pull settings and security
// context, running the image's `kubectl-pvbackup version`, bounded by deadline.
func (t Task) CheckPodSpec(c *MoverConfig, arch string, deadline time.Duration) *corev1.Pod {
	podSC := &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(DefaultMoverUID)), RunAsGroup: ptr.To(int64(DefaultMoverUID)),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if c.RunAsUser != nil {
		podSC.RunAsUser, podSC.RunAsGroup = c.RunAsUser, c.RunAsUser
	}
	mem := resource.MustParse("64Mi")
	return &corev1.Pod{
		ObjectMeta: t.meta(t.name("chk")),
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         ptr.To(int64(deadline.Seconds()) + 1),
			ServiceAccountName:            c.ServiceAccount,
			AutomountServiceAccountToken:  ptr.To(false),
			ImagePullSecrets:              t.imagePullSecrets(c),
			NodeSelector:                  map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch},
			SecurityContext:               podSC,
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			EnableServiceLinks:            ptr.To(false),
			Containers: []corev1.Container{{
				Name:            containerName,
				Image:           c.Image,
				ImagePullPolicy: c.PullPolicy,
				Command:         []string{image.BinaryPath, "version"},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), RunAsNonRoot: ptr.To(true),
					Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: mem},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
			}},
		},
	}
}
