//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob"
	corev1 "k8s.io/api/core/v1"
)

// TestSnapshotRoundTrip proves the volume path of the harness: a PVC from the default StorageClass,
// a Job that writes into it, a VolumeSnapshot that becomes readyToUse, a later write that must not
// reach the snapshot, a PVC restored from the snapshot and a Job that reads the snapshot-time data back.
func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-smoke")
	token := "pvbackup-" + randomSuffix()

	c.PVC(t, ns, "data", "64Mi", nil)
	c.RunJob(t, ns, "writer", "data", 2*time.Minute, "sh", "-c",
		"mkdir -p /data/dir && echo "+token+" > /data/dir/hello.txt && sync")

	c.Snapshot(t, ns, "snap", "data", c.SnapshotClass)
	snap := c.WaitSnapshot(t, ns, "snap", 2*time.Minute, func(s *snapv1.VolumeSnapshot) bool {
		return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
	})
	if snap.Status.RestoreSize == nil || snap.Status.RestoreSize.Value() < 64<<20 {
		t.Errorf("snapshot restoreSize = %v, want at least the source's 64Mi", snap.Status.RestoreSize)
	}

	// Change the source after the snapshot: the restored volume must hold the old content.
	c.RunJob(t, ns, "overwrite", "data", 2*time.Minute, "sh", "-c", "echo changed > /data/dir/hello.txt && sync")

	apiGroup := snapv1.GroupName
	c.PVC(t, ns, "restored", "64Mi", &corev1.TypedLocalObjectReference{APIGroup: &apiGroup, Kind: "VolumeSnapshot", Name: "snap"})
	got := c.RunJob(t, ns, "reader", "restored", 2*time.Minute, "cat", "/data/dir/hello.txt")
	if strings.TrimSpace(got) != token {
		t.Fatalf("restored volume holds %q, want the snapshot-time content %q", strings.TrimSpace(got), token)
	}

	// A clone of the source PVC carries its current content.
	c.PVC(t, ns, "clone", "64Mi", &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "data"})
	if got := c.RunJob(t, ns, "clone-reader", "clone", 2*time.Minute, "cat", "/data/dir/hello.txt"); strings.TrimSpace(got) != "changed" {
		t.Fatalf("cloned volume holds %q, want %q", strings.TrimSpace(got), "changed")
	}
}

// TestSnapshotClassFailReportsError proves the error-path knob of the test driver: a snapshot of
// the csi-dir-fail class never becomes ready and carries the driver's reason in status.error.
func TestSnapshotClassFailReportsError(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-snapfail")
	c.PVC(t, ns, "data", "16Mi", nil)
	c.RunJob(t, ns, "writer", "data", 2*time.Minute, "sh", "-c", "echo x > /data/x")
	c.Snapshot(t, ns, "snap", "data", "csi-dir-fail")
	s := c.WaitSnapshot(t, ns, "snap", 2*time.Minute, func(s *snapv1.VolumeSnapshot) bool {
		return s.Status != nil && s.Status.Error != nil && s.Status.Error.Message != nil
	})
	if msg := *s.Status.Error.Message; !strings.Contains(msg, "makes every snapshot fail") {
		t.Errorf("status.error = %q, want the driver's reason", msg)
	}
	if s.Status.ReadyToUse != nil && *s.Status.ReadyToUse {
		t.Error("a failed snapshot reports readyToUse")
	}
}

// TestPodsReachS3 proves that pods reach the S3 store with working credentials: the host writes an
// object, and a Job fetches it through a presigned URL from inside the cluster network.
func TestPodsReachS3(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bucket, err := blob.OpenBucket(ctx, c.S3URL)
	if err != nil {
		t.Fatalf("open %s: %v", c.S3URL, err)
	}
	t.Cleanup(func() { bucket.Close() }) // after the object's deletion below (cleanups run last first)
	key := "e2e/reach-" + randomSuffix()
	token := "s3-" + randomSuffix()
	if err := bucket.WriteAll(ctx, key, []byte(token), nil); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
	t.Cleanup(func() {
		if err := bucket.Delete(context.Background(), key); err != nil {
			t.Errorf("delete %s: %v", key, err)
		}
	})
	url, err := bucket.SignedURL(ctx, key, &blob.SignedURLOptions{Expiry: 10 * time.Minute})
	if err != nil {
		t.Fatalf("presign %s: %v", key, err)
	}

	ns := c.Namespace(t, "e2e-s3")
	got := c.RunJob(t, ns, "fetch", "", 2*time.Minute, "wget", "-q", "-O", "-", url)
	if got != token {
		t.Fatalf("pod fetched %q, want %q", got, token)
	}
}
