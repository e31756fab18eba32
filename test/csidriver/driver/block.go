package driver

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Block volumes are sparse image files (<data-dir>/volumes/<ID>.img) shown to pods through a loop
// device: NodePublishVolume attaches the image to a free /dev/loopN (LOOP_CTL_GET_FREE, then
// LOOP_CONFIGURE) and bind-mounts that device node onto the target file the kubelet names; the
// last NodeUnpublishVolume detaches it again (LOOP_CLR_FD). One loop device serves every target of
// a volume, so all pods of all nodes (one host) share one device and its page cache.

const loopControl = "/dev/loop-control"

// attachLoop attaches the file at path to a free loop device and returns the device's path.
func attachLoop(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ctl, err := os.OpenFile(loopControl, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("loop devices are needed for block volumes: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], path)
	// Another process (the kubelet's losetup) may take the free device between the two calls:
	// LOOP_CONFIGURE then fails with EBUSY and the next free one is tried.
	for attempt := 0; attempt < 20; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		err = configureLoop(dev, n, &cfg)
		if err == nil {
			return dev, nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return "", fmt.Errorf("attach %s to %s: %w", path, dev, err)
		}
	}
	return "", fmt.Errorf("attach %s: every free loop device was taken by someone else 20 times in a row", path)
}

func configureLoop(dev string, n int, cfg *unix.LoopConfig) error {
	lf, err := os.OpenFile(dev, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// /dev without devtmpfs (a container): make the node the kernel just created (major 7).
		if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		lf, err = os.OpenFile(dev, os.O_RDWR, 0)
	}
	if err != nil {
		return err
	}
	defer lf.Close()
	return unix.IoctlLoopConfigure(int(lf.Fd()), cfg)
}

// loopBackingFile is the file a loop device is attached to ("" if none), from sysfs.
func loopBackingFile(dev string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil // the device exists but is not attached (or does not exist)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// detachLoop detaches dev if it is still attached to path (a device reused by someone else since
// is left alone). The kernel detaches at the last close if the device is still open.
func detachLoop(dev, path string) error {
	back, err := loopBackingFile(dev)
	if err != nil || back != path {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	if errors.Is(err, unix.ENXIO) {
		return nil // detached meanwhile
	}
	return err
}

// loopsOf lists the loop devices attached to files in dir, by device path.
func loopsOf(dir string) (map[string]string, error) {
	devs, err := filepath.Glob("/sys/block/loop*")
	if err != nil {
		return nil, err
	}
	found := map[string]string{}
	for _, d := range devs {
		dev := "/dev/" + filepath.Base(d)
		back, err := loopBackingFile(dev)
		if err != nil {
			return nil, err
		}
		if back != "" && filepath.Dir(back) == dir {
			found[dev] = back
		}
	}
	return found, nil
}

// syncDevice writes what pods wrote into the device's page cache through to its image file.
func syncDevice(dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// createImage makes a sparse image file of size bytes (no blocks allocated).
func createImage(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// sparseBlock is the unit of zero detection: a block of zeros read from the source is a hole in
// the copy.
const sparseBlock = 64 << 10

// copySparse copies the image src into a new file dst of size bytes (at least src's size): only
// the source's data extents are read (SEEK_DATA/SEEK_HOLE) and only blocks that are not all zeros
// are written, so a 1 GiB device with a few MiB written costs a few MiB to copy and to keep.
func copySparse(dst, src string, size int64) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	if err := out.Truncate(max(size, st.Size())); err != nil {
		return err
	}
	if err := copyExtents(out, in, st.Size()); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Sync()
}

// copyExtents copies the data extents of in (size bytes) to the same offsets of out.
func copyExtents(out, in *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // no data after off
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		for pos := data; pos < hole; {
			n := int(min(int64(len(buf)), hole-pos))
			if _, err := io.ReadFull(io.NewSectionReader(in, pos, int64(n)), buf[:n]); err != nil {
				return err
			}
			if err := writeNonZero(out, buf[:n], pos); err != nil {
				return err
			}
			pos += int64(n)
		}
		off = hole
	}
	return nil
}

// writeNonZero writes the blocks of b that hold a non-zero byte at offset off of out.
func writeNonZero(out *os.File, b []byte, off int64) error {
	for i := 0; i < len(b); i += sparseBlock {
		blk := b[i:min(i+sparseBlock, len(b))]
		if allZero(blk) {
			continue
		}
		if _, err := out.WriteAt(blk, off+int64(i)); err != nil {
			return err
		}
	}
	return nil
}

var zeros = make([]byte, sparseBlock)

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }

// waitLoopGone waits until dev no longer reports a backing file (a lazily detached device goes
// when its last user closes it), up to timeout.
func waitLoopGone(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		back, err := loopBackingFile(dev)
		if err != nil || back == "" {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still attached to %s after %s", dev, back, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reconcileLoops matches the recorded loop devices with the kernel's at start: a recorded device
// that no longer serves its image is forgotten; a device attached to one of the driver's images
// that no volume records (the driver died between attaching and saving), or of a volume that is
// published nowhere, is detached.
func (d *Driver) reconcileLoops() error {
	found, err := loopsOf(filepath.Join(d.cfg.DataDir, "volumes"))
	if err != nil {
		return fmt.Errorf("list loop devices: %w", err)
	}
	changed := false
	for _, v := range d.st.Volumes {
		if v.Loop == "" {
			continue
		}
		if found[v.Loop] != d.imagePath(v.ID) || len(v.Published) == 0 {
			if found[v.Loop] == d.imagePath(v.ID) {
				d.releaseLoop(v)
			}
			d.cfg.Logger.Printf("volume %s: forgetting %s (published at %d targets)", v.ID, v.Loop, len(v.Published))
			v.Loop, changed = "", true
			continue
		}
		delete(found, v.Loop)
	}
	for dev, back := range found {
		d.cfg.Logger.Printf("detaching %s: attached to %s, which no published volume records", dev, back)
		if err := detachLoop(dev, back); err != nil {
			return fmt.Errorf("detach %s: %w", dev, err)
		}
	}
	if changed {
		return d.saveState()
	}
	return nil
}
