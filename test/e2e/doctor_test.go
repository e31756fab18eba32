//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	authnv1 "k8s.io/api/authentication/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// doctorRun runs `doctor -o json` and returns its exit code and report.
func doctorRun(t *testing.T, timeout time.Duration, args ...string) (int, *doctor.Report) {
	t.Helper()
	r := runPlugin(t, timeout, append([]string{"doctor", "-o", "json"}, args...)...)
	var rep doctor.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("doctor printed no report (exit %d): %v\nstdout:\n%s", r.code, err, r.stdout)
	}
	for _, c := range rep.Checks {
		t.Logf("  %-55s %-4s %6.2fs  %s", c.Check, c.Status, c.Seconds, c.Detail)
	}
	t.Logf("doctor: %s in %.2fs (exit %d, wall %s)", rep.Status, rep.Seconds, r.code, r.took.Round(time.Millisecond))
	return r.code, &rep
}

// check returns the named result, failing the test when it is missing.
func check(t *testing.T, rep *doctor.Report, name string) doctor.Result {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Check == name {
			return c
		}
	}
	t.Fatalf("no check %q in the report", name)
	return doctor.Result{}
}

func wantVerdict(t *testing.T, code int, rep *doctor.Report, name string, status doctor.Status, detail string) {
	t.Helper()
	c := check(t, rep, name)
	if c.Status != status || !strings.Contains(c.Detail, detail) {
		t.Errorf("%s: %s %q, want %s naming %q", name, c.Status, c.Detail, status, detail)
	}
	if status == doctor.Fail && code != 1 {
		t.Errorf("exit %d, want 1 for a failed check", code)
	}
}

// noProbeLeft fails when a probe namespace of doctor is still there.
func (c *Cluster) noProbeLeft(t *testing.T, rep *doctor.Report) {
	t.Helper()
	for _, r := range rep.Checks {
		if r.Check == "probe: cleanup" && r.Status != doctor.OK {
			t.Errorf("probe cleanup: %+v", r)
		}
	}
}

// TestDoctorHealthy: the local cluster passes every check and the live probe, within seconds.
func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor")
	code, rep := doctorRun(t, 5*time.Minute, append([]string{"-n", ns, "--location", c.location(t), "--storage-class", c.StorageClass}, moverArgs()...)...)
	if code != 0 || rep.Status != doctor.OK {
		t.Fatalf("a healthy cluster: exit %d, status %s: %s", code, rep.Status, rep.Summary())
	}
	for _, name := range []string{"snapshot controller", "snapshot class for dir.csi.pvbackup.io", "rights in " + ns, "location writable",
		"pod security in " + ns, "probe " + c.StorageClass + ": restore from the snapshot", "probe: cleanup"} {
		check(t, rep, name)
	}
	if ctl := check(t, rep, "snapshot controller"); !strings.Contains(ctl.Detail, doctor.ControllerLease) && !strings.Contains(ctl.Detail, "ready") {
		t.Errorf("snapshot controller found how? %q", ctl.Detail)
	}
	left, err := volumes.Leftovers(context.Background(), c.Kube, c.Snap, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range left {
		if strings.HasPrefix(o.Name, doctor.ProbePrefix) || strings.HasPrefix(o.Namespace, doctor.ProbePrefix) {
			t.Errorf("left behind: %s", o)
		}
	}
}

// TestDoctorPreflightRefusesPrivilegedMoverInRestrictedNamespace: doctor names Pod Security, and
// create refuses the plan before it creates anything, in well under 2 s.
func TestDoctorPreflightRefusesPrivilegedMoverInRestrictedNamespace(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-psa")
	c.labelNamespace(t, ns, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	start := time.Now()
	code, rep := doctorRun(t, 2*time.Minute, append([]string{"-n", ns}, moverArgs()...)...)
	wantVerdict(t, code, rep, "pod security in "+ns, doctor.Fail, `violates PodSecurity "restricted`)
	t.Logf("verdict in %s", time.Since(start).Round(time.Millisecond))

	c.PVC(t, ns, "data", "16Mi", nil)
	loc := c.location(t)
	r := runPlugin(t, 2*time.Minute, append([]string{"create", "psa-" + randomSuffix(), "--to", loc, "--include-namespaces", ns}, moverArgs()...)...)
	if r.code != 1 || !strings.Contains(r.stderr, "preflight: pod security in "+ns) || !strings.Contains(r.stderr, "nothing was created") {
		t.Fatalf("create: exit %d, want 1 naming the preflight check\nstderr:\n%s", r.code, r.stderr)
	}
	if jobs, err := c.Kube.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{}); err != nil || len(jobs.Items) > 0 {
		t.Errorf("create made Jobs after a refused preflight: %v %v", err, jobs)
	}
	// The preflight's own time, as create reports it.
	if m := regexp.MustCompile(`preflight checks.*?(\d+(\.\d+)?m?s)\)`).FindStringSubmatch(r.stderr); m != nil {
		t.Logf("create's preflight took %s", m[1])
	}
	// Without --mover-privileged the mover is restricted-compliant: the preflight passes, measured.
	r = runPlugin(t, 3*time.Minute, "create", "psa-ok-"+randomSuffix(), "--to", loc, "--include-namespaces", ns,
		"--mover-image", moverImage(), "--mover-pull-policy", "Never", "--volumes", "none")
	if r.code != 0 {
		t.Fatalf("create without volumes: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`preflight checks \((\d+) checks in ([0-9.]+m?s)\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("create printed no preflight line:\n%s", r.stderr)
	}
	took, err := time.ParseDuration(m[2])
	if err != nil || took > 2*time.Second {
		t.Errorf("preflight took %s (%v), want well under 2s", m[2], err)
	}
	t.Logf("create's preflight: %s checks in %s", m[1], m[2])
}

// TestDoctorPreflightTimeWithVolumes measures create's preflight with a volume to move.
func TestDoctorPreflightTimeWithVolumes(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-pre")
	c.PVC(t, ns, "data", "16Mi", nil)
	c.RunJob(t, ns, "writer", "data", 2*time.Minute, "sh", "-c", "echo hello > /data/hello")
	r := runPlugin(t, 5*time.Minute, append([]string{"create", "pre-" + randomSuffix(), "--to", c.location(t), "--include-namespaces", ns}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`preflight checks \((\d+) checks in ([0-9.]+m?s)\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("create printed no preflight line:\n%s", r.stderr)
	}
	took, err := time.ParseDuration(m[2])
	if err != nil || took > 2*time.Second {
		t.Errorf("preflight took %s (%v), want well under 2s", m[2], err)
	}
	t.Logf("create's preflight with a snapshot-move volume: %s checks in %s", m[1], m[2])
}

// TestDoctorQuotaTooSmall: a ResourceQuota that cannot take the mover pod is named.
func TestDoctorQuotaTooSmall(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-quota")
	_, err := c.Kube.CoreV1().ResourceQuotas(ns).Create(context.Background(), &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "tiny"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsMemory: resource.MustParse("64Mi")}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.waitQuotaStatus(t, ns, "tiny")
	code, rep := doctorRun(t, 2*time.Minute, append([]string{"-n", ns}, moverArgs()...)...)
	wantVerdict(t, code, rep, "resource quota in "+ns, doctor.Fail, "tiny")
	if d := check(t, rep, "resource quota in "+ns).Detail; !strings.Contains(d, "requests.memory") {
		t.Errorf("quota detail %q does not name requests.memory", d)
	}
}

// TestDoctorSnapshotClassOfAnotherDriver: --snapshot-class naming a class of another driver.
func TestDoctorSnapshotClassOfAnotherDriver(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-vsc")
	name := "e2e-other-" + randomSuffix()
	other := "other-" + randomSuffix() + ".csi.example.com"
	ctx := context.Background()
	if _, err := c.Snap.SnapshotV1().VolumeSnapshotClasses().Create(ctx, &snapv1.VolumeSnapshotClass{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Driver: other, DeletionPolicy: snapv1.VolumeSnapshotContentDelete,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Snap.SnapshotV1().VolumeSnapshotClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	code, rep := doctorRun(t, 2*time.Minute, append([]string{"-n", ns, "--storage-class", c.StorageClass, "--probe=false",
		"--snapshot-class", name, "--volumes", "snapshot-move"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "snapshot class for dir.csi.pvbackup.io", doctor.Fail, name+" is for driver "+other)
}

// TestDoctorStorageClassWithoutDriver: a StorageClass whose provisioner is not installed fails at
// once, and is not probed (a PVC would only stay Pending).
func TestDoctorStorageClassWithoutDriver(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-sc")
	name := "e2e-nodriver-" + randomSuffix()
	ctx := context.Background()
	if _, err := c.Kube.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "missing-" + randomSuffix() + ".csi.example.com",
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Kube.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	start := time.Now()
	code, rep := doctorRun(t, 2*time.Minute, append([]string{"-n", ns, "--storage-class", name}, moverArgs()...)...)
	wantVerdict(t, code, rep, "storage class "+name, doctor.Fail, "is not installed")
	wantVerdict(t, code, rep, "probe "+name, doctor.Fail, "not probed")
	if took := time.Since(start); took > time.Minute {
		t.Errorf("verdict took %s", took)
	}
	c.noProbeLeft(t, rep)
}

// TestDoctorCallerWithoutRights: a ServiceAccount token with a namespaced Role that only reads pods.
func TestDoctorCallerWithoutRights(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-rbac")
	kubeconfig := c.serviceAccountKubeconfig(t, ns, "reader", []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}})
	code, rep := doctorRun(t, 2*time.Minute, append([]string{"--kubeconfig", kubeconfig, "-n", ns, "--probe=false"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "rights in "+ns, doctor.Fail, "create jobs.batch (create, restore: mover Jobs)")
	if d := check(t, rep, "rights in "+ns).Detail; !strings.Contains(d, "system:serviceaccount:"+ns+":reader") {
		t.Errorf("rights detail %q does not name the caller", d)
	}
	wantVerdict(t, code, rep, "rights (cluster)", doctor.Fail, "get persistentvolumes")
}

// TestDoctorLocationPodsCannotReach: the location works from this machine (a loopback port
// forwarded to the S3 store) but not from pods, where 127.0.0.1 is the pod itself.
func TestDoctorLocationPodsCannotReach(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-net")
	u, err := url.Parse(c.location(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	target, err := url.Parse(q.Get("endpoint"))
	if err != nil {
		t.Fatal(err)
	}
	q.Set("endpoint", "http://"+forward(t, target.Host))
	u.RawQuery = q.Encode()
	start := time.Now()
	code, rep := doctorRun(t, 4*time.Minute, append([]string{"-n", ns, "--location", u.String(), "--storage-class", c.StorageClass, "--timeout", "1m"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "location writable", doctor.OK, "marker")
	wantVerdict(t, code, rep, "probe "+c.StorageClass+": mover writes and reaches the location", doctor.Fail, "from inside the cluster")
	t.Logf("verdict in %s", time.Since(start).Round(time.Millisecond))
	c.noProbeLeft(t, rep)
}

// TestDoctorMoverImageMissing: the probe's mover names ImagePullBackOff.
func TestDoctorMoverImageMissing(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-image")
	code, rep := doctorRun(t, 4*time.Minute, "-n", ns, "--location", c.location(t), "--storage-class", c.StorageClass, "--timeout", "1m",
		"--mover-image", "localhost/pvbackup/no-such-mover:"+randomSuffix(), "--mover-pull-policy", "IfNotPresent", "--mover-privileged")
	wantVerdict(t, code, rep, "probe "+c.StorageClass+": mover writes and reaches the location", doctor.Fail, "ImagePullBackOff")
	c.noProbeLeft(t, rep)
}

// TestDoctorSnapshotControllerStopped stops the cluster's snapshot controller (a host process,
// found through its leader-election Lease) and restarts it in Cleanup. It changes the whole
// cluster, so it is not parallel (Go runs it before the parallel tests) and keeps the window
// short: the Lease expires 15 s after its last renewal, then doctor runs once.
func TestDoctorSnapshotControllerStopped(t *testing.T) {
	c := NewCluster(t)
	ctx := context.Background()
	leases := c.Kube.CoordinationV1().Leases("kube-system")
	if _, err := leases.Get(ctx, doctor.ControllerLease, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		// A cluster started before hack/cluster.sh ran the controller with leader election.
		t.Log("the snapshot controller runs without leader election: restarting it with hack/cluster.sh")
		clusterScript(t, "snapshot-controller", "stop")
		clusterScript(t, "snapshot-controller", "start")
		c.waitLeaseRenewedAfter(t, time.Now().Add(-time.Second))
	}
	ns := c.Namespace(t, "e2e-doctor-ctl")
	stopped := time.Now()
	clusterScript(t, "snapshot-controller", "stop")
	t.Cleanup(func() {
		clusterScript(t, "snapshot-controller", "start")
		c.waitLeaseRenewedAfter(t, time.Now().Add(-time.Second))
		t.Logf("snapshot controller back after %s", time.Since(stopped).Round(time.Millisecond))
	})
	l, err := leases.Get(ctx, doctor.ControllerLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The Lease says the controller is gone once its duration has passed since the last renewal:
	// a deadline, not an event, so a timer is what fits.
	expires := l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 15))*time.Second + 500*time.Millisecond)
	time.Sleep(time.Until(expires))
	code, rep := doctorRun(t, time.Minute, append([]string{"-n", ns, "--probe=false"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "snapshot controller", doctor.Fail, "the controller is not running")
	t.Logf("verdict %s after the controller stopped", time.Since(stopped).Round(time.Millisecond))
}

// clusterScript runs hack/cluster.sh with args.
func clusterScript(t *testing.T, args ...string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "hack", "cluster.sh")
	out, err := exec.Command(script, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("hack/cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitLeaseRenewedAfter watches the controller's Lease until it is renewed after t0.
func (c *Cluster) waitLeaseRenewedAfter(t *testing.T, t0 time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leases := c.Kube.CoordinationV1().Leases("kube-system")
	sel := "metadata.name=" + doctor.ControllerLease
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			o.FieldSelector = sel
			return leases.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return leases.Watch(ctx, o)
		},
	}
	_, err := watchtools.UntilWithSync(ctx, lw, &coordv1.Lease{}, nil, func(ev watch.Event) (bool, error) {
		l, ok := ev.Object.(*coordv1.Lease)
		return ok && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(t0), nil
	})
	if err != nil {
		t.Fatalf("the snapshot controller's Lease was not renewed within a minute: %v", err)
	}
}

func (c *Cluster) labelNamespace(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	obj, err := c.Kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range labels {
		obj.Labels[k] = v
	}
	if _, err := c.Kube.CoreV1().Namespaces().Update(context.Background(), obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitQuotaStatus waits until the quota controller has computed the quota's status.
func (c *Cluster) waitQuotaStatus(t *testing.T, ns, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rq := c.Kube.CoreV1().ResourceQuotas(ns)
	sel := "metadata.name=" + name
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			o.FieldSelector = sel
			return rq.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return rq.Watch(ctx, o)
		},
	}
	if _, err := watchtools.UntilWithSync(ctx, lw, &corev1.ResourceQuota{}, nil, func(ev watch.Event) (bool, error) {
		q, ok := ev.Object.(*corev1.ResourceQuota)
		return ok && len(q.Status.Hard) > 0, nil
	}); err != nil {
		t.Fatalf("quota %s/%s has no status: %v", ns, name, err)
	}
}

// serviceAccountKubeconfig makes a ServiceAccount bound to a Role with rules in ns and writes a
// kubeconfig that authenticates with a token of it.
func (c *Cluster) serviceAccountKubeconfig(t *testing.T, ns, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Kube.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.LoadFromFile(env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	cur := admin.Contexts[admin.CurrentContext]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = admin.Clusters[cur.Cluster]
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa", Namespace: ns}
	cfg.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// forward listens on a loopback port and forwards each connection to target: reachable from this
// machine only (pods' 127.0.0.1 is their own).
func forward(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in) }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return l.Addr().String()
}
