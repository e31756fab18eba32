package files

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// cp of a raw block volume's backup writes its image, mover.BlockEntry, equal to the device and
// sparse where the device was zero.
func TestCopyBlockVolumeImage(t *testing.T) {
	f := newFixture(t)
	img := filepath.Join(t.TempDir(), "disk")
	const size = 32 << 20
	fh, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	_ = fh.Truncate(size)
	_, _ = fh.WriteAt(bytes.Repeat([]byte("block"), 1<<18), 0)
	_, _ = fh.WriteAt([]byte("tail"), size-4)
	fh.Close()
	res, err := mover.RunBackup(context.Background(), mover.Settings{Location: f.location, Namespace: "vm", Password: testPassword, CacheDir: t.TempDir()},
		mover.BackupConfig{Source: img, PVC: "disk", Backup: "b1", Block: true}, func(mover.Event) {})
	if err != nil {
		t.Fatal(err)
	}
	f.add(catalog.Volume{Namespace: "vm", PVC: "disk", Mode: "snapshot-move", VolumeMode: catalog.VolumeModeBlock, Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID})

	dest := t.TempDir()
	if _, err := Copy(context.Background(), f.deps, CopyConfig{Backup: "b1", Ref: ref("vm/disk"), Dest: dest}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dest, mover.BlockEntry)
	got, err := os.ReadFile(out)
	want, _ := os.ReadFile(img)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the copied image differs from the device (%d bytes, %v)", len(got), err)
	}
	fi, _ := os.Stat(out)
	if st := fi.Sys().(*syscall.Stat_t); st.Blocks*512 > 4<<20 {
		t.Errorf("the image uses %d KiB on disk: its zero runs were written", st.Blocks*512>>10)
	}
}
