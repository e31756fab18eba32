package volumes

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// pullRetryWindow bounds how long after a pod's first refused pull the refusal may still be the
// kubelet's secret cache: the kubelet retries after a 10 s back-off, so by then the retry has
// answered, even on a loaded node.
const pullRetryWindow = 45 * time.Second

// pullRetries remembers, for one wait, the refused pulls of its pods that have pull Secrets.
//
// The plugin copies a pull Secret just before it creates the pod. A kubelet whose secret cache has
// not synced pulls without it ("Unable to retrieve some image pull secrets"), gets 401, and its
// retry after the back-off has the Secret. So the first attempt's refusal, and the back-off after
// it, are not the answer; the retry's refusal is. A wrong Secret still fails at the retry, in
// about 11 s. Counting attempts, not seconds since the sandbox started, keeps this true on a
// kubelet too loaded to report within a fixed window (TestImagePushThenBackup failed in CI so).
type pullRetries struct {
	first   map[types.UID]time.Time // first refusal or back-off seen
	backOff map[types.UID]bool      // a back-off seen: the next refusal is the retry's
	now     func() time.Time
}

func newPullRetries() *pullRetries {
	return &pullRetries{first: map[types.UID]time.Time{}, backOff: map[types.UID]bool{}, now: time.Now}
}

// mayBeSecretCache says whether the waiting state w of pod p may still be the first pull, made
// without the pull Secret, and its back-off: the wait goes on. nil r: never.
func (r *pullRetries) mayBeSecretCache(p *corev1.Pod, w *corev1.ContainerStateWaiting) bool {
	refused := w.Reason == "ErrImagePull" && registryRefused(w.Message)
	if r == nil || len(p.Spec.ImagePullSecrets) == 0 || !refused && w.Reason != "ImagePullBackOff" {
		return false
	}
	now := r.now()
	first, seen := r.first[p.UID]
	if !seen {
		r.first[p.UID] = now
		first = now
	}
	if now.Sub(first) >= pullRetryWindow {
		return false
	}
	if w.Reason == "ImagePullBackOff" {
		r.backOff[p.UID] = true
		return true
	}
	return !r.backOff[p.UID]
}
