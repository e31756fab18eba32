//go:build e2e && velerolab

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// podMemory samples the resident memory (total_rss of the pod's memory cgroup, cgroup v1: page
// cache left out, so reading 1 GiB does not count as 1 GiB of memory) of every pod of the lab every
// 250 ms, and keeps each pod's peak by namespace/name. Pods that live less than a sample are missed;
// the movers of either tool live for seconds.
type podMemory struct {
	c      *Cluster
	mu     sync.Mutex
	peak   map[string]int64  // namespace/name -> bytes
	dirs   map[string]string // pod uid -> its memory cgroup
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *Cluster) sampleMemory(t *testing.T) *podMemory {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/memory/pvbackup-cluster"); err != nil {
		t.Fatalf("the lab's pod memory cgroups (cgroup v1): %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &podMemory{c: c, peak: map[string]int64{}, dirs: map[string]string{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			m.sample(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *podMemory) sample(ctx context.Context) {
	pods, err := m.c.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		uid := string(p.UID)
		dir, ok := m.dirs[uid]
		if !ok {
			found, _ := filepath.Glob("/sys/fs/cgroup/memory/pvbackup-cluster/*/kubepods*/pod" + uid)
			more, _ := filepath.Glob("/sys/fs/cgroup/memory/pvbackup-cluster/*/kubepods*/*/pod" + uid)
			if found = append(found, more...); len(found) == 0 {
				continue // not started yet
			}
			dir, m.dirs[uid] = found[0], found[0]
		}
		if rss := cgroupRSS(dir); rss > 0 {
			key := p.Namespace + "/" + p.Name
			if p.Labels["app.kubernetes.io/managed-by"] == "kubectl-pvbackup" {
				key = ourMover + key
			}
			m.mu.Lock()
			m.peak[key] = max(m.peak[key], rss)
			m.mu.Unlock()
		}
	}
}

// ourMover marks the peaks of kubectl-pvbackup's mover pods.
const ourMover = "mover "

// cgroupRSS is total_rss of a v1 memory cgroup, 0 when it is gone.
func cgroupRSS(dir string) int64 {
	f, err := os.Open(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "total_rss "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// stop ends the sampling and returns the peaks.
func (m *podMemory) stop() map[string]int64 {
	m.cancel()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// memSummary sums the peaks of the pods whose namespace/name match keep, and names the largest.
func memSummary(peaks map[string]int64, keep func(string) bool) string {
	var sum, top int64
	var topName string
	n := 0
	for k, v := range peaks {
		if !keep(k) {
			continue
		}
		n++
		sum += v
		if v > top {
			top, topName = v, k
		}
	}
	return fmt.Sprintf("%d MiB in %d pods (largest %s %d MiB)", sum>>20, n, topName, top>>20)
}

// veleroServerPod is the name of the pod of Velero's server.
func veleroServerPod(t *testing.T) string {
	t.Helper()
	return strings.TrimPrefix(strings.TrimSpace(kubectl(t, time.Minute, "-n", veleroNamespace, "get", "pods", "-l", "deploy=velero", "-o", "name")), "pod/")
}

// runMeasured runs a command and returns its wall time and peak RSS, and logs its output (our
// commands print each step with its time).
func runMeasured(t *testing.T, timeout time.Duration, name string, args ...string) (time.Duration, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, head(out.String()))
	}
	wall := time.Since(start)
	t.Logf("MEASURE output of %s %s:\n%s", filepath.Base(name), args[0], strings.TrimSpace(out.String()))
	return wall, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10
}

// logMoverTimes logs, per volume of backup name, its time in the backup and how much of it its
// mover took, and of that the opening of the repository (backup.json).
func logMoverTimes(t *testing.T, name, from string) {
	t.Helper()
	r := runPlugin(t, time.Minute, "describe", name, "--from", from, "-o", "json")
	if r.code != 0 {
		t.Fatalf("describe %s: exit %d: %s", name, r.code, r.stderr)
	}
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("describe %s -o json: %v", name, err)
	}
	for _, v := range m.Volumes {
		t.Logf("MEASURE volume %s/%s: %.1fs in the backup, mover %.1fs (repository open %.1fs) on %s, %d bytes uploaded",
			v.Namespace, v.PVC, v.Seconds, v.MoverSeconds, v.MoverOpenSeconds, v.MoverNode, v.UploadedBytes)
	}
}

// bucketBytes is the size of every object of url (a bucket and prefix).
func bucketBytes(t *testing.T, url string) int64 {
	t.Helper()
	bucketURL, prefix, err := store.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var n int64
	it := blob.PrefixedBucket(b, prefix).List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n += obj.Size
	}
}

// benchFill writes 512 MiB into /data: 1,000 small files of 1-8 KiB and four random files.
const benchFill = `set -e
mkdir -p /data/small
i=0
while [ $i -lt 1000 ]; do head -c $(( (i % 8 + 1) * 1024 )) /dev/urandom > /data/small/f$i; i=$((i+1)); done
for j in 1 2 3 4; do head -c 133169152 /dev/urandom > /data/big$j.bin; done
sync`

// benchApp makes the bench's namespace: two claims of 512 MiB of data each, a Deployment using
// both, and ConfigMaps up to ~2,000 objects in all.
func (c *Cluster) benchApp(t *testing.T, ns string, configMaps int) []string {
	t.Helper()
	ctx := context.Background()
	claims := []string{"data-a", "data-b"}
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, claim := range claims {
		c.PVC(t, ns, claim, "1Gi", nil)
		c.RunJob(t, ns, "fill-"+claim, claim, 10*time.Minute, "sh", "-c", benchFill)
		vols = append(vols, corev1.Volume{Name: claim, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		mounts = append(mounts, corev1.VolumeMount{Name: claim, MountPath: "/" + claim})
	}
	c.deleteJobs(t, ns)
	labels := map[string]string{"app": "bench"}
	_, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To(int64(1)), Volumes: vols,
				Containers: []corev1.Container{{Name: "app", Image: c.Image, ImagePullPolicy: corev1.PullNever, VolumeMounts: mounts,
					Command: []string{"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"}}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, configMaps)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				_, err := c.Kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%04d", i), Labels: labels},
					Data: map[string]string{"key": strings.Repeat(fmt.Sprint(i), 50)}}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := 0; i < configMaps; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatalf("create ConfigMaps: %v", err)
	}
	c.waitPodsReady(t, ns, 1, 4*time.Minute)
	return claims
}

// benchSums lists every claim as sumScript does.
func (c *Cluster) benchSums(t *testing.T, ns string, claims []string, tag string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, claim := range claims {
		job := "sum-" + tag + "-" + claim
		out[claim] = c.listing(t, ns, job, c.RunJob(t, ns, job, claim, 10*time.Minute, "sh", "-c", sumScript))
		if n := strings.Count(out[claim], " file "); n != 1004 {
			t.Fatalf("%s/%s holds %d files, want 1,004", ns, claim, n)
		}
	}
	c.deleteJobs(t, ns)
	return out
}

// objectCount is the number of objects in a namespace of the kinds the bench makes.
func (c *Cluster) objectCount(t *testing.T, ns string) int {
	t.Helper()
	out := kubectl(t, 2*time.Minute, "get", "configmaps,secrets,serviceaccounts,persistentvolumeclaims,deployments,replicasets,pods", "-n", ns, "-o", "name")
	return len(strings.Fields(out))
}

// TestMeasureVelero prints the figures of make bench-velero: the same namespace (two claims,
// 1 GiB of data in all, ~2,000 objects) backed up by Velero 1.18.3 (snapshot data movement) and by
// kubectl pvbackup create (snapshot-move), then restored by each into a fresh namespace, in one
// run on the lab: wall time from the command to done, bucket bytes, and the peak resident memory of
// what each runs (Velero: its server, node-agents and data mover pods; ours: the command and its
// mover pods). Both restores are checked file by file against the source.
func TestMeasureVelero(t *testing.T) {
	c := NewCluster(t)
	ns := c.Namespace(t, "bench-velero")
	claims := c.benchApp(t, ns, 1990)
	objects := c.objectCount(t, ns)
	want := c.benchSums(t, ns, claims, "source")
	veleroURL, ours := env(t, "VELERO_LAB_URL"), c.location(t)
	veleroBin, pluginBin := env(t, "VELERO_LAB_VELERO"), plugin(t)
	kc := []string{"--kubeconfig", env(t, "KUBECONFIG"), "--namespace", veleroNamespace}
	isVelero := func(k string) bool {
		return strings.HasPrefix(k, veleroNamespace+"/") && !strings.HasPrefix(k, veleroNamespace+"/pod-dirs-")
	}
	isOurs := func(k string) bool { return strings.HasPrefix(k, ourMover) }
	report := map[string]string{}
	walls := map[string]time.Duration{}

	name := "bench-" + randomSuffix()
	before := bucketBytes(t, veleroURL)
	mem := c.sampleMemory(t)
	steps := watchPhases(t, ns, veleroNamespace)
	walls["velero backup"], _ = runMeasured(t, 30*time.Minute, veleroBin, append(kc, "backup", "create", name, "--include-namespaces", ns, "--snapshot-move-data", "--wait")...)
	peaks := mem.stop()
	steps.report(t, "velero backup")
	if phase := kubectl(t, time.Minute, "-n", veleroNamespace, "get", "backup", name, "-o", "jsonpath={.status.phase}"); phase != "Completed" {
		t.Fatalf("Velero's backup is %s", phase)
	}
	veleroBytes := bucketBytes(t, veleroURL) - before
	report["velero backup"] = memSummary(peaks, isVelero)
	if _, ok := peaks[veleroNamespace+"/"+veleroServerPod(t)]; !ok {
		t.Errorf("no memory sample of Velero's server pod: are the lab's pod cgroups where podMemory looks? %v", peaks)
	}

	mem = c.sampleMemory(t)
	steps = watchPhases(t, ns)
	var rss int64
	walls["pvbackup create"], rss = runMeasured(t, 30*time.Minute, pluginBin, append([]string{"create", name, "--to", ours, "--include-namespaces", ns, "--volumes", "snapshot-move"}, moverArgs()...)...)
	peaks = mem.stop()
	steps.report(t, "pvbackup create")
	logMoverTimes(t, name, ours)
	ourBytes := bucketBytes(t, ours)
	report["pvbackup create"] = fmt.Sprintf("command %d MiB + movers %s", rss>>20, memSummary(peaks, isOurs))

	veleroNS, ourNS := ns+"-velero", ns+"-pvbackup"
	for _, n := range []string{veleroNS, ourNS} {
		t.Cleanup(func() { c.deleteNamespace(t, n) })
	}
	mem = c.sampleMemory(t)
	steps = watchPhases(t, veleroNS, veleroNamespace)
	walls["velero restore"], _ = runMeasured(t, 30*time.Minute, veleroBin, append(kc, "restore", "create", name, "--from-backup", name, "--namespace-mappings", ns+":"+veleroNS, "--wait")...)
	peaks = mem.stop()
	steps.report(t, "velero restore")
	if phase := kubectl(t, time.Minute, "-n", veleroNamespace, "get", "restore", name, "-o", "jsonpath={.status.phase}"); phase != "Completed" {
		t.Fatalf("Velero's restore is %s:\n%s", phase, head(veleroCLI(t, time.Minute, "restore", "describe", name, "--details")))
	}
	report["velero restore"] = memSummary(peaks, isVelero)

	mem = c.sampleMemory(t)
	steps = watchPhases(t, ourNS)
	walls["pvbackup restore"], rss = runMeasured(t, 30*time.Minute, pluginBin, append([]string{"restore", name, "--from", ours, "--namespace-mapping", ns + ":" + ourNS}, moverArgs()...)...)
	peaks = mem.stop()
	steps.report(t, "pvbackup restore")
	report["pvbackup restore"] = fmt.Sprintf("command %d MiB + movers %s", rss>>20, memSummary(peaks, isOurs))

	for _, target := range []string{veleroNS, ourNS} {
		compareSums(t, want, c.benchSums(t, target, claims, "restored"), "restored into "+target)
		t.Logf("MEASURE objects: source %d, restored into %s %d", objects, target, c.objectCount(t, target))
	}
	keys := []string{"velero backup", "pvbackup create", "velero restore", "pvbackup restore"}
	for _, k := range keys {
		t.Logf("MEASURE %-16s wall %6.1fs  memory: %s", k, walls[k].Seconds(), report[k])
	}
	t.Logf("MEASURE bucket bytes: velero %d (%d MiB), pvbackup %d (%d MiB), ratio %.4f (goal <= 1.0)",
		veleroBytes, veleroBytes>>20, ourBytes, ourBytes>>20, float64(ourBytes)/float64(veleroBytes))
	t.Logf("MEASURE ratios (pvbackup / velero; goal <= 0.5): backup %.2f, restore %.2f",
		walls["pvbackup create"].Seconds()/walls["velero backup"].Seconds(), walls["pvbackup restore"].Seconds()/walls["velero restore"].Seconds())
}
