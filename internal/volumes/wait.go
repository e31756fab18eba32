package volumes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// ErrTimeout is wrapped by a wait that saw no progress for the step's timeout.
var ErrTimeout = kube.ErrNoProgress

// eventMatcher says whether an event concerns the objects a step waits for.
type eventMatcher func(ref corev1.ObjectReference) bool

// terminalEvent reports whether an event means the step cannot succeed, with its reason.
// seen counts how often (reason, object) was seen: some reasons are final only when repeated.
func terminalEvent(ev *corev1.Event, seen int) bool {
	if ev.Type != corev1.EventTypeWarning {
		return false
	}
	msg := strings.ToLower(ev.Message)
	switch ev.Reason {
	case "FailedCreate", "BackoffLimitExceeded", "DeadlineExceeded", "ProvisioningFailed", "ErrImageNeverPull", "InspectFailed", "FailedPostStartHook":
		return true
	case "FailedAttachVolume":
		return strings.Contains(msg, "multi-attach") || seen >= 2 || ev.Count >= 2
	case "FailedMount":
		// kubelet retries mounts; a repeated failure is the volume's, not a race.
		return seen >= 2 || ev.Count >= 2
	case "FailedScheduling":
		// Waiting for a claim to be provisioned or bound resolves by itself, and a provisioning
		// failure has its own event (ProvisioningFailed): only the others are final.
		for _, transient := range []string{"persistentvolumeclaim", "unbound", "waiting for", "binding", "volume", "not found"} {
			if strings.Contains(msg, transient) {
				return false
			}
		}
		return true
	}
	return false
}

// watchEvents reports the events of the step's objects made from now on (older ones are
// history): each one is "seen", a terminal one ends the step through fail.
func watchEvents(ctx context.Context, c kubernetes.Interface, ns string, match eventMatcher, st *kube.Stall, fail func(error)) {
	counts := map[string]int{}
	kube.Follow(ctx, kube.ListWatch(c.CoreV1().Events(ns), c, nil), func(ev watch.Event) {
		e, ok := ev.Object.(*corev1.Event)
		if !ok || ev.Type == watch.Deleted || !match(e.InvolvedObject) {
			return
		}
		desc := fmt.Sprintf("%s %s: %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, strings.TrimSpace(e.Message))
		key := e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + "/" + e.Reason
		counts[key]++
		st.See(desc, false)
		if terminalEvent(e, counts[key]) {
			fail(errors.New(desc))
		}
	})
}

// waitSpec is one wait of a step: the objects watched, when it is done, and the events followed
// meanwhile.
type waitSpec struct {
	Namespace string
	// What names the wait in errors and in the timeout message.
	What string
	// Timeout is how long the wait may see no progress (a new status, an event, a log line).
	Timeout time.Duration
	// LW lists and watches the objects, of Obj's type.
	LW  cache.ListerWatcher
	Obj runtime.Object
	// Mine accepts the objects the wait is about: selectors may not filter (fake clients).
	Mine func(metav1.Object) bool
	// Events selects the events followed (nil: none); a terminal one ends the wait.
	Events eventMatcher
	// Cond says whether an object is done; its status line is "last seen" (a change is progress).
	Cond func(runtime.Object, *kube.Stall) (done bool, status string, err error)
	// Status, when set, reads an object's status.error: it fails the wait once it stands for
	// ErrorGrace (errorGate), and a timeout names the last one seen.
	Status     func(runtime.Object) statusReport
	ErrorGrace time.Duration
}

// until watches w's objects until w.Cond says done, while the events of w.Events are followed
// and a status error (w.Status) is given its grace.
func until(ctx context.Context, c kubernetes.Interface, w waitSpec) error {
	what, mine, cond := w.What, w.Mine, w.Cond
	ctx, st, stop := kube.NoProgress(ctx, w.Timeout, what)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if w.Events != nil {
		go watchEvents(ctx, c, w.Namespace, w.Events, st, func(err error) { cancel(err) })
	}
	gate := newErrorGate(w.ErrorGrace, func(err error) { cancel(err) })
	defer gate.stop()
	err := kube.Until(ctx, w.LW, w.Obj, nil, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			// Only objects the step waits for: a field selector may not filter (fake clients).
			if m, err := meta.Accessor(ev.Object); err == nil && mine(m) {
				return false, fmt.Errorf("%s: %s was deleted while waiting", what, m.GetName())
			}
			return false, nil
		}
		if m, err := meta.Accessor(ev.Object); err != nil || !mine(m) {
			return false, nil // selectors may not filter (fake clients)
		}
		var report statusReport
		if w.Status != nil {
			report = w.Status(ev.Object)
			gate.see(report)
		}
		done, status, err := cond(ev.Object, st)
		if report.Msg != "" {
			status = strings.TrimPrefix(status+"; status.error: "+report.Msg, "; ")
		}
		st.See(status, false)
		return done, err
	})
	if failed := gate.failed(); err != nil && failed != nil {
		return failed
	}
	if err != nil && ctx.Err() != nil {
		if errors.Is(err, ErrTimeout) && gate.lastError() != "" && !strings.Contains(err.Error(), gate.lastError()) {
			return fmt.Errorf("%w; last status.error: %s", err, gate.lastError())
		}
		if errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return err
}

// podOutcome is how a mover pod ended.
type podOutcome struct {
	pod    *corev1.Pod
	result *mover.Result
	err    error
}

// terminalWaiting are container waiting reasons that do not resolve by waiting.
var terminalWaiting = map[string]bool{
	"ImagePullBackOff": true, "ErrImageNeverPull": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// registryRefused says whether a failed pull's message is the registry's answer (credentials
// refused, no such image or tag, no image for the node's platform): a pull that waiting and
// retrying does not mend, so the mover fails at once with it instead of after the kubelet's
// back-off. Network errors are left to ImagePullBackOff.
func registryRefused(msg string) bool {
	msg = strings.ToLower(msg)
	for _, answer := range []string{"401 unauthorized", "403 forbidden", "404 not found", "unauthorized", "authorization failed",
		"failed to authorize", "access denied", "denied:", "manifest unknown", "not found", "no match for platform"} {
		if strings.Contains(msg, answer) {
			return true
		}
	}
	return false
}

// podStatus inspects a mover pod: done when its container has terminated; an error for a
// container that cannot start. pulls tells a first pull made without the pull Secret from a
// refusal (nil: every refusal is final).
func podStatus(p *corev1.Pod, pulls *pullRetries) (done bool, status string, err error) {
	status = fmt.Sprintf("pod %s %s", p.Name, p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
			status += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != containerName {
			continue
		}
		switch {
		case cs.State.Terminated != nil:
			return true, status + ": container terminated: " + cs.State.Terminated.Reason, nil
		case cs.State.Waiting != nil:
			w := cs.State.Waiting
			status += ": " + w.Reason
			if w.Message != "" {
				status += ": " + w.Message
			}
			// A Secret the kubelet has not synced yet resolves by itself; a missing one does not.
			transient := w.Reason == "CreateContainerConfigError" && !strings.Contains(w.Message, "not found")
			if pulls.mayBeSecretCache(p, w) {
				continue
			}
			if terminalWaiting[w.Reason] && !transient || w.Reason == "ErrImagePull" && registryRefused(w.Message) {
				return false, status, fmt.Errorf("mover pod %s/%s: %s: %s", p.Namespace, p.Name, w.Reason, w.Message)
			}
		case cs.State.Running != nil:
			status += ": running"
		}
	}
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		return true, status, nil
	}
	return false, status, nil
}

// readOutcome turns a finished pod into the mover's Result, or an error with the reason.
func readOutcome(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod, limits corev1.ResourceList) podOutcome {
	out := podOutcome{pod: p}
	var term *corev1.ContainerStateTerminated
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == containerName && cs.State.Terminated != nil {
			term = cs.State.Terminated
		}
	}
	where := fmt.Sprintf("mover pod %s/%s", p.Namespace, p.Name)
	if term == nil {
		msg := p.Status.Message
		if msg == "" {
			msg = p.Status.Reason
		}
		out.err = fmt.Errorf("%s %s before its container ran: %s", where, p.Status.Phase, msg)
		return out
	}
	if r, ok := mover.ParseResult(term.Message); ok {
		out.result = r
	}
	switch {
	case term.Reason == "OOMKilled":
		lim := limits[corev1.ResourceMemory]
		out.err = fmt.Errorf("%s was OOMKilled (memory limit %s): raise --mover-memory-limit", where, lim.String())
	case term.ExitCode != 0 && out.result != nil && out.result.Error != "":
		out.err = fmt.Errorf("%s failed: %s", where, out.result.Error)
	case term.ExitCode != 0:
		out.err = fmt.Errorf("%s exited with code %d (%s): %s", where, term.ExitCode, term.Reason, tailLogs(ctx, kube, p))
	case out.result == nil:
		out.err = fmt.Errorf("%s succeeded but left no result in its termination message (is --mover-image a kubectl-pvbackup mover of this version?)", where)
	case !out.result.OK:
		out.err = fmt.Errorf("%s: %s", where, out.result.Error)
	}
	return out
}

func tailLogs(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) string {
	ctx, cancel := cleanup.Context(ctx, 10*time.Second)
	defer cancel()
	b, err := kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: containerName, TailLines: ptr.To(int64(5))}).DoRaw(ctx)
	if err != nil {
		return "no logs: " + err.Error()
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "no output"
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

// followLogs reads the mover's JSON lines until the container ends or ctx is done.
func followLogs(ctx context.Context, kube kubernetes.Interface, ns, pod string, onEvent func(mover.Event)) {
	rc, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: containerName, Follow: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if ev, err := mover.ParseEvent(sc.Bytes()); err == nil {
			onEvent(ev)
		}
	}
}
