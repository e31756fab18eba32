package volumes

import (
	"context"
	"errors"
	"fmt"

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
// Secret. It waits for nothing but the API calls.
func (e *engine) cleanup(ctx context.Context, t Task, c *createdObjects, dropSnapshot bool) error {
	var errs []error
	ns := t.Namespace
	if c.job {
		if err := e.d.Kube.BatchV1().Jobs(ns).Delete(ctx, t.JobName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Job %s/%s: %w", ns, t.JobName(), err))
		}
		// Pods go with the Job, but at once: they hold the volumes the next steps delete.
		pods, err := e.d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(t.Labels()).String()})
		if err != nil {
			errs = append(errs, fmt.Errorf("list mover pods in %s: %w", ns, err))
		} else {
			for _, p := range pods.Items {
				if err := e.d.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete mover pod %s/%s: %w", ns, p.Name, err))
				}
			}
		}
	}
	if c.tempPVC {
		if err := deleteClaim(ctx, e.d.Kube, ns, t.TempPVCName()); err != nil {
			errs = append(errs, err)
		}
	}
	if c.snapshot && dropSnapshot {
		for _, n := range []string{t.SnapshotName(), t.KeptSnapshotName()} {
			if err := deleteSnapshot(ctx, e.d.Snap, ns, n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.secret {
		if err := e.d.Kube.CoreV1().Secrets(ns).Delete(ctx, t.SecretName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", ns, t.SecretName(), err))
		}
	}
	if c.pullSecret {
		if err := e.d.Kube.CoreV1().Secrets(ns).Delete(ctx, t.PullSecretName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", ns, t.PullSecretName(), err))
		}
	}
	return errors.Join(errs...)
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
