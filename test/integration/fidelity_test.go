//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const betaClass = "volume.beta.kubernetes.io/storage-class"

// TestRestoreFidelity backs up a namespace whose claims name their StorageClass by the beta
// annotation (a PVC, a StatefulSet's volumeClaimTemplate) and a running Job, then restores it
// on the real apiserver: bad --storage-class-mapping values fail before anything is created, and
// a mapped restore with a resource modifier file gives the new class everywhere, the patched
// objects, and a Job the apiserver accepted, suspended.
func TestRestoreFidelity(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "fidelity password")
	t.Setenv("PVBACKUP_LOCATION", "")
	loc := "file://" + t.TempDir()
	const ns = "fidelity"
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	for _, name := range []string{"fid-old", "fid-new"} {
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "example.com/none", VolumeBindingMode: &wffc}
		if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	createNamespace(t, ns, "settings")
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	claim := corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}
	beta := map[string]string{betaClass: "fid-old"}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-db-0", Annotations: beta}, Spec: claim}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr.To[int32](0), ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "db", Image: "postgres:16"}, {Name: "exporter", Image: "exporter:1"}}}},
		VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data", Annotations: beta}, Spec: claim}},
	}}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No scheduler here: the Job's pod stays Pending and the Job is running at backup time.
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "reindex"}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "r", Image: "busybox"}}}}}}
	if _, err := cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := run(t, "create", "fid-1", "--to", loc, "--include-namespaces", ns)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	deleteNamespace(t, ns)

	for _, tc := range []struct{ mapping, want string }{
		{"nothere:fid-new", `--storage-class-mapping nothere:fid-new: no restored PVC, PV or StatefulSet uses StorageClass "nothere" (they use: fid-old)`},
		{"fid-old:absent", `--storage-class-mapping fid-old:absent: StorageClass "absent" does not exist in this cluster and the backup does not bring it`},
	} {
		r := run(t, "restore", "fid-1", "--from", loc, "--storage-class-mapping", tc.mapping)
		if r.code != 1 || !strings.Contains(r.err, tc.want) {
			t.Errorf("--storage-class-mapping %s: want exit 1 and %q, got exit %d\n%s%s", tc.mapping, tc.want, r.code, r.out, r.err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			t.Fatalf("--storage-class-mapping %s: the failed restore created namespace %s", tc.mapping, ns)
		}
	}

	mods := filepath.Join(t.TempDir(), "modifiers.yaml")
	if err := os.WriteFile(mods, []byte(`version: v1
resourceModifierRules:
- conditions:
    groupResource: configmaps
    resourceNameRegex: "^settings$"
    namespaces: [fidelity]
  patches:
  - {operation: replace, path: /data/k, value: patched}
- conditions:
    groupResource: statefulsets.apps
  strategicPatches:
  - patchData: |
      spec:
        template:
          spec:
            containers:
            - name: db
              image: postgres:17
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "restore", "fid-1", "--from", loc, "--storage-class-mapping", "fid-old:fid-new", "--resource-modifiers", mods)
	if r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.out, r.err)
	}
	for _, row := range [][]string{
		{"storageclasses.storage.k8s.io", "-", "fid-old", "skipped", "--storage-class-mapping", "fid-old:fid-new:", "the", "restored", "claims", "use", "fid-new", "instead"},
		{"configmaps", ns, "settings", "created", "changed", "by", "resourceModifierRules[0]"},
		{"statefulsets.apps", ns, "db", "created", "changed", "by", "resourceModifierRules[1]"},
	} {
		if !hasRow(r.out, row...) {
			t.Errorf("restore output lacks the row %q", strings.Join(row, " "))
		}
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-0", metav1.GetOptions{})
	if err != nil || pvc.Annotations[betaClass] != "fid-new" {
		t.Errorf("claim data-db-0: %v, annotations %v; want %s=fid-new", err, pvc.Annotations, betaClass)
	}
	got, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Spec.VolumeClaimTemplates[0].Annotations[betaClass]; a != "fid-new" {
		t.Errorf("StatefulSet template class %q, want fid-new", a)
	}
	if c := got.Spec.Template.Spec.Containers; len(c) != 2 || c[0].Image != "postgres:17" || c[1].Image != "exporter:1" {
		t.Errorf("StatefulSet containers after the strategic patch: %+v", c)
	}
	if cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{}); err != nil || cm.Data["k"] != "patched" {
		t.Errorf("ConfigMap settings: %v %v, want k=patched", err, cm.Data)
	}
	// The apiserver accepted the Job with a new selector and suspended it.
	j, err := cs.BatchV1().Jobs(ns).Get(ctx, "reindex", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !ptr.Deref(j.Spec.Suspend, false) || j.Spec.Selector == nil || j.Spec.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] != string(j.UID) {
		t.Errorf("Job reindex: suspend %v, selector %v, uid %s", j.Spec.Suspend, j.Spec.Selector, j.UID)
	}
	if !hasRowPrefix(r.out, "jobs.batch", ns, "reindex", "created", "running", "at", "backup", "time:", "restored", "suspended;") {
		t.Errorf("restore output does not say Job reindex was restored suspended:\n%s", r.out)
	}
}

// hasRowPrefix reports whether a table in out has a row starting with these cells.
func hasRowPrefix(out string, cells ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " ")+" ", strings.Join(cells, " ")+" ") {
			return true
		}
	}
	return false
}
