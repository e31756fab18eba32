package volumes

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// forEach runs fn for 0..n-1, cfg.Parallel at a time; it stops starting new ones when ctx ends.
func (e *engine) forEach(ctx context.Context, n int, fn func(context.Context, int)) error {
	sem := make(chan struct{}, e.cfg.Parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, i)
		}(i)
	}
	wg.Wait()
	return ctx.Err()
}

// podIndex lists each namespace's pods once, for fs placement.
type podIndex struct {
	mu   sync.Mutex
	kube kubernetes.Interface
	byNS map[string][]corev1.Pod
}

func (p *podIndex) using(ctx context.Context, ns, claim string) ([]corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pods, ok := p.byNS[ns]
	if !ok {
		list, err := p.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		pods = list.Items
		p.byNS[ns] = pods
	}
	var out []corev1.Pod
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.Spec.NodeName == "" {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				out = append(out, pod)
				break
			}
		}
	}
	return out, nil
}

func hasMode(c *corev1.PersistentVolumeClaim, m corev1.PersistentVolumeAccessMode) bool {
	for _, x := range c.Spec.AccessModes {
		if x == m {
			return true
		}
	}
	return false
}
