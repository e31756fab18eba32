//go:build e2e && velerolab

package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// These tests need real Velero 1.18 installed in the lab (make velero-e2e and make bench-velero
// install it: hack/velero-lab.sh). The environment names it:
//
//	VELERO_LAB_VELERO  the velero binary (its CLI talks to the lab's Velero)
//	VELERO_LAB_URL     Velero's BackupStorageLocation as a gocloud URL (bucket and prefix)

const veleroNamespace = "velero"

// veleroCLI runs Velero's own CLI against the lab's Velero.
func veleroCLI(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args = append([]string{"--kubeconfig", env(t, "KUBECONFIG"), "--namespace", veleroNamespace}, args...)
	out, err := exec.CommandContext(ctx, env(t, "VELERO_LAB_VELERO"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("velero %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// veleroBackup runs `velero backup create NAME ARGS... --wait` and fails unless the backup is
// Completed; it returns the wall time.
func veleroBackup(t *testing.T, name string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	veleroCLI(t, 20*time.Minute, append([]string{"backup", "create", name, "--wait"}, args...)...)
	took := time.Since(start)
	if phase := kubectl(t, time.Minute, "-n", veleroNamespace, "get", "backup", name, "-o", "jsonpath={.status.phase}"); phase != "Completed" {
		t.Fatalf("Velero's backup %s is %s:\n%s", name, phase, veleroCLI(t, time.Minute, "backup", "describe", name, "--details"))
	}
	return took
}

// veleroRecords lists Velero's per-volume records of a backup (podvolumebackups or datauploads)
// as "phase bytes" lines.
func veleroRecords(t *testing.T, resource, backup string) []string {
	t.Helper()
	out := kubectl(t, time.Minute, "-n", veleroNamespace, "get", resource, "-l", "velero.io/backup-name="+backup,
		"-o", `jsonpath={range .items[*]}{.status.phase} {.status.progress.totalBytes}{"\n"}{end}`)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// veleroLabScript runs hack/velero-lab.sh with args.
func veleroLabScript(t *testing.T, args ...string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "velero-lab.sh")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, script, args...).CombinedOutput(); err != nil {
		t.Fatalf("hack/velero-lab.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// veleroLabBucket opens Velero's bucket (its prefix) to compare it before and after.
func veleroLabBucket(t *testing.T) *blob.Bucket {
	t.Helper()
	bucketURL, prefix, err := store.Parse(env(t, "VELERO_LAB_URL"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := blob.OpenBucket(context.Background(), bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	b = blob.PrefixedBucket(b, prefix)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// deployOnNodes creates a Deployment (claim "files") and a StatefulSet (claim "data-db-0"),
// each filled with writeScript's data, pinned to the given nodes, and waits until they run.
func (c *Cluster) deployOnNodes(t *testing.T, ns, deployNode, stsNode string) []string {
	t.Helper()
	ctx := context.Background()
	pod := func(name, node string, volumes []corev1.Volume) corev1.PodTemplateSpec {
		mount := []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}}, Spec: corev1.PodSpec{
			NodeSelector: map[string]string{corev1.LabelHostname: node}, TerminationGracePeriodSeconds: ptr.To(int64(1)), Volumes: volumes,
			InitContainers: []corev1.Container{{Name: "write", Image: c.Image, ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", writeScript},
				Env: []corev1.EnvVar{{Name: "NAME", Value: name}}, VolumeMounts: mount}},
			Containers: []corev1.Container{{Name: "app", Image: c.Image, ImagePullPolicy: corev1.PullNever, VolumeMounts: mount,
				Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}}}}}
	}
	c.PVC(t, ns, "files", "200Mi", nil)
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "files"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "files"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: pod("files", deployNode, []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "files"}}}})}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Deployment: %v", err)
	}
	_, err = c.Kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(1)), ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: pod("db", stsNode, nil),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &c.StorageClass,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("200Mi")}}}}}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create StatefulSet: %v", err)
	}
	c.waitPodsReady(t, ns, 2, 4*time.Minute)
	return []string{"files", "data-db-0"}
}

// TestVeleroLab is the way off Velero, end to end: real Velero 1.18.3 backs up an app whose pods
// run on the lab's second and third nodes (each with a kubelet root of its own), once with
// fs-backup and once with the data mover; Velero is then removed from the cluster with nothing of
// it left (hack/velero-lab.sh down --keep-bucket), and `kubectl pvbackup velero restore` brings
// each backup back into a namespace of its own: every file, mode, owner and link equal, the pods
// Running without Velero's restore-wait, Velero's bucket unchanged object for object.
func TestVeleroLab(t *testing.T) {
	c := NewCluster(t)
	_, nodeB, nodeC := labNodes(t)
	ns := c.Namespace(t, "e2e-vlab")
	claims := c.deployOnNodes(t, ns, nodeB, nodeC)
	want := c.sums(t, ns, claims, "before")
	c.deleteJobs(t, ns) // the checksum Jobs are not the app's

	suffix := randomSuffix()
	backups := []struct{ name, method, resource string }{
		{"vlab-fs-" + suffix, "--default-volumes-to-fs-backup", "podvolumebackups"},
		{"vlab-dm-" + suffix, "--snapshot-move-data", "datauploads"},
	}
	for _, b := range backups {
		took := veleroBackup(t, b.name, "--include-namespaces", ns, b.method)
		recs := veleroRecords(t, b.resource, b.name)
		t.Logf("Velero's backup %s (%s) in %s: %s %v", b.name, b.method, took.Round(time.Second), b.resource, recs)
		if len(recs) != len(claims) {
			t.Fatalf("backup %s: %d %s, want %d: %q", b.name, len(recs), b.resource, len(claims), recs)
		}
		for _, r := range recs {
			f := strings.Fields(r)
			if n, _ := strconv.ParseInt(f[len(f)-1], 10, 64); len(f) != 2 || f[0] != "Completed" || n < 24000000 {
				t.Fatalf("backup %s: %s %q, want each Completed with the app's >= 24 MB", b.name, b.resource, recs)
			}
		}
	}

	veleroLabScript(t, "down", "--keep-bucket") // fails unless nothing of Velero is left
	bucket := veleroLabBucket(t)
	before := objectsState(t, bucket)
	for _, b := range backups {
		target := c.Namespace(t, "e2e-vlab-to")
		args := append([]string{"velero", "restore", b.name, "--from-velero", env(t, "VELERO_LAB_URL"), "--namespace-mapping", ns + ":" + target}, moverArgs()...)
		r := runPlugin(t, 10*time.Minute, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "2 volumes restored") || !strings.Contains(r.stderr, "Velero's built-in default password") {
			t.Fatalf("velero restore %s: exit %d\nstdout:\n%s\nstderr:\n%s\n%s", b.name, r.code, r.stdout, r.stderr, c.Diagnose(target))
		}
		c.waitPodsReady(t, target, 2, 4*time.Minute)
		pods, err := c.Kube.CoreV1().Pods(target).List(context.Background(), metav1.ListOptions{LabelSelector: "app"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			for _, ic := range p.Spec.InitContainers {
				if ic.Name == "restore-wait" {
					t.Errorf("pod %s/%s has Velero's restore-wait init container", target, p.Name)
				}
			}
		}
		compareSums(t, want, c.sums(t, target, claims, "after"), "velero restore "+b.name)
		if after := objectsState(t, bucket); after != before {
			t.Errorf("Velero's bucket changed by velero restore %s:\n--- before\n%s\n--- after\n%s", b.name, head(before), head(after))
		}
	}
}
