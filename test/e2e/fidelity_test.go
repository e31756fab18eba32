//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

const betaClassAnnotation = "volume.beta.kubernetes.io/storage-class"

// seedScript writes data that differs on every run: were the seeding Job run again after the
// restore, the checksums would differ.
const seedScript = `set -e
date +%s%N > /data/seed-marker
head -c 2000000 /dev/urandom > /data/seed.bin
mkdir -p /data/rows && i=0 && while [ $i -lt 50 ]; do echo "row $i $RANDOM" > /data/rows/r$i; i=$((i+1)); done
sync`

const md5Script = `cd /data && find . -type f | sort | xargs md5sum`

// TestFidelityRoundTrip: a StatefulSet whose volumeClaimTemplate names its class only by the beta
// annotation, seeded by a Job that finished before the backup; the namespace is deleted and
// restored with --storage-class-mapping onto the WaitForFirstConsumer class. The claim, its volume
// and the StatefulSet's template use the new class, the data is the backup's, and the seeding Job
// is not run again.
func TestFidelityRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ctx := context.Background()
	ns := c.Namespace(t, "e2e-fid")
	labels := map[string]string{"app": "db"}
	_, err := c.Kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(1)), ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To(int64(1)),
				Containers: []corev1.Container{{Name: "db", Image: c.Image, ImagePullPolicy: corev1.PullNever,
					Command:      []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
			// The class only in the beta annotation, as many published StatefulSets still do.
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data", Annotations: map[string]string{betaClassAnnotation: c.StorageClass}},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Mi")}}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create StatefulSet: %v", err)
	}
	c.waitPodsReady(t, ns, 1, 4*time.Minute)
	c.RunJob(t, ns, "seed", "data-db-0", 3*time.Minute, "sh", "-c", seedScript)
	want := c.RunJob(t, ns, "sum-before", "data-db-0", 3*time.Minute, "sh", "-c", md5Script)
	if !strings.Contains(want, "./seed-marker") || !strings.Contains(want, "./rows/r49") {
		t.Fatalf("checksums before the backup look wrong:\n%s", want)
	}

	loc := c.location(t)
	name := "fid-" + randomSuffix()
	r := runPlugin(t, 10*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	c.deleteNamespace(t, ns)

	r = runPlugin(t, 15*time.Minute, append([]string{"restore", name, "--from", loc, "-o", "json",
		"--storage-class-mapping", c.StorageClass + ":csi-dir-wffc"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	var res restore.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("restore result: %v\n%s", err, r.stdout)
	}
	reasons := map[string]restore.Item{}
	for _, it := range res.Items {
		reasons[it.Resource+"/"+it.Name] = it
	}
	if it := reasons["jobs.batch/seed"]; it.Action != restore.Skipped || !strings.Contains(it.Reason, "finished Job (Complete)") {
		t.Errorf("seeding Job: %+v, want skipped as finished", it)
	}
	if it := reasons["storageclasses.storage.k8s.io/"+c.StorageClass]; it.Action != restore.Skipped || !strings.Contains(it.Reason, "--storage-class-mapping") {
		t.Errorf("StorageClass %s: %+v, want skipped as mapped away", c.StorageClass, it)
	}
	if len(res.Volumes) != 1 || res.Volumes[0].Action != restore.Restored {
		t.Errorf("restored volumes: %+v", res.Volumes)
	}

	pvc, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := pvc.Annotations[betaClassAnnotation]; a != "csi-dir-wffc" {
		t.Errorf("claim data-db-0 names class %q by the beta annotation, want csi-dir-wffc", a)
	}
	if pv, err := c.Kube.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{}); err != nil || pv.Spec.StorageClassName != "csi-dir-wffc" {
		t.Errorf("volume %q of data-db-0: %v, class %q; want csi-dir-wffc", pvc.Spec.VolumeName, err, ptr.Deref(pvClass(pv), ""))
	}
	sts, err := c.Kube.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := sts.Spec.VolumeClaimTemplates[0].Annotations[betaClassAnnotation]; a != "csi-dir-wffc" {
		t.Errorf("StatefulSet template names class %q, want csi-dir-wffc", a)
	}
	c.waitPodsReady(t, ns, 1, 4*time.Minute)
	if _, err := c.Kube.BatchV1().Jobs(ns).Get(ctx, "seed", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the seeding Job exists after the restore (%v): it would run again", err)
	}
	got := c.RunJob(t, ns, "sum-after", "data-db-0", 3*time.Minute, "sh", "-c", md5Script)
	if got != want {
		t.Errorf("data of data-db-0 differs after the restore\nwant:\n%s\ngot:\n%s", head(want), head(got))
	}
}

func pvClass(pv *corev1.PersistentVolume) *string {
	if pv == nil {
		return nil
	}
	return &pv.Spec.StorageClassName
}
