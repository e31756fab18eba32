package volumes

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

func TestTerminalEvent(t *testing.T) {
	w := func(reason, msg string, count int32) *corev1.Event {
		return &corev1.Event{Type: corev1.EventTypeWarning, Reason: reason, Message: msg, Count: count}
	}
	tests := []struct {
		name string
		ev   *corev1.Event
		seen int
		want bool
	}{
		{"quota", w("FailedCreate", `pods "x" is forbidden: exceeded quota: q`, 1), 1, true},
		{"normal events never", &corev1.Event{Type: corev1.EventTypeNormal, Reason: "FailedCreate"}, 1, false},
		{"no node fits", w("FailedScheduling", "0/1 nodes are available: 1 Insufficient memory.", 1), 1, true},
		{"claim being provisioned", w("FailedScheduling", "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.", 9), 9, false},
		{"first FailedMount", w("FailedMount", "MountVolume.SetUp failed", 1), 1, false},
		{"repeated FailedMount", w("FailedMount", "MountVolume.SetUp failed", 2), 1, true},
		{"multi-attach at once", w("FailedAttachVolume", "Multi-Attach error for volume pv1", 1), 1, true},
		{"provisioning failed", w("ProvisioningFailed", "rpc error: RESOURCE_EXHAUSTED", 1), 1, true},
		{"image never pulled", w("ErrImageNeverPull", "image not present with pull policy of Never", 1), 1, true},
		{"pulling backoff is seen on the pod, not here", w("BackOff", "Back-off pulling image", 1), 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := terminalEvent(tc.ev, tc.seen); got != tc.want {
				t.Errorf("terminalEvent = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPodStatus(t *testing.T) {
	waiting := func(reason, msg string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}}}
	}
	for _, tc := range []struct {
		pod     *corev1.Pod
		wantErr bool
	}{
		{waiting("ContainerCreating", ""), false},
		{waiting("ImagePullBackOff", "Back-off pulling image"), true},
		{waiting("ErrImagePull", `failed to pull and unpack image "10.244.0.1:5001/m:e2e": failed to resolve reference "10.244.0.1:5001/m:e2e": unexpected status from HEAD request to http://10.244.0.1:5001/v2/m/manifests/e2e: 401 Unauthorized`), true},
		{waiting("ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "r.example/m:x": failed to resolve reference "r.example/m:x": r.example/m:x: not found`), true},
		{waiting("ErrImagePull", `failed to pull image "r.example/m:x": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`), true},
		{waiting("ErrImagePull", `failed to do request: Head "https://r.example/v2/m/manifests/x": dial tcp 10.0.0.9:443: connect: connection refused`), false},
		{waiting("ErrImagePull", `failed to copy: read tcp 10.244.0.5:40000->10.0.0.9:443: read: connection reset by peer`), false},
		{waiting("CreateContainerConfigError", `secret "x" not found`), true},
		{waiting("CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition"), false},
	} {
		_, _, err := podStatus(tc.pod, nil)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v, want error %v", tc.pod.Status.ContainerStatuses[0].State.Waiting.Message, err, tc.wantErr)
		}
	}
}

// TestPodStatusPullSecretNotSynced: a pull the registry refuses with 401 at the first attempt (the
// pod's pull Secret copied just before) is the kubelet's secret cache, which its retry mends; the
// retry's refusal, a refusal seen long after the first, or one without pull Secrets fails. CI
// failed TestRegistryAuthenticated and TestImagePushThenBackup on this, the second time because the
// first back-off was reported more than 8 s after the sandbox started, on a loaded kubelet.
func TestPodStatusPullSecretNotSynced(t *testing.T) {
	const refused = `failed to resolve reference "10.244.0.1:5001/m:e2e": pulling from host 10.244.0.1:5001 failed with status code [manifests e2e]: 401 Unauthorized`
	type seen struct {
		at     time.Duration // after the first refusal seen
		reason string
	}
	backOff := func(at time.Duration) seen { return seen{at, "ImagePullBackOff"} }
	refusal := func(at time.Duration) seen { return seen{at, "ErrImagePull"} }
	for _, tc := range []struct {
		name    string
		secrets bool
		seen    []seen
		wantErr bool // at the last state
	}{
		{"first attempt's 401", true, []seen{refusal(0)}, false},
		{"its back-off, reported late", true, []seen{refusal(0), backOff(14 * time.Second)}, false},
		{"only the back-off seen", true, []seen{backOff(0)}, false},
		{"the retry's 401", true, []seen{refusal(0), backOff(time.Second), refusal(11 * time.Second)}, true},
		{"the retry's 401 after a back-off seen first", true, []seen{backOff(0), refusal(10 * time.Second)}, true},
		{"still backing off after the window", true, []seen{backOff(0), backOff(pullRetryWindow)}, true},
		{"no pull Secrets: 401 at once", false, []seen{refusal(0)}, true},
		{"no pull Secrets: back-off at once", false, []seen{backOff(0)}, true},
		{"never pulled", true, []seen{{0, "ErrImageNeverPull"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var now time.Time
			pulls := newPullRetries()
			pulls.now = func() time.Time { return now }
			var err error
			for i, s := range tc.seen {
				now = start.Add(s.at)
				msg := refused
				if s.reason == "ImagePullBackOff" {
					msg = "Back-off pulling image: ErrImagePull: " + refused
				}
				p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "m", UID: "u1"},
					Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: containerName,
						State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: s.reason, Message: msg}}}}}}
				if tc.secrets {
					p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pvb-pull"}}
				}
				_, _, err = podStatus(p, pulls)
				if i < len(tc.seen)-1 && err != nil {
					t.Fatalf("state %d (%s at %s) ended the wait: %v", i, s.reason, s.at, err)
				}
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("err %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

// An event from before the wait (a failed provisioning of an earlier claim of the same name) is
// history, not this snapshot's failure: the events are watched from the list's resourceVersion.
func TestWaitIgnoresStaleEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stale := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data.old"},
		InvolvedObject: corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "app", Name: "data"},
		Type:           corev1.EventTypeWarning, Reason: "ProvisioningFailed", Message: "rpc error: RESOURCE_EXHAUSTED (yesterday)", Count: 1}
	s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"), stale)
	s.run(ctx)
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeSnapshotMove), []*corev1.PersistentVolumeClaim{boundClaim("data", "pv1")})
	if err != nil {
		t.Fatal(err)
	}
	if v := vols[0]; v.Status != catalog.VolumeCompleted {
		t.Fatalf("status %s error %q: an event from before the wait failed it", v.Status, v.Error)
	}
}
