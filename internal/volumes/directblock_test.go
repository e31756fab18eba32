package volumes

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// fs mode of a raw block claim reads its device directly (volumeDevices of the live claim, read
// only) when no pod uses it, or when it is ReadWriteMany (with a warning); a ReadWriteOnce device
// in use fails, naming the pod and snapshot-move.
func TestDirectBlock(t *testing.T) {
	user := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "vm-0"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "main"}},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "disk"}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	for _, tc := range []struct {
		name   string
		mode   corev1.PersistentVolumeAccessMode
		inUse  bool
		status string
		want   string // in the error or the warning
	}{
		{"unattached", corev1.ReadWriteOnce, false, catalog.VolumeCompleted, ""},
		{"ReadWriteMany in use", corev1.ReadWriteMany, true, catalog.VolumeCompleted, "ReadWriteMany raw block volume in use by pod vm-0"},
		{"ReadWriteOnce in use", corev1.ReadWriteOnce, true, catalog.VolumeFailed, "raw block volume in use by pod vm-0: a direct read of a device being written is no consistent image; use --volumes=snapshot-move"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			disk := boundClaim("disk", "pv1", tc.mode)
			disk.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
			objs := []runtime.Object{disk, csiPV("pv1", "dir.csi")}
			if tc.inUse {
				objs = append(objs, user)
			}
			s := newSim(t, objs...)
			s.run(ctx)
			vols, err := Backup(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeFS), []*corev1.PersistentVolumeClaim{disk})
			if err != nil {
				t.Fatal(err)
			}
			v := vols[0]
			if v.Status != tc.status || !strings.Contains(v.Error+strings.Join(v.Warnings, "|"), tc.want) || !strings.Contains(v.Reason, "read directly through volumeDevices") {
				t.Fatalf("volume %s %q, warnings %q, reason %q; want %s with %q", v.Status, v.Error, v.Warnings, v.Reason, tc.status, tc.want)
			}
			if tc.status != catalog.VolumeCompleted {
				if len(s.jobs) != 0 {
					t.Errorf("a mover ran for a device in use: %d jobs", len(s.jobs))
				}
				return
			}
			ps := s.jobs[0].Spec.Template.Spec
			ct := ps.Containers[0]
			if len(ct.VolumeDevices) != 1 || ct.VolumeDevices[0].DevicePath != deviceData || ps.Volumes[0].PersistentVolumeClaim == nil ||
				ps.Volumes[0].PersistentVolumeClaim.ClaimName != "disk" || !ps.Volumes[0].PersistentVolumeClaim.ReadOnly {
				t.Errorf("mover devices %+v, volumes %+v; want the live claim disk mapped read-only at %s", ct.VolumeDevices, ps.Volumes, deviceData)
			}
			told := false
			for _, e := range ct.Env {
				told = told || (e.Name == "PVBACKUP_BLOCK" && e.Value == "true")
			}
			if !told {
				t.Errorf("mover env %v: not told it reads a device", ct.Env)
			}
		})
	}
}
