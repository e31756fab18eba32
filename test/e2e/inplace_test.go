//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/quiesce"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// inPlaceWriteScript fills /data with content that depends on $NAME only: two pods of one
// Deployment that both write the claim write the same bytes.
const inPlaceWriteScript = `set -e
[ -f /data/.written ] && exit 0
mkdir -p /data/docs/old /data/keep
i=0
while [ $i -lt 40 ]; do echo "doc $i $NAME" > /data/docs/d$i.txt; i=$((i+1)); done
i=0
while [ $i -lt 5 ]; do echo "old $i" > /data/docs/old/o$i.txt; i=$((i+1)); done
yes "$NAME block" | head -c 3000000 > /data/keep/large.txt
ln -s docs/d1.txt /data/link
echo mine > /data/keep/owned && chown 1000:1000 /data/keep/owned && chmod 640 /data/keep/owned
sync
touch /data/.written`

// inPlaceChangeScript is the application changing every claim mounted under /data/<claim>
// after the backup: files rewritten (one at the same size), deleted (a whole directory too),
// added, a chmod, a chown and a re-pointed symlink (which leave size and time alone), a file
// grown.
const inPlaceChangeScript = `set -e
for d in /data/*; do
  echo "changed by the app" > $d/docs/d1.txt
  tr a-z A-Z < $d/docs/d3.txt > $d/docs/d3.tmp && mv $d/docs/d3.tmp $d/docs/d3.txt
  rm $d/docs/d2.txt && rm -r $d/docs/old
  echo new > $d/new.txt && mkdir -p $d/newdir/x && echo n > $d/newdir/x/y
  chmod 600 $d/docs/d4.txt && chown 1000 $d/docs/d5.txt
  ln -sfn docs/d6.txt $d/link
  head -c 1000 /dev/zero >> $d/keep/large.txt
done
sync`

// claimsSums runs one Job that mounts every claim at /data/<claim> and returns sumScript's
// listing of each.
func (c *Cluster) claimsSums(t *testing.T, ns, job string, claims []string) map[string]string {
	t.Helper()
	script := `for d in /data/*; do echo "== ${d#/data/}"; (` + strings.Replace(sumScript, "cd /data", `cd "$d"`, 1) + `); done`
	out := c.listing(t, ns, job, c.onClaims(t, ns, job, claims, script))
	sums := map[string]string{}
	var cur string
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, "== "); ok {
			cur = name
			continue
		}
		if cur != "" && line != "" {
			sums[cur] += line + "\n"
		}
	}
	for _, claim := range claims {
		if !strings.Contains(sums[claim], "./keep/owned file 640 1000:1000") {
			t.Fatalf("checksums of %s/%s look wrong:\n%s", ns, claim, head(sums[claim]))
		}
	}
	return sums
}

// onClaims runs script in a Job that mounts every claim at /data/<claim>.
func (c *Cluster) onClaims(t *testing.T, ns, job string, claims []string, script string) string {
	t.Helper()
	return c.runJob(t, ns, job, "", 3*time.Minute, func(p *corev1.PodSpec) {
		for _, claim := range claims {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "v-" + claim, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
			p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "v-" + claim, MountPath: "/data/" + claim})
		}
	}, []string{"sh", "-c", script})
}

// appPod is a pod template that writes its claim once (init container) and then sleeps.
func (c *Cluster) appPod(app, claim string) corev1.PodTemplateSpec {
	mount := []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	spec := corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "write", Image: c.Image, ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", inPlaceWriteScript},
			Env: []corev1.EnvVar{{Name: "NAME", Value: app}}, VolumeMounts: mount}},
		Containers: []corev1.Container{{Name: "app", Image: c.Image, ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}, VolumeMounts: mount}},
		TerminationGracePeriodSeconds: ptr.To(int64(1)),
	}
	if claim != "" {
		spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}}, Spec: spec}
}

func (c *Cluster) deployment(t *testing.T, ns, name, claim string, replicas int32) {
	t.Helper()
	c.PVC(t, ns, claim, "64Mi", nil)
	_, err := c.Kube.AppsV1().Deployments(ns).Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, Template: c.appPod(name, claim)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Deployment %s/%s: %v", ns, name, err)
	}
}

// scaleOf reads an owner's replica count and the annotations an in-place restore leaves.
func (c *Cluster) scaleOf(t *testing.T, ns, kind, name string) (int32, map[string]string) {
	t.Helper()
	ctx := context.Background()
	switch kind {
	case quiesce.KindDeployment:
		d, err := c.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *d.Spec.Replicas, d.Annotations
	default:
		s, err := c.Kube.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *s.Spec.Replicas, s.Annotations
	}
}

func (c *Cluster) wantScale(t *testing.T, ns, kind, name string, want int32) {
	t.Helper()
	n, ann := c.scaleOf(t, ns, kind, name)
	if n != want || ann[quiesce.AnnotationOriginal] != "" || ann[quiesce.AnnotationStoppedBy] != "" {
		t.Errorf("%s %s/%s: %d replicas, annotations %v; want %d and no record of a stop", kind, ns, name, n, ann, want)
	}
}

// TestInPlaceRestore: a StatefulSet, a Deployment and a Deployment an HPA scales, with data;
// back up; the application changes, deletes and adds files; --dry-run names the workloads and
// the difference and changes nothing; --in-place makes the named claims equal to the backup
// (checksums, modes, owners, links), leaves the others alone, and puts every workload back at
// its count, Running. The location is then read with a kubeconfig whose server is a closed port.
func TestInPlaceRestore(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ctx := context.Background()
	ns := c.Namespace(t, "e2e-inplace")
	_, err := c.Kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2)), ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: c.appPod("db", ""), VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &c.StorageClass,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create StatefulSet: %v", err)
	}
	c.deployment(t, ns, "web", "shared", 1)
	c.deployment(t, ns, "scaled", "auto", 1)
	// The HPA raises "scaled" to its minimum of 2 (no metrics are needed for that): it is live.
	_, err = c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "scaled"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "scaled"},
			MinReplicas: ptr.To(int32(2)), MaxReplicas: 3,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(int32(80))}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create HPA: %v", err)
	}
	c.waitPodsReady(t, ns, 5, 4*time.Minute) // db ×2, web, scaled ×2

	all := []string{"data-db-0", "data-db-1", "shared", "auto"}
	want := c.claimsSums(t, ns, "sum-before", all)
	loc := c.location(t)
	name := "inplace-" + randomSuffix()
	r := runPlugin(t, 10*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs", "--parallel", "4"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	c.onClaims(t, ns, "change", all, inPlaceChangeScript)

	// --dry-run: the workloads it would stop and the difference, counted by a read-only mover
	// (which writes nothing: internal/mover's TestRestoreSyncAndDiff).
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--in-place", "--volumes", ns + "/shared", "--dry-run"}, moverArgs()...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "would stop Deployment "+ns+"/web (1 replicas)") ||
		!strings.Contains(r.stdout, "6 added (") || !strings.Contains(r.stdout, "2 removed (") || !strings.Contains(r.stdout, "6 changed (") {
		t.Errorf("restore --in-place --dry-run: exit %d\n%s", r.code, r.stdout)
	}
	c.wantScale(t, ns, quiesce.KindDeployment, "web", 1)

	synced := []string{"data-db-0", "shared", "auto"}
	r = runPlugin(t, 10*time.Minute, append([]string{"restore", name, "--from", loc, "--in-place", "-o", "json",
		"--volumes", ns + "/" + strings.Join(synced, ","+ns+"/")}, moverArgs()...)...)
	var res restore.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || len(res.Volumes) != 3 {
		t.Fatalf("restore --in-place: exit %d, %v\n%s\n%s", r.code, err, r.stdout, c.Diagnose(ns))
	}
	for _, v := range res.Volumes {
		if v.Action != restore.Synced {
			t.Errorf("volume %s: %s %s", v.PVC, v.Action, v.Reason)
		}
	}
	if !strings.Contains(res.Volumes[2].Reason, "scaled by HorizontalPodAutoscaler scaled") {
		t.Errorf("the HPA of Deployment scaled is not named: %+v", res.Volumes)
	}
	c.wantScale(t, ns, quiesce.KindStatefulSet, "db", 2)
	c.wantScale(t, ns, quiesce.KindDeployment, "web", 1)
	c.wantScale(t, ns, quiesce.KindDeployment, "scaled", 2)
	c.waitPodsReady(t, ns, 5, 4*time.Minute)
	got := c.claimsSums(t, ns, "sum-after", all)
	for _, claim := range synced {
		if got[claim] != want[claim] {
			t.Errorf("%s after the in-place restore differs from the backup\nwant:\n%s\ngot:\n%s", claim, head(want[claim]), head(got[claim]))
		}
	}
	if !strings.Contains(got["data-db-1"], "./new.txt file") || strings.Contains(got["data-db-1"], "./docs/old") {
		t.Errorf("data-db-1 was not named and changed anyway:\n%s", head(got["data-db-1"]))
	}
	c.noLeftovers(t, name)

	c.hpaLeavesZeroAlone(t, ns)

	// ls and cat with a kubeconfig whose server is a closed loopback port: no cluster is asked.
	r = runPluginWithDeadCluster(t, "ls", name, "--from", loc)
	if r.code != 0 || !strings.Contains(r.stdout, ns+"/shared") || !strings.Contains(r.stdout, ns+"/data-db-1") {
		t.Errorf("ls with a dead cluster: exit %d\n%s", r.code, r.stdout)
	}
	r = runPluginWithDeadCluster(t, "cat", name, ns+"/shared:/docs/d7.txt", "--from", loc)
	if r.code != 0 || r.stdout != "doc 7 web\n" {
		t.Errorf("cat with a dead cluster: exit %d, %q", r.code, r.stdout)
	}
}

// hpaLeavesZeroAlone shows, on the cluster's own HPA controller, why an in-place restore may
// scale an HPA's Deployment to zero: the HPA reconciles the target at zero as "scaling disabled"
// and does not raise it to its minimum.
func (c *Cluster) hpaLeavesZeroAlone(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reason := ""
	// until waits for the HPA's ScalingActive condition to have (disabled) or not have the
	// reason ScalingDisabled, which the controller sets on each reconcile (every 15 s).
	until := func(disabled bool) {
		err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
			h, err := c.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "scaled", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, cond := range h.Status.Conditions {
				if cond.Type == autoscalingv2.ScalingActive {
					reason = fmt.Sprintf("%s=%s %s", cond.Type, cond.Status, cond.Reason)
					return (cond.Reason == "ScalingDisabled") == disabled, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("the HPA did not reconcile within 2m (want ScalingDisabled=%v; last: %s)", disabled, reason)
		}
	}
	until(false) // it has seen the Deployment running again since the in-place restore
	owner := quiesce.Owner{Kind: quiesce.KindDeployment, Namespace: ns, Name: "scaled", Original: "2"}
	if err := quiesce.Stop(ctx, c.Kube, []quiesce.Owner{owner}, "hpa-check"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := quiesce.Start(context.Background(), c.Kube, []quiesce.Owner{owner}); err != nil {
			t.Error(err)
		}
	}()
	until(true)
	if n, _ := c.scaleOf(t, ns, quiesce.KindDeployment, "scaled"); n != 0 {
		t.Errorf("the HPA scaled the stopped Deployment to %d", n)
	}
}

// runPluginWithDeadCluster runs the plugin with a kubeconfig whose server is a closed loopback port.
func runPluginWithDeadCluster(t *testing.T, args ...string) result {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: gone, context: {cluster: gone, user: u, namespace: default}}]
current-context: gone
`, addr)
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := plugin(t) // built once, on the first call: not within this command's timeout
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password", "KUBECONFIG="+kc)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err = cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run plugin %v: %v", args, err)
	}
	t.Logf("kubectl-pvbackup %s (server %s closed): exit %d in %s\nstderr:\n%s", strings.Join(args, " "), addr, r.code, r.took.Round(time.Millisecond), head(r.stderr))
	return r
}

// startPlugin starts the plugin and returns it running.
func startPlugin(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(plugin(t), args...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, &out
}

// waitMover waits until the restore's mover Job exists: the owners are stopped by then.
func (c *Cluster) waitMover(t *testing.T, ns, backup string, out *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := c.Kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: volumes.Selector(backup)})
		return err == nil && len(l.Items) > 0, nil
	})
	if err != nil {
		t.Fatalf("no mover Job appeared: %v\n%s\n%s", err, out.String(), c.Diagnose(ns))
	}
}

// TestInPlaceInterrupted: Ctrl-C (SIGINT) during an in-place restore puts the Deployment back and
// leaves no mover; after SIGKILL the Deployment is left stopped with its count recorded on it,
// and `cleanup --backup` puts it back and removes the mover.
func TestInPlaceInterrupted(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-inplace-int")
	c.deployment(t, ns, "web", "data", 2)
	c.waitPodsReady(t, ns, 2, 4*time.Minute)
	loc := c.location(t)
	name := "inplace-int-" + randomSuffix()
	r := runPlugin(t, 10*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	args := append([]string{"restore", name, "--from", loc, "--in-place", "--volumes", ns + "/data"}, moverArgs()...)

	cmd, out := startPlugin(t, args...)
	c.waitMover(t, ns, name, out)
	if n, ann := c.scaleOf(t, ns, quiesce.KindDeployment, "web"); n != 0 || ann[quiesce.AnnotationOriginal] != "2" {
		t.Errorf("while the mover runs: %d replicas, annotations %v", n, ann)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the interrupted restore exited 0\n%s", out.String())
		}
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the restore did not exit within 2m of SIGINT\n%s", out.String())
	}
	t.Logf("interrupted restore:\n%s", out.String())
	c.wantScale(t, ns, quiesce.KindDeployment, "web", 2)
	c.noLeftovers(t, name)
	c.waitPodsReady(t, ns, 2, 4*time.Minute)

	cmd, out = startPlugin(t, args...)
	c.waitMover(t, ns, name, out)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if n, ann := c.scaleOf(t, ns, quiesce.KindDeployment, "web"); n != 0 || ann[quiesce.AnnotationOriginal] != "2" || ann[quiesce.AnnotationStoppedBy] != name {
		t.Fatalf("after SIGKILL: %d replicas, annotations %v (the test needs the kill to leave it stopped)", n, ann)
	}
	// Another backup's cleanup leaves it alone (its restore may be running).
	r = runPlugin(t, 3*time.Minute, "cleanup", "--backup", name+"-other")
	if n, _ := c.scaleOf(t, ns, quiesce.KindDeployment, "web"); r.code != 0 || n != 0 {
		t.Errorf("cleanup of another backup: exit %d, Deployment at %d\n%s", r.code, n, r.stdout)
	}
	r = runPlugin(t, 3*time.Minute, "cleanup", "--backup", name)
	if r.code != 0 || !strings.Contains(r.stdout, "Started again Deployment "+ns+"/web") {
		t.Errorf("cleanup: exit %d\n%s", r.code, r.stdout)
	}
	c.wantScale(t, ns, quiesce.KindDeployment, "web", 2)
	c.noLeftovers(t, name)
	c.waitPodsReady(t, ns, 2, 4*time.Minute)
}

// TestDataOnlyFromKeptSnapshot: a snapshot-mode backup keeps a VolumeSnapshot; --data-only
// provisions a new claim from it (no mover) that holds the data; --in-place syncs the claim a
// Deployment uses from a temporary claim made from it (volume to volume), dry run first.
func TestDataOnlyFromKeptSnapshot(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-dataonly-snap")
	c.deployment(t, ns, "web", "data", 1)
	c.waitPodsReady(t, ns, 1, 4*time.Minute)
	want := c.claimsSums(t, ns, "sum-before", []string{"data"})
	loc := c.location(t)
	name := "snap-data-" + randomSuffix()
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims", "--volumes", "snapshot"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stdout)
	}
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--data-only", "--volumes", ns + "/data", "--target-pvc", ns + "/data-copy", "-o", "json"}, moverArgs()...)...)
	var res restore.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || len(res.Volumes) != 1 || res.Volumes[0].Action != restore.FromSnapshot {
		t.Fatalf("restore --data-only: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	got := c.claimsSums(t, ns, "sum-copy", []string{"data-copy"})
	if got["data-copy"] != want["data"] {
		t.Errorf("the claim made from the kept VolumeSnapshot differs\nwant:\n%s\ngot:\n%s", head(want["data"]), head(got["data-copy"]))
	}

	c.onClaims(t, ns, "change", []string{"data"}, inPlaceChangeScript)
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--in-place", "--volumes", ns + "/data", "--dry-run"}, moverArgs()...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "would stop Deployment "+ns+"/web (1 replicas)") || !strings.Contains(r.stdout, "2 removed (") {
		t.Errorf("restore --in-place --dry-run from a kept snapshot: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--in-place", "--volumes", ns + "/data", "-o", "json"}, moverArgs()...)...)
	res = restore.Result{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 || len(res.Volumes) != 1 || res.Volumes[0].Action != restore.Synced {
		t.Fatalf("restore --in-place from a kept snapshot: exit %d, %v\n%s\n%s", r.code, err, r.stdout, c.Diagnose(ns))
	}
	c.wantScale(t, ns, quiesce.KindDeployment, "web", 1)
	c.waitPodsReady(t, ns, 1, 4*time.Minute)
	if got := c.claimsSums(t, ns, "sum-after", []string{"data"}); got["data"] != want["data"] {
		t.Errorf("data after the in-place restore from the kept snapshot differs from the backup\nwant:\n%s\ngot:\n%s", head(want["data"]), head(got["data"]))
	}
	c.noLeftovers(t, name)
}
