//go:build e2e

// This file has the helpers every e2e test uses: clients, namespaces that clean up after themselves,
// Jobs and VolumeSnapshots waited for with watches and deadlines, and failure reports that carry the
// reason (pod state, logs, events).

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/utils/ptr"
)

// Cluster is the local test cluster as described by .local/cluster/env.
type Cluster struct {
	Kube          kubernetes.Interface
	Snap          snapclient.Interface
	StorageClass  string
	SnapshotClass string
	Image         string // a busybox image present on the node
	S3URL         string // gocloud URL of the bucket, valid from the host
}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run the e2e tests with `make e2e` (it starts the cluster and sources .local/cluster/env)", name)
	}
	return v
}

// NewCluster connects to the cluster named by the environment.
func NewCluster(t *testing.T) *Cluster {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", env(t, "KUBECONFIG"))
	if err != nil {
		t.Fatalf("load kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	return &Cluster{
		Kube:          kubernetes.NewForConfigOrDie(cfg),
		Snap:          snapclient.NewForConfigOrDie(cfg),
		StorageClass:  env(t, "PVBACKUP_STORAGE_CLASS"),
		SnapshotClass: env(t, "PVBACKUP_SNAPSHOT_CLASS"),
		Image:         env(t, "PVBACKUP_TEST_IMAGE"),
		S3URL:         env(t, "PVBACKUP_S3_URL"),
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Namespace creates a namespace for the test and deletes it when the test ends. The test does not
// wait until it is gone (pods' grace, volume detach and finalizers took tens of seconds of each
// test's parallel slot): TestMain waits for every one of them once, at the end, so the suite still
// fails when a namespace - and so a volume - cannot be removed.
func (c *Cluster) Namespace(t *testing.T, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + randomSuffix(), Labels: map[string]string{"pvbackup.io/e2e": "true"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	name := ns.Name
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("diagnostics for namespace %s:\n%s", name, c.Diagnose(name))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
			return
		}
		deleting.add(name)
	})
	return name
}

// PVC creates a PersistentVolumeClaim of the test storage class, optionally from a data source.
func (c *Cluster) PVC(t *testing.T, ns, name, size string, source *corev1.TypedLocalObjectReference) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &c.StorageClass,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			DataSource:       source,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create PVC %s/%s: %v", ns, name, err)
	}
	return pvc
}

// RunJob runs a busybox Job with the given PVC mounted at /data (if pvc is not empty) and the
// given command, waits for it to complete and returns its pod's log.
func (c *Cluster) RunJob(t *testing.T, ns, name, pvc string, timeout time.Duration, command ...string) string {
	t.Helper()
	return c.runJob(t, ns, name, pvc, timeout, nil, command)
}

// RunRestrictedJob is RunJob with a pod that Pod Security "restricted" admits, running as uid:gid 1000.
func (c *Cluster) RunRestrictedJob(t *testing.T, ns, name, pvc string, timeout time.Duration, command ...string) string {
	t.Helper()
	return c.runJob(t, ns, name, pvc, timeout, restrictedPod, command)
}

// restrictedUID owns the data of the Pod Security tests.
const restrictedUID = 1000

// restrictedPod makes a pod satisfy Pod Security "restricted": non-root (uid and gid 1000, which
// own the volume through fsGroup), no privilege escalation, every capability dropped, seccomp.
func restrictedPod(pod *corev1.PodSpec) {
	pod.SecurityContext = &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(int64(restrictedUID)), RunAsGroup: ptr.To(int64(restrictedUID)),
		FSGroup: ptr.To(int64(restrictedUID)), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		// The kubelet's default (Always) adds group rw to every file at each mount: checksum
		// pods would change the modes they compare.
		FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
	}
	for _, list := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range list {
			list[i].SecurityContext = &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			}
		}
	}
}

func (c *Cluster) runJob(t *testing.T, ns, name, pvc string, timeout time.Duration, mutate func(*corev1.PodSpec), command []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pod := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{
			Name: "main", Image: c.Image, ImagePullPolicy: corev1.PullNever, Command: command,
		}},
	}
	if pvc != "" {
		pod.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc},
		}}}
		pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	}
	if mutate != nil {
		mutate(&pod)
	}
	backoff, deadline := int32(0), int64(timeout.Seconds())
	_, err := c.Kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff, ActiveDeadlineSeconds: &deadline,
			Template: corev1.PodTemplateSpec{Spec: pod},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create job %s/%s: %v", ns, name, err)
	}
	lw := kube.ListWatch(c.Kube.BatchV1().Jobs(ns), c.Kube, kube.Named(name))
	var failed string
	_, err = watchtools.UntilWithSync(ctx, lw, &batchv1.Job{}, nil, func(ev watch.Event) (bool, error) {
		job, ok := ev.Object.(*batchv1.Job)
		if !ok {
			return false, nil
		}
		for _, cond := range job.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			switch cond.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				failed = cond.Reason + ": " + cond.Message
				return true, nil
			}
		}
		return false, nil
	})
	logs := c.JobLogs(ns, name)
	switch {
	case err != nil:
		t.Fatalf("job %s/%s did not finish within %s: %v\n%s", ns, name, timeout, err, c.Diagnose(ns))
	case failed != "":
		t.Fatalf("job %s/%s failed: %s\nlog:\n%s\n%s", ns, name, failed, logs, c.Diagnose(ns))
	}
	return logs
}

// JobLogs returns the log of the (last) pod of a Job.
func (c *Cluster) JobLogs(ns, job string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Sprintf("(no pod logs: %v, %d pods)", err, len(pods.Items))
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.Before(&pods.Items[j].CreationTimestamp)
	})
	b, err := c.Kube.CoreV1().Pods(ns).GetLogs(pods.Items[len(pods.Items)-1].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(no pod logs: %v)", err)
	}
	return string(b)
}

// Diagnose describes what went on in a namespace: pods with their container states, PVCs,
// VolumeSnapshots and events, oldest first.
func (c *Cluster) Diagnose(ns string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b strings.Builder
	if pods, err := c.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "pod %s: phase %s %s %s\n", p.Name, p.Status.Phase, p.Status.Reason, p.Status.Message)
			for _, cs := range p.Status.ContainerStatuses {
				switch {
				case cs.State.Waiting != nil:
					fmt.Fprintf(&b, "  container %s waiting: %s %s\n", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
				case cs.State.Terminated != nil:
					fmt.Fprintf(&b, "  container %s terminated: exit %d %s %s\n", cs.Name, cs.State.Terminated.ExitCode, cs.State.Terminated.Reason, cs.State.Terminated.Message)
				}
			}
		}
	}
	if pvcs, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pvcs.Items {
			fmt.Fprintf(&b, "pvc %s: %s volume %q finalizers %v", p.Name, p.Status.Phase, p.Spec.VolumeName, p.Finalizers)
			if p.DeletionTimestamp != nil {
				fmt.Fprintf(&b, " deleted at %s", p.DeletionTimestamp.Format(time.RFC3339))
			}
			b.WriteString("\n")
		}
	}
	if snaps, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range snaps.Items {
			fmt.Fprintf(&b, "volumesnapshot %s: %s finalizers %v deleting %v\n", s.Name, snapshotState(&s), s.Finalizers, s.DeletionTimestamp != nil)
		}
	}
	if evs, err := c.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err == nil {
		sort.Slice(evs.Items, func(i, j int) bool { return eventTime(evs.Items[i]).Before(eventTime(evs.Items[j])) })
		for _, e := range evs.Items {
			fmt.Fprintf(&b, "event %s %s/%s %s: %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return b.String()
}

func eventTime(e corev1.Event) time.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp.Time
	}
	return e.EventTime.Time
}

func snapshotState(s *snapv1.VolumeSnapshot) string {
	if s.Status == nil {
		return "no status yet"
	}
	state := fmt.Sprintf("readyToUse=%v content=%v", deref(s.Status.ReadyToUse), deref(s.Status.BoundVolumeSnapshotContentName))
	if s.Status.Error != nil && s.Status.Error.Message != nil {
		state += " error: " + *s.Status.Error.Message
	}
	return state
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// Snapshot creates a VolumeSnapshot of a PVC with the given class.
func (c *Cluster) Snapshot(t *testing.T, ns, name, pvc, class string) {
	t.Helper()
	_, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).Create(context.Background(), &snapv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: snapv1.VolumeSnapshotSpec{
			Source:                  snapv1.VolumeSnapshotSource{PersistentVolumeClaimName: &pvc},
			VolumeSnapshotClassName: &class,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create volumesnapshot %s/%s: %v", ns, name, err)
	}
}

// WaitSnapshot watches a VolumeSnapshot until cond returns true or the timeout passes.
func (c *Cluster) WaitSnapshot(t *testing.T, ns, name string, timeout time.Duration, cond func(*snapv1.VolumeSnapshot) bool) *snapv1.VolumeSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	lw := kube.ListWatch(c.Snap.SnapshotV1().VolumeSnapshots(ns), c.Snap, kube.Named(name))
	var last *snapv1.VolumeSnapshot
	ev, err := watchtools.UntilWithSync(ctx, lw, &snapv1.VolumeSnapshot{}, nil, func(ev watch.Event) (bool, error) {
		s, ok := ev.Object.(*snapv1.VolumeSnapshot)
		if !ok {
			return false, nil
		}
		last = s
		return cond(s), nil
	})
	if err != nil {
		state := "never seen"
		if last != nil {
			state = snapshotState(last)
		}
		t.Fatalf("volumesnapshot %s/%s: condition not met within %s (%s): %v\n%s", ns, name, timeout, state, err, c.Diagnose(ns))
	}
	return ev.Object.(*snapv1.VolumeSnapshot)
}
