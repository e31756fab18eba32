//go:build e2e && measure

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// timeline records, per claim, when this test first saw each step of its volume's run in the
// cluster (watch arrival on the host, ms resolution): the plugin's temporary objects carry the
// claim in their labels, a restored claim is its own name.
type timeline struct {
	mu sync.Mutex
	at map[string]map[string]time.Time // claim → milestone → first seen
}

// Milestones, in the order of a volume's run.
const (
	msSnapRequested = "snapshot requested"
	msSnapTaken     = "snapshot taken up"
	msSnapReady     = "snapshot ready"
	msClaimCreated  = "claim created"
	msClaimBound    = "claim bound"
	msSecret        = "secret created"
	msJob           = "job created"
	msPod           = "pod created"
	msScheduled     = "pod scheduled"
	msRunning       = "container running"
	msExited        = "container exited"
	msCleanup       = "job deleting"
	msSecretGone    = "secret gone"
	msClaimGone     = "claim gone"
	msSnapGone      = "snapshot gone"
	msPodGone       = "pod gone"
)

func (tl *timeline) mark(claim, what string) {
	if claim == "" {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	m := tl.at[claim]
	if m == nil {
		m = map[string]time.Time{}
		tl.at[claim] = m
	}
	if _, seen := m[what]; !seen {
		m[what] = time.Now()
	}
}

func (tl *timeline) seen(claim, what string) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	_, ok := tl.at[claim][what]
	return ok
}

// watchTimeline follows ns's VolumeSnapshots, claims, Secrets, Jobs and pods until ctx ends.
func (c *Cluster) watchTimeline(ctx context.Context, ns string) *timeline {
	tl := &timeline{at: map[string]map[string]time.Time{}}
	mine := kube.Labelled(map[string]string{volumes.LabelManagedBy: volumes.ManagedBy})
	claimOf := func(m metav1.ObjectMeta) string { return m.Labels[volumes.LabelSourcePVC] }
	go kube.Follow(ctx, kube.ListWatch(c.Snap.SnapshotV1().VolumeSnapshots(ns), c.Snap, mine), func(ev watch.Event) {
		s, ok := ev.Object.(*snapv1.VolumeSnapshot)
		if !ok {
			return
		}
		k := claimOf(s.ObjectMeta)
		tl.mark(k, msSnapRequested)
		if s.Status != nil {
			tl.mark(k, msSnapTaken)
			if ptr.Deref(s.Status.ReadyToUse, false) {
				tl.mark(k, msSnapReady)
			}
		}
		if ev.Type == watch.Deleted {
			tl.mark(k, msSnapGone)
		}
	})
	go kube.Follow(ctx, kube.ListWatch(c.Kube.CoreV1().PersistentVolumeClaims(ns), c.Kube, nil), func(ev watch.Event) {
		p, ok := ev.Object.(*corev1.PersistentVolumeClaim)
		if !ok {
			return
		}
		k := claimOf(p.ObjectMeta) // a temporary claim; a restored claim is the volume itself
		if k == "" {
			k = p.Name
		}
		// Claims made during the run only: a backup's source claims change too (the snapshot
		// controller's finalizer) and carry the same key as their temporary claims.
		if ev.Type == watch.Added {
			tl.mark(k, msClaimCreated)
		}
		if !tl.seen(k, msClaimCreated) {
			return
		}
		if p.Status.Phase == corev1.ClaimBound {
			tl.mark(k, msClaimBound)
		}
		if ev.Type == watch.Deleted {
			tl.mark(k, msClaimGone)
		}
	})
	go kube.Follow(ctx, kube.ListWatch(c.Kube.CoreV1().Secrets(ns), c.Kube, mine), func(ev watch.Event) {
		if s, ok := ev.Object.(*corev1.Secret); ok && !strings.Contains(s.Name, "pull") {
			tl.mark(claimOf(s.ObjectMeta), map[bool]string{true: msSecretGone, false: msSecret}[ev.Type == watch.Deleted])
		}
	})
	go kube.Follow(ctx, kube.ListWatch(c.Kube.BatchV1().Jobs(ns), c.Kube, mine), func(ev watch.Event) {
		if j, ok := ev.Object.(*batchv1.Job); ok {
			tl.mark(claimOf(j.ObjectMeta), msJob)
			if j.DeletionTimestamp != nil || ev.Type == watch.Deleted {
				tl.mark(claimOf(j.ObjectMeta), msCleanup)
			}
		}
	})
	go kube.Follow(ctx, kube.ListWatch(c.Kube.CoreV1().Pods(ns), c.Kube, mine), func(ev watch.Event) {
		p, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return
		}
		k := claimOf(p.ObjectMeta)
		tl.mark(k, msPod)
		if p.Spec.NodeName != "" {
			tl.mark(k, msScheduled)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil || cs.State.Terminated != nil {
				tl.mark(k, msRunning)
			}
			if cs.State.Terminated != nil {
				tl.mark(k, msExited)
			}
		}
		if ev.Type == watch.Deleted {
			tl.mark(k, msPodGone)
		}
	})
	return tl
}

// stage is one span of a volume's run: from the milestone from to the milestone to.
type stage struct{ name, from, to string }

// stages are the spans printed, in the order of a volume's run.
var stages = []stage{
	{"snapshot requested → taken up by the controller", msSnapRequested, msSnapTaken},
	{"snapshot taken up → ready", msSnapTaken, msSnapReady},
	{"snapshot ready → claim created (waits for a slot)", msSnapReady, msClaimCreated},
	{"claim created → mover Secret created", msClaimCreated, msSecret},
	{"Secret → Job created", msSecret, msJob},
	{"Job → pod created (job controller)", msJob, msPod},
	{"pod created → scheduled (WaitForFirstConsumer: provisioned)", msPod, msScheduled},
	{"claim created → bound", msClaimCreated, msClaimBound},
	{"pod scheduled → container running (attach, mount, sandbox, start)", msScheduled, msRunning},
	{"container running → exited (the mover's process)", msRunning, msExited},
	{"container exited → Job deleted (the plugin sees the end, reads the result)", msExited, msCleanup},
	{"Job deleted → mover Secret deleted (cleanup calls)", msCleanup, msSecretGone},
	{"Job deleted → pod gone", msCleanup, msPodGone},
	{"Job deleted → temporary claim gone", msCleanup, msClaimGone},
	{"Job deleted → snapshot gone", msCleanup, msSnapGone},
	{"claim created → mover Secret deleted (in the slot)", msClaimCreated, msSecretGone},
}

// report logs each stage's median, 90th percentile, mean and count over the claims.
func (tl *timeline) report(t *testing.T, what string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var lines []string
	for _, s := range stages {
		var d []float64
		for _, m := range tl.at {
			a, okA := m[s.from]
			b, okB := m[s.to]
			if okA && okB {
				d = append(d, b.Sub(a).Seconds())
			}
		}
		if len(d) == 0 {
			continue
		}
		sort.Float64s(d)
		sum := 0.0
		for _, x := range d {
			sum += x
		}
		lines = append(lines, fmt.Sprintf("MEASURE   %-78s p50 %6.2fs p90 %6.2fs mean %6.2fs (n=%d)", s.name, d[len(d)/2], d[len(d)*9/10], sum/float64(len(d)), len(d)))
	}
	// Each line says MEASURE: make bench-scale keeps only those.
	t.Logf("MEASURE timeline of %s (each step's time per volume, as the cluster showed it):\n%s", what, strings.Join(lines, "\n"))
}
