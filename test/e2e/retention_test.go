//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/prune"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/retention"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// TestPruneExpiredSnapshotMode: a snapshot-mode backup created with --ttl 1s is removed by
// prune, and the VolumeSnapshot it kept goes with it.
func TestPruneExpiredSnapshotMode(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-ttl")
	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "write", "data", 2*time.Minute, "sh", "-c", "echo ttl > /data/file")
	loc := c.location(t)
	name := "ttl-" + randomSuffix()
	r := runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "--include-resources", "persistentvolumeclaims",
		"--volumes", "snapshot", "--ttl", "1s", "-o", "json"}, moverArgs()...)...)
	if r.code != 0 {
		t.Fatalf("create %s: exit %d\n%s", name, r.code, r.stdout)
	}
	// The TTL runs from the backup's start: a create quicker than a second ends before it expires.
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m.ExpiresAt.IsZero() {
		t.Fatalf("create's manifest has no expiry (%v):\n%s", err, r.stdout)
	}
	time.Sleep(time.Until(m.ExpiresAt) + 10*time.Millisecond)
	ctx := context.Background()
	sel := volumes.Selector(name) + "," + volumes.LabelKept + "=true"
	kept, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil || len(kept.Items) != 1 {
		t.Fatalf("kept VolumeSnapshots of %s: %v %d; want 1", name, err, len(kept.Items))
	}
	if r = runPlugin(t, time.Minute, "list", "--from", loc); r.code != 0 || !strings.Contains(r.stdout, "expired") {
		t.Errorf("list does not show the backup expired: exit %d\n%s", r.code, r.stdout)
	}
	r = runPlugin(t, 5*time.Minute, "prune", "--from", loc, "-o", "json")
	if r.code != 0 {
		t.Fatalf("prune: exit %d\n%s", r.code, r.stdout)
	}
	var res prune.Result
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.Items) != 1 {
		t.Fatalf("prune result: %v\n%s", err, r.stdout)
	}
	it := res.Items[0]
	if it.Name != name || it.Action != retention.Remove || it.Error != "" || it.Removed == nil || it.Removed.VolumeSnapshots != 1 || !strings.Contains(strings.Join(it.Reasons, ";"), "ttl 1s expired") {
		t.Fatalf("prune decision: %+v removed %+v", it, it.Removed)
	}
	// The VolumeSnapshot goes once the snapshot controller has removed its finalizers.
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.Snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		t.Fatalf("the VolumeSnapshot kept by %s is still there after prune\n%s", name, c.Diagnose(ns))
	}
	if r = runPlugin(t, time.Minute, "list", "--from", loc); strings.Contains(r.stdout, name) {
		t.Errorf("backup %s still listed after prune:\n%s", name, r.stdout)
	}
}
