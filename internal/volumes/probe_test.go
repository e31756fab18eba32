package volumes

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

func probeTask() Task {
	return Task{Backup: "doctor-r0001", Op: mover.OpProbe, Namespace: "app", SourceNamespace: "app", PVC: "data", Run: "r0001",
		ProbeToken: "tok"}
}

func TestProberMover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"))
	s.run(ctx)
	p := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeAuto))
	res, err := p.Mover(ctx, probeTask(), "data")
	if err != nil || res == nil || res.Op != mover.OpProbe || !res.OK {
		t.Fatalf("probe mover: %+v, %v", res, err)
	}
	job := s.jobs[0]
	c := job.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if c.Args[0] != "probe" || env["PVBACKUP_PROBE_TOKEN"] != "tok" || env["PVBACKUP_TARGET"] == "" {
		t.Errorf("probe Job: args %v env %v", c.Args, env)
	}
	if c.VolumeMounts[0].ReadOnly {
		t.Error("the probe writes into its volume: the mount must be writable")
	}
	if left := leftovers(t, s); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestProberMoverImagePull(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"))
	s.podWaiting = "ImagePullBackOff"
	s.run(ctx)
	p := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeAuto))
	_, err := p.Mover(ctx, probeTask(), "data")
	if err == nil || !strings.Contains(err.Error(), "ImagePullBackOff") {
		t.Fatalf("got %v, want ImagePullBackOff named", err)
	}
	if left := leftovers(t, s); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestProberSnapshot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"))
	s.run(ctx)
	p := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeAuto))
	vs, err := p.Snapshot(ctx, probeTask(), "dir")
	if err != nil || vs.Status.RestoreSize == nil {
		t.Fatalf("snapshot: %+v, %v", vs, err)
	}

	s2 := newSim(t, boundClaim("data", "pv1"))
	s2.noController = true
	s2.run(ctx)
	p = NewProber(Deps{Kube: s2.kube, Snap: snapFake{s2.snap}, Discovery: s2.kube.Discovery()}, testConfig(ModeAuto))
	if _, err := p.Snapshot(ctx, probeTask(), "dir"); err == nil || !strings.Contains(err.Error(), "no snapshot controller") {
		t.Fatalf("without a controller: %v", err)
	}
}

func TestProberWaitBound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"))
	p := NewProber(Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, testConfig(ModeAuto))
	if c, err := p.WaitBound(ctx, "app", "data"); err != nil || c.Name != "data" {
		t.Fatalf("bound claim: %v, %v", c, err)
	}
	pending := boundClaim("pending", "")
	pending.Status.Phase = corev1.ClaimPending
	if _, err := s.kube.CoreV1().PersistentVolumeClaims("app").Create(ctx, pending, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The provisioner retries, each failure an event: the wait sees those after it began.
	n := 0
	go s.resync(ctx, func() bool {
		n++
		_, _ = s.kube.CoreV1().Events("app").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "pending." + strconv.Itoa(n), Namespace: "app"},
			InvolvedObject: corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: "app", Name: "pending"},
			Type:           corev1.EventTypeWarning, Reason: "ProvisioningFailed", Message: "driver says no"}, metav1.CreateOptions{})
		return true
	})
	if _, err := p.WaitBound(ctx, "app", "pending"); err == nil || !strings.Contains(err.Error(), "ProvisioningFailed: driver says no") {
		t.Fatalf("a failed provisioning: %v", err)
	}
}
