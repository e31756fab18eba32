package volumes

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
)

// journal records hook runs and snapshot creations in order.
type journal struct {
	mu      sync.Mutex
	entries []string
	fail    map[string]error // by "phase pod"
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) Run(_ context.Context, h hooks.Hook) (hooks.Output, error) {
	j.add(h.Phase + " " + h.Pod)
	return hooks.Output{Stdout: "flushed"}, j.fail[h.Phase+" "+h.Pod]
}

func TestHooksAroundSnapshots(t *testing.T) {
	mkPod := func(name, claim string, ann map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Annotations: ann},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "main"}},
				Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	quiesce := map[string]string{"pre.hook.backup.velero.io/command": `["/bin/freeze"]`, "post.hook.pvbackup.io/command": "thaw"}
	for _, tc := range []struct {
		name       string
		fail       map[string]error
		wantOrder  string
		wantStatus map[string]string
	}{
		{name: "pre, snapshot, post, then the data moves", wantOrder: "pre db-0,snapshot data,post db-0",
			wantStatus: map[string]string{"data": catalog.VolumeCompleted, "other": catalog.VolumeCompleted}},
		{name: "failing pre hook: no snapshot, volume failed, post still runs", fail: map[string]error{"pre db-0": errors.New("command terminated with exit code 1")},
			wantOrder: "pre db-0,post db-0", wantStatus: map[string]string{"data": catalog.VolumeFailed, "other": catalog.VolumeCompleted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s := newSim(t, mkPod("db-0", "data", quiesce), mkPod("web-0", "other", nil), boundClaim("data", "pv1"), boundClaim("other", "pv2"), csiPV("pv1", "dir.csi"), csiPV("pv2", "dir.csi"))
			j := &journal{fail: tc.fail}
			s.snap.PrependReactor("create", "volumesnapshots", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if pvc := a.(k8stesting.CreateAction).GetObject().(interface{ GetLabels() map[string]string }).GetLabels()[LabelSourcePVC]; pvc == "data" {
					j.add("snapshot " + pvc)
				}
				return false, nil, nil
			})
			s.run(ctx)
			vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), Hooks: j}, testConfig(ModeSnapshotMove),
				[]*corev1.PersistentVolumeClaim{boundClaim("data", "pv1"), boundClaim("other", "pv2")})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(j.entries, ","); got != tc.wantOrder {
				t.Errorf("order %s, want %s", got, tc.wantOrder)
			}
			for _, v := range vols {
				if v.Status != tc.wantStatus[v.PVC] {
					t.Errorf("%s: %s %s", v.PVC, v.Status, v.Error)
				}
				if v.PVC == "data" && (len(v.Hooks) != 2 || !strings.Contains(v.Hooks[0], "pre hook in pod db-0 (container main, hook.backup.velero.io/)")) {
					t.Errorf("hook record %q", v.Hooks)
				}
			}
			if l := leftovers(t, s); len(l) != 0 {
				t.Errorf("left behind: %v", l)
			}
		})
	}
}

// TestHooksSnapshotCleanupFailure: a snapshot cut inside a hook window whose volume then failed
// is deleted; when that deletion fails, the volume says so once.
func TestHooksSnapshotCleanupFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "db-0", Annotations: map[string]string{"pre.hook.pvbackup.io/command": "freeze", "post.hook.pvbackup.io/command": "thaw"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "main"}},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	s := newSim(t, pod, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"))
	s.snapshotError = "driver refused: no space"
	s.snap.PrependReactor("delete", "volumesnapshots", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcd is unavailable")
	})
	s.run(ctx)
	vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), Hooks: &journal{}}, testConfig(ModeSnapshotMove),
		[]*corev1.PersistentVolumeClaim{boundClaim("data", "pv1")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 1 || vols[0].Status != catalog.VolumeFailed {
		t.Fatalf("volumes %+v, want data failed", vols)
	}
	if w := vols[0].Warnings; len(w) != 1 || !strings.Contains(w[0], "cleanup: ") || !strings.Contains(w[0], "etcd is unavailable") {
		t.Errorf("warnings %q, want one that says the snapshot could not be deleted", w)
	}
}
