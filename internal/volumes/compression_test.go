package volumes

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// A PVC's annotation overrides create --compression; without either the default is recorded by
// name; a bad annotation fails that volume with what to do.
func TestVolumeCompression(t *testing.T) {
	pvc := func(ann map[string]string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data", Annotations: ann}}
	}
	for _, c := range []struct {
		flag string
		ann  map[string]string
		want string
	}{
		{"", nil, repo.DefaultCompression},
		{"zstd", nil, "zstd"},
		{"zstd", map[string]string{AnnotationCompression: "none"}, "none"},
		{"", map[string]string{AnnotationCompression: " s2-default "}, "s2-default"},
	} {
		got, err := volumeCompression(c.flag, pvc(c.ann))
		if err != nil || got != c.want {
			t.Errorf("flag %q, annotations %v: %q, %v; want %q", c.flag, c.ann, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "lz77"} {
		_, err := volumeCompression("none", pvc(map[string]string{AnnotationCompression: bad}))
		if err == nil || !strings.Contains(err.Error(), "app/data") || !strings.Contains(err.Error(), AnnotationCompression) {
			t.Errorf("annotation %q: %v, want an error naming the PVC and the annotation", bad, err)
		}
	}
}

// The compression travels from the plan's volume record into the mover Job's environment.
func TestJobSpecCompression(t *testing.T) {
	e := &engine{cfg: Config{Backup: "b", RunID: "r"}}
	task := e.backupTask(&catalog.Volume{Namespace: "app", PVC: "data", Compression: "zstd-fastest"})
	job := task.JobSpec(&MoverConfig{Image: "img", Location: "s3://b"}, "data", "", Placement{})
	for _, ev := range job.Spec.Template.Spec.Containers[0].Env {
		if ev.Name == "PVBACKUP_COMPRESSION" {
			if ev.Value != "zstd-fastest" {
				t.Errorf("PVBACKUP_COMPRESSION = %q", ev.Value)
			}
			return
		}
	}
	t.Error("the mover Job has no PVBACKUP_COMPRESSION")
}
