// Package quiesce stops the workloads that use a claim and starts them again exactly as they
// were: Deployments, StatefulSets and ReplicaSets scaled to zero, CronJobs suspended, the
// original values recorded on the objects themselves (annotations), so that a plugin killed
// midway leaves enough for `cleanup` to put them back. Bare pods cannot be stopped and started
// again: they are refused, with a message.
//
// A HorizontalPodAutoscaler does not fight a target scaled to zero: its controller treats a
// target at zero replicas as "scaling disabled" (condition ScalingActive=False, reason
// ScalingDisabled) and leaves it there until someone scales it up again; Start puts back the
// count the HPA had chosen, and the HPA goes on from there. The one window left (an HPA that
// computed a new count just before Stop and writes it just after) is closed by Verify, which
// the caller runs after the data is written: an owner no longer at zero fails the claim.
package quiesce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	kubeclient "github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// AnnotationOriginal holds, on a stopped owner, what to put back: the replica count, or for a
// CronJob whether it was suspended.
const AnnotationOriginal = "pvbackup.io/original-scale"

// AnnotationStoppedBy names, on a stopped owner, the backup whose restore stopped it, so that
// `cleanup --backup NAME` starts only what that run left stopped, never what another in-place
// restore has stopped right now.
const AnnotationStoppedBy = "pvbackup.io/stopped-by"

// Kinds of owners.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindReplicaSet  = "ReplicaSet"
	KindCronJob     = "CronJob"
)

// Owner is a workload that runs pods mounting the claim.
type Owner struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Original is what it had: the replica count, or "true"/"false" for a CronJob's suspend.
	Original string `json:"original"`
	// Autoscaler names the HorizontalPodAutoscaler that scales it, if one does.
	Autoscaler string `json:"autoscaler,omitempty"`
	// StoppedBy is the backup whose restore stopped it (Stopped fills it in).
	StoppedBy string `json:"stoppedBy,omitempty"`
}

func (o Owner) String() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// ErrBarePod is wrapped when a pod with no owner to scale mounts the claim.
var ErrBarePod = errors.New("a pod without an owner mounts the claim")

// Find returns the owners of the pods that mount claim, and the workloads whose pod template
// mounts it (a CronJob between runs, a Deployment already at zero), sorted.
func Find(ctx context.Context, kube kubernetes.Interface, ns, claim string) ([]Owner, error) {
	found := map[string]Owner{}
	add := func(o Owner) { found[o.Kind+"/"+o.Name] = o }
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods in %s: %w", ns, err)
	}
	for _, p := range pods.Items {
		if !mounts(p.Spec.Volumes, claim) || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		o, err := ownerOfPod(ctx, kube, &p)
		if err != nil {
			return nil, err
		}
		add(o)
	}
	if err := fromTemplates(ctx, kube, ns, claim, add); err != nil {
		return nil, err
	}
	hpas, err := autoscalers(ctx, kube, ns)
	if err != nil {
		return nil, err
	}
	out := make([]Owner, 0, len(found))
	for _, o := range found {
		o.Autoscaler = hpas[o.Kind+"/"+o.Name]
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// autoscalers maps "Kind/name" of each HPA target in ns to the HPA's name. A user who may not
// list HPAs gets none: they are only reported, the stop works the same.
func autoscalers(ctx context.Context, kube kubernetes.Interface, ns string) (map[string]string, error) {
	list, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsForbidden(err) || apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("list HorizontalPodAutoscalers in %s: %w", ns, err)
	}
	out := map[string]string{}
	for _, h := range list.Items {
		out[h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name] = h.Name
	}
	return out, nil
}

func mounts(vols []corev1.Volume, claim string) bool {
	for _, v := range vols {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
			return true
		}
	}
	return false
}

// ownerOfPod follows controller references up to the object that scales.
func ownerOfPod(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) (Owner, error) {
	ref := metav1.GetControllerOf(p)
	if ref == nil {
		return Owner{}, fmt.Errorf("pod %s/%s mounts the claim and has no owner: stop it yourself (delete it) and run again: %w", p.Namespace, p.Name, ErrBarePod)
	}
	apps := kube.AppsV1()
	switch ref.Kind {
	case KindStatefulSet:
		s, err := apps.StatefulSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return Owner{}, fmt.Errorf("get StatefulSet %s/%s: %w", p.Namespace, ref.Name, err)
		}
		return statefulSetOwner(s)
	case KindReplicaSet:
		rs, err := apps.ReplicaSets(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return Owner{}, fmt.Errorf("get ReplicaSet %s/%s: %w", p.Namespace, ref.Name, err)
		}
		if d := metav1.GetControllerOf(rs); d != nil && d.Kind == KindDeployment {
			dep, err := apps.Deployments(p.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
			if err != nil {
				return Owner{}, fmt.Errorf("get Deployment %s/%s: %w", p.Namespace, d.Name, err)
			}
			return Owner{Kind: KindDeployment, Namespace: dep.Namespace, Name: dep.Name, Original: replicas(dep.Spec.Replicas)}, nil
		}
		return Owner{Kind: KindReplicaSet, Namespace: rs.Namespace, Name: rs.Name, Original: replicas(rs.Spec.Replicas)}, nil
	case "Job":
		j, err := kube.BatchV1().Jobs(p.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return Owner{}, fmt.Errorf("get Job %s/%s: %w", p.Namespace, ref.Name, err)
		}
		if c := metav1.GetControllerOf(j); c != nil && c.Kind == KindCronJob {
			cj, err := kube.BatchV1().CronJobs(p.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
			if err != nil {
				return Owner{}, fmt.Errorf("get CronJob %s/%s: %w", p.Namespace, c.Name, err)
			}
			return Owner{Kind: KindCronJob, Namespace: cj.Namespace, Name: cj.Name, Original: strconv.FormatBool(cj.Spec.Suspend != nil && *cj.Spec.Suspend)}, nil
		}
	}
	return Owner{}, fmt.Errorf("pod %s/%s mounts the claim and is run by %s %s, which cannot be scaled down and back: stop it and run again: %w", p.Namespace, p.Name, ref.Kind, ref.Name, ErrBarePod)
}

// ErrDeletesClaims is a StatefulSet that deletes its claims when scaled down.
var ErrDeletesClaims = errors.New("the StatefulSet deletes its claims when scaled down")

// statefulSetOwner is the owner record of s, refused when s deletes its claims on scale-down:
// stopping it would delete the very claim being restored.
func statefulSetOwner(s *appsv1.StatefulSet) (Owner, error) {
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return Owner{}, fmt.Errorf("StatefulSet %s/%s has persistentVolumeClaimRetentionPolicy.whenScaled: Delete, so scaling it to zero would delete its claims: set whenScaled to Retain and run again, or restore with --data-only --target-pvc into a new claim: %w",
			s.Namespace, s.Name, ErrDeletesClaims)
	}
	return Owner{Kind: KindStatefulSet, Namespace: s.Namespace, Name: s.Name, Original: replicas(s.Spec.Replicas)}, nil
}

func replicas(r *int32) string {
	if r == nil {
		return "1" // the API's default
	}
	return strconv.Itoa(int(*r))
}

// fromTemplates adds the workloads whose pod template mounts claim.
func fromTemplates(ctx context.Context, kube kubernetes.Interface, ns, claim string, add func(Owner)) error {
	deps, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list Deployments in %s: %w", ns, err)
	}
	for _, d := range deps.Items {
		if mounts(d.Spec.Template.Spec.Volumes, claim) {
			add(Owner{Kind: KindDeployment, Namespace: ns, Name: d.Name, Original: replicas(d.Spec.Replicas)})
		}
	}
	sts, err := kube.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list StatefulSets in %s: %w", ns, err)
	}
	for _, s := range sts.Items {
		own := mounts(s.Spec.Template.Spec.Volumes, claim)
		for _, t := range s.Spec.VolumeClaimTemplates {
			// Claims of a template are <template>-<set>-<ordinal>.
			if rest, ok := strings.CutPrefix(claim, t.Name+"-"+s.Name+"-"); ok && isDigits(rest) {
				own = true
			}
		}
		if own {
			o, err := statefulSetOwner(&s)
			if err != nil {
				return err
			}
			add(o)
		}
	}
	cjs, err := kube.BatchV1().CronJobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list CronJobs in %s: %w", ns, err)
	}
	for _, c := range cjs.Items {
		if mounts(c.Spec.JobTemplate.Spec.Template.Spec.Volumes, claim) {
			add(Owner{Kind: KindCronJob, Namespace: ns, Name: c.Name, Original: strconv.FormatBool(c.Spec.Suspend != nil && *c.Spec.Suspend)})
		}
	}
	return nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Stop records each owner's original value (and backup, the restore's) on it and scales it to
// zero (suspends a CronJob). An owner that carries the annotation already (a run that was
// killed) keeps its first record.
func Stop(ctx context.Context, kube kubernetes.Interface, owners []Owner, backup string) error {
	for _, o := range owners {
		patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{AnnotationOriginal: o.Original, AnnotationStoppedBy: backup}}}
		if cur, err := annotation(ctx, kube, o); err != nil {
			return err
		} else if cur != "" {
			patch = map[string]any{}
		}
		if o.Kind == KindCronJob {
			patch["spec"] = map[string]any{"suspend": true}
		} else {
			patch["spec"] = map[string]any{"replicas": 0}
		}
		if err := apply(ctx, kube, o, patch); err != nil {
			return fmt.Errorf("stop %s: %w", o, err)
		}
	}
	return nil
}

// Start puts each owner back as its annotation says and removes the annotation.
func Start(ctx context.Context, kube kubernetes.Interface, owners []Owner) error {
	var errs []error
	for _, o := range owners {
		orig, err := annotation(ctx, kube, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if orig == "" {
			orig = o.Original
		}
		patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationOriginal: nil, AnnotationStoppedBy: nil}}}
		if o.Kind == KindCronJob {
			patch["spec"] = map[string]any{"suspend": orig == "true"}
		} else {
			n, err := strconv.Atoi(orig)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: annotation %s=%q is not a replica count", o, AnnotationOriginal, orig))
				continue
			}
			patch["spec"] = map[string]any{"replicas": n}
		}
		if err := apply(ctx, kube, o, patch); err != nil {
			errs = append(errs, fmt.Errorf("start %s again (set it back to %s yourself): %w", o, orig, err))
		}
	}
	return errors.Join(errs...)
}

// ErrRestarted is wrapped by Verify when an owner runs again while it should be stopped.
var ErrRestarted = errors.New("a workload was started again while the claim was written")

// Verify checks that every owner is still stopped (zero replicas, or suspended): something that
// scaled one up meanwhile (its HPA, a person, a GitOps controller) may have had pods write to
// the claim while it was being restored.
func Verify(ctx context.Context, kube kubernetes.Interface, owners []Owner) error {
	var bad []string
	for _, o := range owners {
		m, err := get(ctx, kube, o)
		if err != nil {
			return fmt.Errorf("get %s: %w", o, err)
		}
		if now, stopped := state(m); !stopped {
			who := "by someone else"
			if o.Autoscaler != "" {
				who = "by HorizontalPodAutoscaler " + o.Autoscaler + " or someone else"
			}
			bad = append(bad, fmt.Sprintf("%s is at %s, set %s", o, now, who))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(bad, "; "), ErrRestarted)
	}
	return nil
}

// state says what a stopped owner's spec holds now, and whether that is stopped.
func state(m metav1.Object) (string, bool) {
	switch o := m.(type) {
	case *appsv1.Deployment:
		return replicas(o.Spec.Replicas) + " replicas", ptrZero(o.Spec.Replicas)
	case *appsv1.StatefulSet:
		return replicas(o.Spec.Replicas) + " replicas", ptrZero(o.Spec.Replicas)
	case *appsv1.ReplicaSet:
		return replicas(o.Spec.Replicas) + " replicas", ptrZero(o.Spec.Replicas)
	case *batchv1.CronJob:
		suspended := o.Spec.Suspend != nil && *o.Spec.Suspend
		return "suspend=" + strconv.FormatBool(suspended), suspended
	}
	return "an unknown state", false
}

func ptrZero(r *int32) bool { return r != nil && *r == 0 }

// Stopped lists the owners a run left stopped (they carry the annotation), in every namespace;
// with backup set, only those its restore stopped.
func Stopped(ctx context.Context, kube kubernetes.Interface, backup string) ([]Owner, error) {
	var out []Owner
	keep := func(kind string, m metav1.ObjectMeta) {
		v, ok := m.Annotations[AnnotationOriginal]
		by := m.Annotations[AnnotationStoppedBy]
		if ok && (backup == "" || by == backup) {
			out = append(out, Owner{Kind: kind, Namespace: m.Namespace, Name: m.Name, Original: v, StoppedBy: by})
		}
	}
	deps, err := kube.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list Deployments: %w", err)
	}
	for _, d := range deps.Items {
		keep(KindDeployment, d.ObjectMeta)
	}
	sts, err := kube.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list StatefulSets: %w", err)
	}
	for _, s := range sts.Items {
		keep(KindStatefulSet, s.ObjectMeta)
	}
	rss, err := kube.AppsV1().ReplicaSets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list ReplicaSets: %w", err)
	}
	for _, r := range rss.Items {
		keep(KindReplicaSet, r.ObjectMeta)
	}
	cjs, err := kube.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list CronJobs: %w", err)
	}
	for _, c := range cjs.Items {
		keep(KindCronJob, c.ObjectMeta)
	}
	return out, nil
}

func annotation(ctx context.Context, kube kubernetes.Interface, o Owner) (string, error) {
	m, err := get(ctx, kube, o)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", o, err)
	}
	return m.GetAnnotations()[AnnotationOriginal], nil
}

func get(ctx context.Context, kube kubernetes.Interface, o Owner) (metav1.Object, error) {
	opts := metav1.GetOptions{}
	switch o.Kind {
	case KindDeployment:
		return kube.AppsV1().Deployments(o.Namespace).Get(ctx, o.Name, opts)
	case KindStatefulSet:
		return kube.AppsV1().StatefulSets(o.Namespace).Get(ctx, o.Name, opts)
	case KindReplicaSet:
		return kube.AppsV1().ReplicaSets(o.Namespace).Get(ctx, o.Name, opts)
	case KindCronJob:
		return kube.BatchV1().CronJobs(o.Namespace).Get(ctx, o.Name, opts)
	}
	return nil, fmt.Errorf("unknown kind")
}

// WaitUnmounted waits until no running pod of ns mounts claim (the owners' pods are gone), for
// as long as pods keep going: it fails once the pods that mount it stayed the same for noProgress.
func WaitUnmounted(ctx context.Context, kube kubernetes.Interface, ns, claim string, noProgress time.Duration) error {
	what := fmt.Sprintf("wait until no pod mounts PVC %s/%s", ns, claim)
	ctx, st, stop := kubeclient.NoProgress(ctx, noProgress, what)
	defer stop()
	lw := kubeclient.ListWatch(kube.CoreV1().Pods(ns), kube, nil)
	var store cache.Store
	users := func() (bool, error) {
		var names []string
		for _, x := range store.List() {
			p := x.(*corev1.Pod)
			if mounts(p.Spec.Volumes, claim) && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				names = append(names, p.Name)
			}
		}
		st.See("still: "+strings.Join(names, ", "), false)
		return len(names) == 0, nil
	}
	err := kubeclient.Until(ctx, lw, &corev1.Pod{}, func(s cache.Store) (bool, error) {
		store = s
		return users()
	}, func(watch.Event) (bool, error) { return users() })
	switch {
	case errors.Is(err, kubeclient.ErrNoProgress):
		return err
	case err != nil:
		return fmt.Errorf("%s (%s): %w", what, st.Last(), err)
	}
	return nil
}

func apply(ctx context.Context, kube kubernetes.Interface, o Owner, patch map[string]any) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{}
	switch o.Kind {
	case KindDeployment:
		_, err = kube.AppsV1().Deployments(o.Namespace).Patch(ctx, o.Name, types.MergePatchType, b, opts)
	case KindStatefulSet:
		_, err = kube.AppsV1().StatefulSets(o.Namespace).Patch(ctx, o.Name, types.MergePatchType, b, opts)
	case KindReplicaSet:
		_, err = kube.AppsV1().ReplicaSets(o.Namespace).Patch(ctx, o.Name, types.MergePatchType, b, opts)
	case KindCronJob:
		_, err = kube.BatchV1().CronJobs(o.Namespace).Patch(ctx, o.Name, types.MergePatchType, b, opts)
	default:
		err = fmt.Errorf("unknown kind")
	}
	return err
}
