package volumes

import (
	"context"
	"errors"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// createdObjects records what a task created, for its cleanup.
type createdObjects struct {
	secret, job, tempPVC, snapshot, pullSecret bool
}

// cleanup deletes what a task created: Job (and pods), temporary PVC (and its PV whatever the
// reclaim policy), VolumeSnapshot (and its content whatever the deletion policy) unless kept,
// Secrets. It waits for nothing but the API calls, and makes them side by side: one after the
// other, the dozen round trips of a volume's cleanup held its --parallel slot seconds on a busy
// apiserver.
func (e *engine) cleanup(ctx context.Context, t Task, c *createdObjects, dropSnapshot bool) error {
	ns := t.Namespace
	var parts []func() error
	if c.job {
		parts = append(parts, func() error { return e.deleteMover(ctx, t) })
	}
	if c.tempPVC {
		parts = append(parts, func() error { return deleteClaim(ctx, e.d.Kube, ns, t.TempPVCName()) })
	}
	if c.snapshot && dropSnapshot {
		for _, n := range []string{t.SnapshotName(), t.KeptSnapshotName()} {
			parts = append(parts, func() error { return deleteSnapshot(ctx, e.d.Snap, ns, n) })
		}
	}
	if c.secret {
		parts = append(parts, func() error { return e.deleteSecret(ctx, ns, t.SecretName()) })
	}
	if c.pullSecret {
		parts = append(parts, func() error { return e.deleteSecret(ctx, ns, t.PullSecretName()) })
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = part()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteMover deletes the task's Job and, at once, its pods: they hold the volumes the other
// deletions free.
func (e *engine) deleteMover(ctx context.Context, t Task) error {
	ns := t.Namespace
	var errs []error
	if err := e.d.Kube.BatchV1().Jobs(ns).Delete(ctx, t.JobName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Job %s/%s: %w", ns, t.JobName(), err))
	}
	pods, err := e.d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(t.Labels()).String()})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list mover pods in %s: %w", ns, err))...)
	}
	for _, p := range pods.Items {
		if err := e.d.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete mover pod %s/%s: %w", ns, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *engine) deleteSecret(ctx context.Context, ns, name string) error {
	if err := e.d.Kube.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s/%s: %w", ns, name, err)
	}
	return nil
}

// deleteClaim deletes a temporary PVC, first making its PV's reclaim policy Delete so the storage
// goes too.
func deleteClaim(ctx context.Context, kube kubernetes.Interface, ns, name string) error {
	pvc, err := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get temporary PVC %s/%s: %w", ns, name, err)
	}
	if pvc.Spec.VolumeName != "" {
		patch := []byte(`{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}`)
		if _, err := kube.CoreV1().PersistentVolumes().Patch(ctx, pvc.Spec.VolumeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set reclaim policy Delete on PV %s of temporary PVC %s/%s: %w", pvc.Spec.VolumeName, ns, name, err)
		}
	}
	if err := kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete temporary PVC %s/%s: %w", ns, name, err)
	}
	return nil
}
