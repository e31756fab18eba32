//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	authnv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// doctorRun runs `doctor -o json` and returns its exit code and report.
func doctorRun(t *testing.T, timeout time.Duration, args ...string) (int, *doctor.Report) {
	t.Helper()
	code, rep, _ := doctorRunTimed(t, timeout, args...)
	return code, rep
}

// doctorRunTimed is doctorRun with the command's wall time.
func doctorRunTimed(t *testing.T, timeout time.Duration, args ...string) (int, *doctor.Report, time.Duration) {
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
	return r.code, &rep, r.took
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

// noProbeLeft fails when the probe's cleanup failed or anything labelled by doctor's probe of this
// report is still in the cluster: its namespace, or any object labelled with its run.
func (c *Cluster) noProbeLeft(t *testing.T, rep *doctor.Report) {
	t.Helper()
	for _, r := range rep.Checks {
		if r.Check == "probe: cleanup" && r.Status != doctor.OK {
			t.Errorf("probe cleanup: %+v", r)
		}
	}
	m := regexp.MustCompile(doctor.ProbePrefix + `([0-9a-f]+)`).FindStringSubmatch(check(t, rep, "probe: namespace").Detail)
	if m == nil {
		t.Fatalf("the probe named no namespace: %+v", check(t, rep, "probe: namespace"))
	}
	c.probeGone(t, m[1])
}

// probeGone waits, up to a minute, until namespace pvb-doctor-<id>, every object labelled with the
// probe's run, and the PVs and VolumeSnapshotContents of that namespace are gone (the last two are
// deleted by their controllers just after the namespace), and fails naming what is left.
func (c *Cluster) probeGone(t *testing.T, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := doctor.ProbePrefix + id
	var left []string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		left = nil
		if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			left = append(left, fmt.Sprintf("Namespace %s (%v)", ns, err))
		}
		objs, err := volumes.Leftovers(ctx, c.Kube, c.Snap, "doctor-"+id)
		if err != nil {
			return false, err
		}
		for _, o := range objs {
			left = append(left, o.String())
		}
		pvs, err := c.Kube.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, pv := range pvs.Items {
			if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == ns {
				left = append(left, "PersistentVolume "+pv.Name)
			}
		}
		contents, err := c.Snap.SnapshotV1().VolumeSnapshotContents().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, vc := range contents.Items {
			if vc.Spec.VolumeSnapshotRef.Namespace == ns {
				left = append(left, "VolumeSnapshotContent "+vc.Name)
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		t.Errorf("left behind by the probe, a minute later: %v (%v)", left, err)
	}
}

// TestDoctorHealthy: the local cluster passes every static check within a second or two, then the
// live probe, each step timed; nothing of the probe is left.
func TestDoctorHealthy(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor")
	loc := c.location(t)
	code, rep, took := doctorRunTimed(t, time.Minute, append([]string{"-n", ns, "--location", loc, "--probe=false"}, moverArgs()...)...)
	t.Logf("MEASURE doctor static checks (no probe): %s wall for the whole command, %.2fs in the report, %d checks", took.Round(time.Millisecond), rep.Seconds, len(rep.Checks))
	c.wantHealthy(t, code, rep)

	code, rep, took = doctorRunTimed(t, 5*time.Minute, append([]string{"-n", ns, "--location", loc, "--storage-class", c.StorageClass}, moverArgs()...)...)
	c.wantHealthy(t, code, rep)
	for _, name := range []string{"snapshot class for dir.csi.pvbackup.io", "rights in " + ns, "location writable",
		"pod security in " + ns, "probe " + c.StorageClass + ": restore from the snapshot", "probe: cleanup"} {
		check(t, rep, name)
	}
	var steps []string
	for _, r := range rep.Checks {
		if strings.HasPrefix(r.Check, "probe") {
			steps = append(steps, fmt.Sprintf("%s %.2fs", strings.TrimPrefix(r.Check, "probe "), r.Seconds))
		}
	}
	t.Logf("MEASURE doctor with the live probe of %s: %s wall; steps: %s", c.StorageClass, took.Round(time.Millisecond), strings.Join(steps, ", "))
	c.noProbeLeft(t, rep)
}

// wantHealthy accepts only ok verdicts, but one: a snapshot controller started by an older
// hack/cluster.sh runs without leader election, so no Lease shows it (warn, said in the log).
func (c *Cluster) wantHealthy(t *testing.T, code int, rep *doctor.Report) {
	t.Helper()
	_, err := c.Kube.CoordinationV1().Leases("kube-system").Get(context.Background(), doctor.ControllerLease, metav1.GetOptions{})
	noLease := apierrors.IsNotFound(err)
	for _, r := range rep.Checks {
		switch {
		case r.Status == doctor.OK:
		case r.Check == "snapshot controller" && r.Status == doctor.Warn && noLease:
			t.Logf("the snapshot controller runs without leader election (a cluster from an older hack/cluster.sh): doctor cannot see it")
		default:
			t.Errorf("a healthy cluster: %s is %s: %s (%s)", r.Check, r.Status, r.Detail, r.Fix)
		}
	}
	if rep.Status == doctor.Fail || code == 1 {
		t.Fatalf("a healthy cluster: exit %d, status %s: %s", code, rep.Status, rep.Summary())
	}
	if ctl := check(t, rep, "snapshot controller"); !noLease && !strings.Contains(ctl.Detail, doctor.ControllerLease) && !strings.Contains(ctl.Detail, "ready") {
		t.Errorf("snapshot controller found how? %q", ctl.Detail)
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
	if !strings.Contains(r.stderr, `violates PodSecurity "restricted`) {
		t.Errorf("create's refusal does not give admission's reason:\n%s", r.stderr)
	}
	// Without --mover-privileged the mover is restricted-compliant: the preflight passes, measured.
	r = runPlugin(t, 3*time.Minute, "create", "psa-ok-"+randomSuffix(), "--to", loc, "--include-namespaces", ns,
		"--mover-image", moverImage(), "--mover-pull-policy", "Never", "--volumes", "none")
	if r.code != 0 {
		t.Fatalf("create without volumes: exit %d\n%s", r.code, r.stderr)
	}
	n, took := preflightTime(t, r.stderr)
	t.Logf("MEASURE create's preflight, resources only (--volumes none): %d checks in %s", n, took)
}

// preflightTime reads create's preflight line (" ✓ preflight checks (N checks in D)") and fails
// when it took 2 s or more.
func preflightTime(t *testing.T, stderr string) (int, time.Duration) {
	t.Helper()
	m := regexp.MustCompile(`preflight checks \((\d+) checks in ([0-9.]+m?s)\)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("create printed no preflight line:\n%s", stderr)
	}
	took, err := time.ParseDuration(m[2])
	if err != nil || took >= 2*time.Second {
		t.Errorf("preflight took %s (%v), want well under 2s", m[2], err)
	}
	n, _ := strconv.Atoi(m[1])
	return n, took
}

// TestDoctorPreflightTimeWithVolumes measures create's preflight with a volume to move, then
// checks doctor's key and repository checks on the location that backup made.
func TestDoctorPreflightTimeWithVolumes(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-doctor-pre")
	c.PVC(t, ns, "data", "16Mi", nil) // empty: the preflight and the repository are what is measured
	c.waitBound(t, ns, "data")
	loc := c.location(t)
	r := runPlugin(t, 5*time.Minute, append([]string{"create", "pre-" + randomSuffix(), "--to", loc, "--include-namespaces", ns}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s", r.code, r.stderr)
	}
	n, took := preflightTime(t, r.stderr)
	t.Logf("MEASURE create's preflight with a snapshot-move volume: %d checks in %s", n, took)

	// The location now has a key and a repository for ns: doctor unwraps the key with the
	// password and opens ns's repository with ns's derived key.
	code, rep, wall := doctorRunTimed(t, time.Minute, append([]string{"-n", ns, "--location", loc, "--probe=false"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "location key", doctor.OK, "the password unwraps keys/location.age")
	wantVerdict(t, code, rep, "repositories", doctor.OK, "each namespace's key opens its repository: "+ns)
	t.Logf("MEASURE doctor static checks on a location with a key and a repository (one scrypt unwrap, one Kopia open): %s wall, %.2fs in the report", wall.Round(time.Millisecond), rep.Seconds)
	// A wrong password is TestLocation's (internal/doctor): here it would only cost another unwrap.

	// A second backup, the usual case: the location has its key and the namespace's repository
	// (snapshot mode: quick, no mover; the kept VolumeSnapshot goes with the namespace).
	r = runPlugin(t, 3*time.Minute, append([]string{"create", "pre2-" + randomSuffix(), "--to", loc, "--include-namespaces", ns, "--volumes", "snapshot"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("second create: exit %d\n%s", r.code, r.stderr)
	}
	n, took = preflightTime(t, r.stderr)
	t.Logf("MEASURE create's preflight of a second backup (the location holds the key and the namespace's repository): %d checks in %s", n, took)
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
	// Cluster-wide rights are for snapshots only, which --volumes=auto can do without (fs).
	wantVerdict(t, code, rep, "rights (cluster)", doctor.Warn, "get persistentvolumes")
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
// short: hack/cluster.sh runs the controller with ReleaseLeaderElectionOnExit, so a stopped
// controller gives its Lease up at once; doctor runs once, then the controller starts again.
func TestDoctorSnapshotControllerStopped(t *testing.T) {
	c := NewCluster(t)
	ctx := context.Background()
	leases := c.Kube.CoordinationV1().Leases("kube-system")
	if _, err := leases.Get(ctx, doctor.ControllerLease, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		// A cluster started before hack/cluster.sh ran the controller with leader election.
		t.Log("the snapshot controller runs without leader election: restarting it with hack/cluster.sh")
		clusterScript(t, "snapshot-controller", "stop")
		clusterScript(t, "snapshot-controller", "start")
		c.waitLease(t, "renewed", time.Minute, func(l *coordv1.Lease) bool { return leaseHeld(l) })
	}
	plugin(t) // built before the window opens
	stopped := time.Now()
	clusterScript(t, "snapshot-controller", "stop")
	t.Cleanup(func() {
		clusterScript(t, "snapshot-controller", "start")
		c.waitLease(t, "taken again", time.Minute, func(l *coordv1.Lease) bool { return leaseHeld(l) && l.Spec.RenewTime.After(stopped) })
		t.Logf("MEASURE snapshot controller stopped for %s (stop, doctor's verdict, start, Lease taken again)", time.Since(stopped).Round(time.Millisecond))
	})
	l, err := leases.Get(ctx, doctor.ControllerLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Released at once by a controller that gives it up on exit; else it expires its duration
	// after the last renewal.
	expires := time.Until(l.Spec.RenewTime.Add(time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 15))*time.Second + 500*time.Millisecond))
	if !leaseHeld(l) {
		expires = 0
	}
	c.waitLease(t, "released or expired", expires, func(l *coordv1.Lease) bool { return !leaseHeld(l) })
	// Namespace default: doctor only reads and dry-runs there, and no namespace of the test's
	// own has to be deleted (waited for) before the parallel tests start.
	code, rep := doctorRun(t, time.Minute, append([]string{"-n", "default", "--probe=false"}, moverArgs()...)...)
	wantVerdict(t, code, rep, "snapshot controller", doctor.Fail, "the controller is not running")
	t.Logf("MEASURE verdict %s after the controller was stopped", time.Since(stopped).Round(time.Millisecond))
}

// leaseHeld: the Lease names a holder (a controller that exits with ReleaseOnCancel clears it).
func leaseHeld(l *coordv1.Lease) bool {
	return l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && l.Spec.RenewTime != nil
}

// waitLease watches the controller's Lease until cond holds. A timeout of 0 does not wait; when
// the timeout passes, that is the end of the wait only for "expired" (a Lease's deadline), else a
// failure.
func (c *Cluster) waitLease(t *testing.T, what string, timeout time.Duration, cond func(*coordv1.Lease) bool) {
	t.Helper()
	if timeout <= 0 {
		return
	}
	err := waitNamed(c.Kube.CoordinationV1().Leases("kube-system"), doctor.ControllerLease, timeout, cond)
	switch {
	case err == nil:
	case what == "released or expired" && (wait.Interrupted(err) || errors.Is(err, context.DeadlineExceeded)):
		t.Logf("the Lease was not released: it expired")
	default:
		t.Fatalf("the snapshot controller's Lease was not %s within %s: %v", what, timeout, err)
	}
}

// TestDoctorProbeInterrupted: Ctrl-C while the probe's mover Job runs deletes everything the probe
// made before the plugin exits 130; a plugin killed at the same moment (SIGKILL) leaves its
// namespace behind, and `cleanup --backup doctor-<id>` finds it and deletes it (and what is in it).
func TestDoctorProbeInterrupted(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	loc := c.location(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			p := c.startProbe(t, loc)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := p.cmd.Wait()
			p.stderrDone.Wait()
			t.Logf("doctor after %s: %v\nstderr:\n%s", sig, err, p.stderr.String())
			if sig == syscall.SIGKILL {
				c.cleanupFinds(t, p.id)
			} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
				t.Errorf("doctor interrupted: %v, want exit 130", err)
			}
			c.probeGone(t, p.id)
		})
	}
}

type probeRun struct {
	cmd        *exec.Cmd
	id         string
	stderr     *bytes.Buffer
	stderrDone *sync.WaitGroup
}

// startProbe starts doctor with the live probe and returns once the probe's first mover Job
// exists: the moment when the most is in flight (namespace, PVC, Secret, Job, pod).
func (c *Cluster) startProbe(t *testing.T, loc string) *probeRun {
	t.Helper()
	cmd := exec.Command(plugin(t), append([]string{"doctor", "-n", "default", "--location", loc, "--storage-class", c.StorageClass}, moverArgs()...)...)
	cmd.Env = append(os.Environ(), "PVBACKUP_PASSWORD=e2e-password")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() }) // only if the test failed before the signal
	p := &probeRun{cmd: cmd, stderr: &bytes.Buffer{}, stderrDone: &sync.WaitGroup{}}
	nsLine := regexp.MustCompile(`probe: namespace ` + doctor.ProbePrefix + `([0-9a-f]+)`)
	found := make(chan string, 1)
	p.stderrDone.Add(1)
	go func() {
		defer p.stderrDone.Done()
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.stderr.WriteString(sc.Text() + "\n")
			if m := nsLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case p.id = <-found:
	case <-time.After(time.Minute):
		t.Fatalf("doctor named no probe namespace within a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lw := kube.ListWatch(c.Kube.BatchV1().Jobs(doctor.ProbePrefix+p.id), c.Kube, nil)
	if _, err := watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, func(st cache.Store) (bool, error) { return len(st.List()) > 0, nil },
		func(ev watch.Event) (bool, error) { return ev.Type == watch.Added, nil }); err != nil {
		t.Fatalf("the probe made no mover Job in %s%s: %v", doctor.ProbePrefix, p.id, err)
	}
	return p
}

// cleanupFinds runs `cleanup --backup doctor-<id>` (scoped to the probe's run: it touches nothing
// of other tests) and checks that it found and deleted the probe's namespace.
func (c *Cluster) cleanupFinds(t *testing.T, id string) {
	t.Helper()
	r := runPlugin(t, 3*time.Minute, "cleanup", "--backup", "doctor-"+id, "-o", "json")
	var out struct{ Objects []volumes.Object }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("cleanup: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	found := false
	for _, o := range out.Objects {
		found = found || (o.Kind == "Namespace" && o.Name == doctor.ProbePrefix+id)
	}
	if !found {
		t.Errorf("cleanup did not find the probe's namespace %s%s: %+v", doctor.ProbePrefix, id, out.Objects)
	}
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

// waitBound waits until PVC ns/name is Bound (the test class binds at once, without a consumer).
func (c *Cluster) waitBound(t *testing.T, ns, name string) {
	t.Helper()
	if err := waitNamed(c.Kube.CoreV1().PersistentVolumeClaims(ns), name, time.Minute, func(p *corev1.PersistentVolumeClaim) bool {
		return p.Status.Phase == corev1.ClaimBound
	}); err != nil {
		t.Fatalf("PVC %s/%s is not bound: %v", ns, name, err)
	}
}

// waitQuotaStatus waits until the quota controller has computed the quota's status.
func (c *Cluster) waitQuotaStatus(t *testing.T, ns, name string) {
	t.Helper()
	if err := waitNamed(c.Kube.CoreV1().ResourceQuotas(ns), name, time.Minute, func(q *corev1.ResourceQuota) bool {
		return len(q.Status.Hard) > 0
	}); err != nil {
		t.Fatalf("quota %s/%s has no status: %v", ns, name, err)
	}
}

// waitNamed watches the object called name through client (a field selector: no other object's
// events) until cond holds for it (the object as listed first counts), for up to timeout. T is the
// object's type, *E.
func waitNamed[E any, T interface {
	*E
	k8sruntime.Object
}, L k8sruntime.Object](client kube.Lister[L], name string, timeout time.Duration, cond func(T) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(client, nil, kube.Named(name))
	_, err := watchtools.UntilWithSync(ctx, lw, T(new(E)), nil, func(ev watch.Event) (bool, error) {
		obj, ok := ev.Object.(T)
		return ok && cond(obj), nil
	})
	return err
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

// TestMoverSecret: storage credentials kept in a Secret of the application namespace
// (--mover-secret) reach the movers of a backup, and doctor's probe copies the Secret into its own
// namespace so that its movers reach the location too.
func TestMoverSecret(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-mover-secret")
	creds := map[string][]byte{}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
		creds[k] = []byte(os.Getenv(k))
	}
	if _, err := c.Kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3-creds"}, Data: creds}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	loc := c.location(t)
	args := append([]string{"--mover-secret", "s3-creds"}, moverArgs()...)
	code, rep := doctorRun(t, 5*time.Minute, append([]string{"-n", ns, "--location", loc, "--storage-class", c.StorageClass}, args...)...)
	c.wantHealthy(t, code, rep)
	if r := check(t, rep, "probe: mover secret"); !strings.Contains(r.Detail, "Secret "+ns+"/s3-creds copied") {
		t.Errorf("probe: mover secret: %q", r.Detail)
	}
	check(t, rep, "probe "+c.StorageClass+": restore from the snapshot")
	c.noProbeLeft(t, rep)

	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", "echo hello > /data/f")
	name := "secret-" + randomSuffix()
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--volumes", "fs"}, args...)...)
	if r.code != 0 {
		t.Fatalf("create --mover-secret: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	c.noLeftovers(t, name)
}
