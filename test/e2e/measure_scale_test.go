//go:build e2e && measure

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// scaleClaims is the number of claims of TestMeasureScale (PVBACKUP_SCALE_CLAIMS, default 60).
func scaleClaims() int {
	n := 60
	if v := os.Getenv("PVBACKUP_SCALE_CLAIMS"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

// scaleParallel are the --parallel values TestMeasureScale runs (PVBACKUP_SCALE_PARALLEL, default
// the plugin's default and 8).
func scaleParallel() []string {
	if v := strings.Fields(os.Getenv("PVBACKUP_SCALE_PARALLEL")); len(v) > 0 {
		return v
	}
	return []string{fmt.Sprint(volumes.DefaultParallel), "8"}
}

// fillOnNode runs one pod on node that writes 1 MiB into each of claims (binding the
// WaitForFirstConsumer ones there).
func (c *Cluster) fillOnNode(t *testing.T, ns, node string, claims []string) {
	t.Helper()
	spec := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr.To(int64(0)),
		NodeSelector: map[string]string{corev1.LabelHostname: node}}
	script := "set -e"
	ctr := corev1.Container{Name: "fill", Image: c.Image, ImagePullPolicy: corev1.PullNever}
	for i, claim := range claims {
		dir := fmt.Sprintf("/d/%d", i)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: fmt.Sprintf("v%d", i), VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: fmt.Sprintf("v%d", i), MountPath: dir})
		script += "; head -c 1048576 /dev/urandom > " + dir + "/blob"
	}
	ctr.Command = []string{"sh", "-c", script + "; sync"}
	spec.Containers = []corev1.Container{ctr}
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "fill-" + node}, Spec: batchv1.JobSpec{BackoffLimit: ptr.To(int32(0)), Template: corev1.PodTemplateSpec{Spec: spec}}}
	if _, err := c.Kube.BatchV1().Jobs(ns).Create(context.Background(), job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestMeasureScale prints the figures of make bench-scale: a namespace of small claims of the
// three volume types spread over the lab's three nodes, backed up with snapshot-move and restored,
// at --parallel's default and 8 (scaleParallel): wall time, per-volume overhead (the run's wall time over
// the volumes minus the movers' own work) and mover pods per node.
func TestMeasureScale(t *testing.T) {
	c := NewCluster(t)
	nodes := []string{}
	a, b, cc := labNodes(t)
	nodes = append(nodes, a, b, cc)
	ns := c.Namespace(t, "e2e-scale")
	classes := []string{c.StorageClass, os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")}
	byNode := map[string][]string{}
	for i := 0; i < scaleClaims(); i++ {
		name := fmt.Sprintf("v%02d", i)
		c.classPVC(t, ns, name, classes[i%3], nil)
		node := nodes[(i/3)%3]
		byNode[node] = append(byNode[node], name)
	}
	for node, claims := range byNode {
		c.fillOnNode(t, ns, node, claims)
	}
	for node := range byNode {
		c.waitJob(t, ns, "fill-"+node, 5*time.Minute)
	}
	c.deleteJobs(t, ns) // finished pods would count as the claims' users
	loc := c.location(t)
	for _, parallel := range scaleParallel() {
		name := "scale-p" + parallel
		tctx, stopTimeline := context.WithCancel(context.Background())
		tl := c.watchTimeline(tctx, ns)
		r := runPlugin(t, 30*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
			"--volumes", "snapshot-move", "--parallel", parallel, "-o", "json"}, moverArgs()...)...)
		var m catalog.Manifest
		if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.Status != catalog.Completed {
			t.Fatalf("create %s: exit %d, %v: %s", name, r.code, err, m.Status)
		}
		stopTimeline()
		var mover, slot, open float64
		per := map[string]int{}
		for _, v := range m.Volumes {
			mover += v.MoverSeconds
			slot += v.Seconds
			open += v.MoverOpenSeconds
			per[v.MoverNode]++
		}
		tl.report(t, "the backup at --parallel "+parallel)
		t.Logf("MEASURE backup --parallel %s: %s", parallel, slots(r.took.Seconds(), slot, mover, open, parseF(parallel), len(m.Volumes)))
		t.Logf("MEASURE backup of %d claims, snapshot-move, --parallel %s: %s, movers per node %s",
			len(m.Volumes), parallel, overhead(r.took.Seconds(), mover, parseF(parallel), len(m.Volumes)), perNode(per))
		c.noLeftovers(t, name)

		copyNS := ns + "-copy" + parallel
		t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
		tctx, stopTimeline = context.WithCancel(context.Background())
		tl = c.watchTimeline(tctx, copyNS)
		r = runPlugin(t, 30*time.Minute, append([]string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + copyNS, "--parallel", parallel, "-o", "json"}, moverArgs()...)...)
		var res restore.Result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("restore %s: exit %d, %v", name, r.code, err)
		}
		stopTimeline()
		per, mover, slot = map[string]int{}, 0, 0
		for _, v := range res.Volumes {
			per[v.MoverNode]++
			mover += v.MoverSeconds
			slot += v.Seconds
		}
		tl.report(t, "the restore at --parallel "+parallel)
		t.Logf("MEASURE restore --parallel %s: %s", parallel, slots(r.took.Seconds(), slot, mover, 0, parseF(parallel), len(res.Volumes)))
		t.Logf("MEASURE restore of %d claims, --parallel %s: %s, movers per node %s",
			len(res.Volumes), parallel, overhead(r.took.Seconds(), mover, parseF(parallel), len(res.Volumes)), perNode(per))
		c.noLeftovers(t, name)
	}
}

// overhead writes a run's wall time and what it cost per volume beyond the movers' own work:
// amortised, (wall - movers' work / parallel) / volumes — what a volume adds to the run's wall
// time — and per slot, wall x parallel / volumes - the movers' mean — how long a mover slot
// spends on each volume's objects (snapshot, claim, Job, pod) besides the mover itself.
func overhead(wall, mover, parallel float64, volumes int) string {
	n := float64(volumes)
	return fmt.Sprintf("wall %.1fs, movers' own work %.1fs in all, per-volume overhead %.2fs amortised ((wall - work/parallel) / volumes), %.2fs per slot (wall x parallel / volumes - work mean)",
		wall, mover, (wall-mover/parallel)/n, wall*parallel/n-mover/n)
}

// slots writes how the run's slots (wall x parallel) were spent: in volumes' turns (the engine's
// time per volume, of which the movers' own work and, of that, opening the repository), and idle
// (the run's start and end, and slots without a volume).
func slots(wall, inTurns, mover, open, parallel float64, volumes int) string {
	n := float64(volumes)
	return fmt.Sprintf("slots %.1fs (wall x parallel): volumes' turns %.1fs (%.2fs each, of which mover %.2fs, repository open %.2fs), idle %.1fs",
		wall*parallel, inTurns, inTurns/n, mover/n, open/n, wall*parallel-inTurns)
}

func parseF(s string) float64 {
	var f float64
	fmt.Sscan(s, &f)
	return f
}

func perNode(m map[string]int) string {
	var s []string
	for n, k := range m {
		s = append(s, fmt.Sprintf("%s=%d", n, k))
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// waitJob waits until a Job has succeeded.
func (c *Cluster) waitJob(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(c.Kube.BatchV1().Jobs(ns), c.Kube, kube.Named(name))
	_, err := watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(ev watch.Event) (bool, error) {
		j, ok := ev.Object.(*batchv1.Job)
		if ok && j.Status.Failed > 0 {
			return false, fmt.Errorf("job %s/%s failed", ns, name)
		}
		return ok && j.Status.Succeeded > 0, nil
	})
	if err != nil {
		t.Fatalf("job %s/%s: %v\n%s", ns, name, err, c.Diagnose(ns))
	}
}
