//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
)

// Where each mover runs (docs/volumes.md), on the three-node lab: a in zone-a, b and c in zone-b.

// backupJSON runs a backup of a namespace and returns its manifest.
func (c *Cluster) backupJSON(t *testing.T, ns, loc, name, mode string, extra ...string) catalog.Manifest {
	t.Helper()
	args := append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", mode, "-o", "json", "--parallel", "4"}, extra...)
	r := runPlugin(t, 5*time.Minute, append(args, moverArgs()...)...)
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("create %s: exit %d, manifest: %v\n%s\n%s", name, r.code, err, r.stdout, c.Diagnose(ns))
	}
	return m
}

// TestPlacementBackup: an fs mover of a zonal disk in use runs on its pod's node; the mover of an
// unmounted zonal disk lands in its zone; the mover of a csi-local claim's snapshot lands on the
// node where the snapshot can be made into a claim (never Pending elsewhere).
func TestPlacementBackup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	a, b, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-place")
	zonal, local := os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	write := []string{"sh", "-c", "echo placed > /data/token && sync"}
	for _, v := range []struct{ claim, class, node string }{{"busy", zonal, b}, {"idle", zonal, a}, {"local", local, cc}} {
		c.classPVC(t, ns, v.claim, v.class, nil)
		c.runJob(t, ns, "write-"+v.claim, v.claim, 2*time.Minute, onNode(v.node), write)
	}
	c.waitPod(t, ns, c.startPod(t, ns, "holder", "busy", b, "sleep", "3600"), 2*time.Minute, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	loc := c.location(t)
	for _, tc := range []struct {
		mode string
		want map[string][]string // claim → nodes its mover may run on
	}{
		{"fs", map[string][]string{"busy": {b}, "idle": {a}, "local": {cc}}},
		{"snapshot-move", map[string][]string{"busy": {b, cc}, "idle": {a}, "local": {cc}}},
	} {
		name := "place-" + tc.mode + "-" + randomSuffix()
		m := c.backupJSON(t, ns, loc, name, tc.mode, "--include-resources", "persistentvolumeclaims")
		if m.Status != catalog.Completed || len(m.Volumes) != 3 {
			t.Fatalf("%s backup %s with %d volumes: %+v\n%s", tc.mode, m.Status, len(m.Volumes), m.Volumes, c.Diagnose(ns))
		}
		for _, v := range m.Volumes {
			if v.Status != catalog.VolumeCompleted || v.Files < 1 || !contains(tc.want[v.PVC], v.MoverNode) {
				t.Errorf("%s mover of %s: %s on node %q (%s), want Completed on one of %v", tc.mode, v.PVC, v.Status, v.MoverNode, v.Error, tc.want[v.PVC])
			}
		}
		c.noLeftovers(t, name)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// placedApp is a workload of the restore placement test: it writes its namespace/pod name into
// its claim once, and prints what the claim holds when it starts.
func (c *Cluster) placedPod(app string, mutate func(*corev1.PodSpec)) corev1.PodTemplateSpec {
	spec := corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: c.Image, ImagePullPolicy: corev1.PullNever,
			Command:      []string{"sh", "-c", `[ -f /data/owner ] || { echo "$NS/$(hostname)" > /data/owner; sync; }; cat /data/owner; trap 'exit 0' TERM; while true; do sleep 1; done`},
			Env:          []corev1.EnvVar{{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}},
		TerminationGracePeriodSeconds: ptr.To(int64(1)),
	}
	if mutate != nil {
		mutate(&spec)
	}
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}}, Spec: spec}
}

// placedApps makes a Deployment pinned to node pin with a csi-local claim, and a 2-replica
// StatefulSet with csi-local claims whose replicas a required anti-affinity keeps on different nodes.
func (c *Cluster) placedApps(t *testing.T, ns, pin string) {
	t.Helper()
	ctx := context.Background()
	local := os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")
	c.classPVC(t, ns, "pinned", local, nil)
	tpl := c.placedPod("pinned", onNode(pin))
	tpl.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pinned"}}}}
	if _, err := c.Kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pinned"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}, Template: tpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	spread := c.placedPod("kv", func(p *corev1.PodSpec) {
		p.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{
			{TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kv"}}}}}}
	})
	claim := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}, StorageClassName: &local,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}}}}
	if _, err := c.Kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "kv"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(2)), ServiceName: "kv", PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "kv"}}, Template: spread,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{claim}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitPodsReady(t, ns, 3, 3*time.Minute)
}

// placedOwners maps each app pod of ns (the Deployment's by its app label) to its node and to
// what its claim held when it started.
func (c *Cluster) placedOwners(t *testing.T, ns string) (nodes, owners map[string]string) {
	t.Helper()
	pods, err := c.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app"})
	if err != nil {
		t.Fatal(err)
	}
	nodes, owners = map[string]string{}, map[string]string{}
	for _, p := range pods.Items {
		key := p.Name
		if p.Labels["app"] == "pinned" {
			key = "pinned"
		}
		nodes[key], owners[key] = p.Spec.NodeName, c.firstLogLine(t, ns, p.Name)
	}
	return nodes, owners
}

// firstLogLine follows a pod's log to its first line: a Ready pod may not have printed yet (the
// owner read as "" failed CI once, while the backup a moment later held it).
func (c *Cluster) firstLogLine(t *testing.T, ns, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rc, err := c.Kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs of pod %s/%s: %v", ns, name, err)
	}
	defer rc.Close()
	line, err := bufio.NewReader(rc).ReadString('\n')
	if err != nil {
		t.Fatalf("first log line of pod %s/%s: %v (read %q)", ns, name, err, line)
	}
	return strings.TrimSpace(line)
}

// TestPlacementRestore: restored csi-local claims are filled where the workloads that use them
// can run — a Deployment pinned to a node, a StatefulSet whose replicas must be on different
// nodes — and every pod then runs on its node with its own data; the same with the claims'
// class mapped from csi-local to csi-zonal.
func TestPlacementRestore(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	_, _, cc := labNodes(t)
	ns := c.Namespace(t, "e2e-place-rs")
	c.placedApps(t, ns, cc)
	_, want := c.placedOwners(t, ns)
	loc := c.location(t)
	name := "place-rs-" + randomSuffix()
	if m := c.backupJSON(t, ns, loc, name, "fs"); m.Status != catalog.Completed {
		t.Fatalf("backup %s: %+v", m.Status, m.Volumes)
	}
	for _, class := range []string{"", os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS")} {
		copyNS := c.Namespace(t, "e2e-place-copy")
		args := []string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + copyNS, "-o", "json"}
		if class != "" {
			args = append(args, "--storage-class-mapping", os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")+":"+class)
		}
		r := runPlugin(t, 5*time.Minute, append(args, moverArgs()...)...)
		var res restore.Result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 0 {
			t.Fatalf("restore into %s: exit %d, %v\n%s\n%s", copyNS, r.code, err, r.stdout, c.Diagnose(copyNS))
		}
		for _, v := range res.Volumes {
			if v.Action != restore.Restored || (v.PVC == "pinned" && v.MoverNode != cc) {
				t.Errorf("class %q: volume %s: %s on node %q (%s); want restored (pinned: on %s)", class, v.PVC, v.Action, v.MoverNode, v.Reason, cc)
			}
		}
		c.waitPodsReady(t, copyNS, 3, 3*time.Minute)
		nodes, got := c.placedOwners(t, copyNS)
		if nodes["pinned"] != cc || nodes["kv-0"] == "" || nodes["kv-0"] == nodes["kv-1"] {
			t.Errorf("class %q: pods on %v, want pinned on %s and kv-0, kv-1 on two nodes", class, nodes, cc)
		}
		for pod, w := range want {
			if got[pod] != w {
				t.Errorf("class %q: pod %s of %s found %q in its claim, want the backed-up %q", class, pod, copyNS, got[pod], w)
			}
		}
	}
}
