//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Block volumes of the lab (docs/local-cluster.md, "Block volumes"): every class serves
// volumeMode: Block claims, a loop device per volume that pods get through volumeDevices.

// BlockDevice is where the lab's block tests put a claim's device in their containers.
const BlockDevice = "/dev/xvda"

// BlockPVC creates a ReadWriteOnce volumeMode: Block claim of 16 MiB of a StorageClass, optionally
// from a data source (a VolumeSnapshot of a block claim).
func (c *Cluster) BlockPVC(t *testing.T, ns, name, class string, source *corev1.TypedLocalObjectReference) {
	t.Helper()
	block := corev1.PersistentVolumeBlock
	_, err := c.Kube.CoreV1().PersistentVolumeClaims(ns).Create(context.Background(), &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			VolumeMode:       &block,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("16Mi")}},
			DataSource:       source,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create block PVC %s/%s: %v", ns, name, err)
	}
}

// BlockJob runs script in a Job on node whose container gets the block claim's device at
// BlockDevice (volumeDevices), and returns its log.
func (c *Cluster) BlockJob(t *testing.T, ns, name, claim, node, script string) string {
	t.Helper()
	return c.runJob(t, ns, name, "", 3*time.Minute, func(p *corev1.PodSpec) {
		onNode(node)(p)
		p.Volumes = []corev1.Volume{{Name: "disk", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
		p.Containers[0].VolumeDevices = []corev1.VolumeDevice{{Name: "disk", DevicePath: BlockDevice}}
	}, []string{"sh", "-c", script})
}

// snapshotSource is a claim's data source naming a VolumeSnapshot.
func snapshotSource(name string) *corev1.TypedLocalObjectReference {
	group := snapv1.GroupName
	return &corev1.TypedLocalObjectReference{APIGroup: &group, Kind: "VolumeSnapshot", Name: name}
}

// blockWriteScript writes 1 MiB of a token's repetitions at 0 and at 8 MiB of the device (the rest
// stays zero), syncs, and prints the md5 of the first 9 MiB; blockSumScript prints the md5 and the
// 9 bytes at 8 MiB.
const (
	blockWriteScript = `set -e
yes "$TOKEN" | head -c 1048576 > /tmp/pattern
dd if=/tmp/pattern of=` + BlockDevice + ` bs=65536 conv=notrunc 2>/dev/null
dd if=/tmp/pattern of=` + BlockDevice + ` bs=65536 seek=128 conv=notrunc 2>/dev/null
sync
head -c 9437184 ` + BlockDevice + ` | md5sum`
	blockSumScript = `head -c 9437184 ` + BlockDevice + ` | md5sum; dd if=` + BlockDevice + ` bs=1 skip=8388608 count=9 2>/dev/null`
)

// TestLabBlockVolumes: a Block claim of each class is written through a pod's volumeDevices,
// snapshotted, and a Block claim restored from the snapshot reads the same bytes — a pattern at 0
// and at 8 MiB, zeros between.
func TestLabBlockVolumes(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	_, b, _ := labNodes(t)
	for _, class := range []string{c.StorageClass, os.Getenv("PVBACKUP_ZONAL_STORAGE_CLASS"), os.Getenv("PVBACKUP_LOCAL_STORAGE_CLASS")} {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			ns := c.Namespace(t, "e2e-lab-block")
			token := "pv" + randomSuffix()[:7] // 9 bytes: what blockSumScript reads back at 8 MiB
			c.BlockPVC(t, ns, "disk", class, nil)
			wrote := strings.TrimSpace(c.BlockJob(t, ns, "write", "disk", b, "TOKEN="+token+"\n"+blockWriteScript))
			c.Snapshot(t, ns, "snap", "disk", class)
			c.WaitSnapshot(t, ns, "snap", 2*time.Minute, func(s *snapv1.VolumeSnapshot) bool {
				return s.Status != nil && s.Status.ReadyToUse != nil && *s.Status.ReadyToUse
			})
			// The node-local snapshot restores on its node only: the reader runs where the writer did.
			c.BlockPVC(t, ns, "restored", class, snapshotSource("snap"))
			read := strings.Fields(c.BlockJob(t, ns, "read", "restored", b, blockSumScript))
			if len(read) != 3 || read[0]+"  -" != wrote || read[2] != token {
				t.Errorf("the restored device reads %q, want the md5 the writer printed (%q) and %q at 8 MiB", read, wrote, token)
			}
		})
	}
}
