package volumes

import (
	"context"
	"fmt"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// runMover creates the Secret and the Job, and follows the pod to its end. node is where the
// pod ran (or was placed), "" if it never was.
func (e *engine) runMover(ctx context.Context, t Task, created *createdObjects, claim, snapshotID string, place Placement) (res *mover.Result, node string, err error) {
	j, err := e.startMover(ctx, t, created, claim, snapshotID, place)
	if err != nil {
		return nil, "", err
	}
	var (
		following = map[types.UID]bool{}
		pulls     = newPullRetries()
		finished  *corev1.Pod
		wg        sync.WaitGroup
	)
	// A mover's node going away ends the wait through wctx, with the reason.
	wctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	nodes := newNodeWatch(ctx, e.d.Kube, fail)
	defer nodes.stop()
	lctx, stopLogs := context.WithCancel(ctx)
	defer func() {
		stopLogs()
		wg.Wait()
		if e.d.OnEvent != nil { // the volume's bar ends with its mover, a result or not
			e.d.OnEvent(t.Namespace, t.PVC, mover.Event{Event: moverEnded})
		}
	}()
	w := e.moverWait(t, j, claim)
	w.Cond = func(o runtime.Object, st *kube.Stall) (bool, string, error) {
		p := o.(*corev1.Pod)
		if p.Spec.NodeName != "" {
			node = p.Spec.NodeName
		}
		done, status, err := podStatus(p, pulls)
		if err != nil {
			return false, status, err
		}
		if !done && p.DeletionTimestamp != nil {
			return false, status, evictedError(ctx, e.d.Kube, p)
		}
		if !done {
			nodes.follow(p)
		}
		if !following[p.UID] && (done || p.Status.Phase == corev1.PodRunning) {
			following[p.UID] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				followLogs(lctx, e.d.Kube, p.Namespace, p.Name, func(ev mover.Event) {
					st.See("", true) // the mover is alive: no stall
					if e.d.OnEvent != nil {
						e.d.OnEvent(t.Namespace, t.PVC, ev)
					}
				})
			}()
		}
		if done {
			finished = p
		}
		return done, status, nil
	}
	err = until(wctx, e.d.Kube, w)
	nodes.stop()
	if err != nil {
		return nil, node, explainMultiAttach(ctx, e.d.Kube, t.Namespace, claim, node, err)
	}
	wg.Wait() // the log ends with the container
	out := readOutcome(ctx, e.d.Kube, finished, e.cfg.Mover.Limits)
	return out.result, node, out.err
}

// startMover creates the temporary Secret (unless the user's is used) and the mover Job.
func (e *engine) startMover(ctx context.Context, t Task, created *createdObjects, claim, snapshotID string, place Placement) (*batchv1.Job, error) {
	mc := &e.cfg.Mover
	// Always a temporary Secret: it carries the namespace's repository key (a user's --mover-secret
	// brings the storage credentials only).
	secret, err := t.SecretSpec(mc)
	if err != nil {
		return nil, err
	}
	if _, err := e.d.Kube.CoreV1().Secrets(t.Namespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create temporary Secret %s/%s for the mover: %w", t.Namespace, t.SecretName(), err)
	}
	created.secret = true
	if err := e.createPullSecret(ctx, t, created); err != nil {
		return nil, err
	}
	job := t.JobSpec(mc, claim, snapshotID, place)
	j, err := e.d.Kube.BatchV1().Jobs(t.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create mover Job %s/%s: %w", t.Namespace, job.Name, err)
	}
	created.job = true
	return j, nil
}

// moverWait is the wait for the pods of mover Job j, following the events of the Job, its pods
// and the claim they mount.
func (e *engine) moverWait(t Task, j *batchv1.Job, claim string) waitSpec {
	lw := kube.ListWatch(e.d.Kube.CoreV1().Pods(t.Namespace), e.d.Kube, kube.Labelled(t.Labels()))
	return waitSpec{
		Namespace: t.Namespace,
		What:      fmt.Sprintf("mover Job %s/%s", t.Namespace, j.Name),
		Timeout:   e.cfg.Timeout,
		LW:        lw,
		Obj:       &corev1.Pod{},
		Mine:      labelled(t.Labels()),
		Events: func(ref corev1.ObjectReference) bool {
			switch ref.Kind {
			case "Job":
				return ref.UID == j.UID || ref.Name == j.Name
			case "Pod":
				return strings.HasPrefix(ref.Name, j.Name+"-")
			case "PersistentVolumeClaim":
				return ref.Name == claim
			}
			return false
		},
	}
}

func labelled(set map[string]string) func(metav1.Object) bool {
	sel := labels.SelectorFromSet(set)
	return func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) }
}
