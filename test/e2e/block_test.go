//go:build e2e

package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// blockImageScript writes the pattern of blockWriteScript and prints the md5 of the whole device.
const blockImageScript = `set -e
yes "$TOKEN" | head -c 1048576 > /tmp/pattern
dd if=/tmp/pattern of=` + BlockDevice + ` bs=65536 conv=notrunc 2>/dev/null
dd if=/tmp/pattern of=` + BlockDevice + ` bs=65536 seek=128 conv=notrunc 2>/dev/null
sync
md5sum < ` + BlockDevice

// TestBlockVolumeBackup: a raw block claim written with a known pattern is backed up (auto picks
// snapshot-move; the mover maps the device, as root without capabilities: no --mover-privileged),
// restored into a new namespace and read back byte for byte; cp of it is the same image, sparse;
// fs mode reads the unattached claim's device directly.
func TestBlockVolumeBackup(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	ns := c.Namespace(t, "e2e-block")
	_, b, _ := labNodes(t)
	c.BlockPVC(t, ns, "disk", c.StorageClass, nil)
	token := "pv" + randomSuffix()[:7]
	want := strings.Fields(c.BlockJob(t, ns, "write", "disk", b, "TOKEN="+token+"\n"+blockImageScript))[0]
	loc := c.location(t)
	movers := []string{"--mover-image", moverImage(), "--mover-pull-policy", "Never"}

	// Direct mode: the claim is unattached (the writer finished), so fs maps its device read-only.
	direct := "fs-" + randomSuffix()
	r := runPlugin(t, 3*time.Minute, append([]string{"create", direct, "--to", loc, "--include-namespaces", ns, "--volumes", "fs", "-o", "json"}, movers...)...)
	var dm catalog.Manifest
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &dm) != nil || len(dm.Volumes) != 1 || dm.Volumes[0].Mode != "fs" || dm.Volumes[0].Status != catalog.VolumeCompleted ||
		dm.Volumes[0].Bytes != 16<<20 || !strings.Contains(dm.Volumes[0].Reason, "read directly through volumeDevices") {
		t.Errorf("--volumes=fs of an unattached block claim: exit %d, want its device read directly\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.noLeftovers(t, direct)

	name := "block-" + randomSuffix()
	r = runPlugin(t, 5*time.Minute, append([]string{"create", name, "--to", loc, "--include-namespaces", ns, "-o", "json"}, movers...)...)
	if r.code != 0 {
		t.Fatalf("create: exit %d\n%s\n%s", r.code, r.stdout, c.Diagnose(ns))
	}
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, r.stdout)
	}
	if len(m.Volumes) != 1 || m.Volumes[0].Mode != "snapshot-move" || !m.Volumes[0].IsBlock() || m.Volumes[0].Status != catalog.VolumeCompleted || m.Volumes[0].Bytes != 16<<20 {
		t.Fatalf("volumes %+v, want the block claim Completed in snapshot-move, 16 MiB", m.Volumes)
	}
	v := m.Volumes[0]
	t.Logf("block backup: %d bytes read, %d uploaded in %.1fs (mover %.1fs)", v.Bytes, v.UploadedBytes, v.Seconds, v.MoverSeconds)
	c.noLeftovers(t, name)

	copyNS := ns + "-copy"
	t.Cleanup(func() { _ = c.Kube.CoreV1().Namespaces().Delete(context.Background(), copyNS, metav1.DeleteOptions{}) })
	r = runPlugin(t, 5*time.Minute, append([]string{"restore", name, "--from", loc, "--namespace-mapping", ns + ":" + copyNS}, movers...)...)
	if r.code != 0 {
		t.Fatalf("restore into %s: exit %d\n%s\n%s", copyNS, r.code, r.stdout, c.Diagnose(copyNS))
	}
	got := strings.Fields(c.BlockJob(t, copyNS, "read", "disk", b, "md5sum < "+BlockDevice+"; dd if="+BlockDevice+" bs=1 skip=8388608 count=9 2>/dev/null"))
	if len(got) != 3 || got[0] != want || got[2] != token {
		t.Errorf("the restored device reads %q, want md5 %s and %q at 8 MiB", got, want, token)
	}
	c.noLeftovers(t, name)

	dest := t.TempDir()
	r = runPluginWithoutCluster(t, 2*time.Minute, "cp", name, ns+"/disk", dest, "--from", loc)
	if r.code != 0 {
		t.Fatalf("cp: exit %d\n%s", r.code, r.stderr)
	}
	img := filepath.Join(dest, mover.BlockEntry)
	data, err := os.ReadFile(img)
	sum := md5.Sum(data)
	if err != nil || hex.EncodeToString(sum[:]) != want {
		t.Errorf("cp wrote %s (%d bytes, %v) with md5 %x, want the device's %s", img, len(data), err, sum, want)
	}
}
