//go:build !windows

package mover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/snapshot/restore"
	"golang.org/x/sys/unix"
)

// smallFileMax is the largest file newFileOutput writes itself; larger ones go to Kopia's.
const smallFileMax = 1 << 20

// pageSize is the unit of a hole: a page that holds only zeros is not written (sparse).
const pageSize = 4096

// fileOutput writes the small files of a restore into a target that does not have them yet
// (a new or emptied claim), and leaves everything else to Kopia's FilesystemOutput. Kopia's
// writes a file with fourteen system calls (a stat, the create, four fcntl and an epoll_ctl of
// Go's file setup, an lstat, chown, chmod and utimes by path, two unlinks of a placeholder that
// is never there); a restore of 50,000 small files spent three quarters of its time in them,
// twice the backup's time. This one creates the file with O_EXCL and writes, owns, modes and
// closes it through its descriptor: six calls, the contents already in memory. A name that
// exists goes to Kopia's, which overwrites. It is not used for a sync (in place), whose
// extra-entry removal Kopia does only for its own FilesystemOutput.
type fileOutput struct {
	*restore.FilesystemOutput
	bufs sync.Pool
	// bigMin is the size from which a file is written in stretches at once (writeBig; not when
	// sparse: Kopia's output leaves the holes); segment is a stretch's size (0: bigSegments of them).
	bigMin, segment int64
}

// smallFilesOutput is the output of a restore into a target that does not have its files yet.
func smallFilesOutput(o *restore.FilesystemOutput) restore.Output { return newFileOutput(o) }

func newFileOutput(o *restore.FilesystemOutput) *fileOutput {
	return &fileOutput{FilesystemOutput: o, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}, bigMin: bigFileMin}
}

// WriteFile implements restore.Output.
func (o *fileOutput) WriteFile(ctx context.Context, rel string, f fs.File, progress restore.FileWriteProgress) error {
	if f.Size() > smallFileMax {
		if f.Size() >= o.bigMin && !o.WriteSparseFiles {
			return o.writeBig(ctx, rel, f, progress)
		}
		return o.FilesystemOutput.WriteFile(ctx, rel, f, progress)
	}
	bp := o.bufs.Get().(*[]byte)
	defer o.bufs.Put(bp)
	data, err := readAll(ctx, f, (*bp)[:0])
	*bp = data[:0]
	if err != nil {
		return fmt.Errorf("read %s from the snapshot: %w", rel, err)
	}
	path := filepath.Join(o.TargetPath, filepath.FromSlash(rel))
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, unix.EEXIST) {
		return o.FilesystemOutput.WriteFile(ctx, rel, f, progress)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	err = o.fill(fd, data, f)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	progress(int64(len(data)))
	t := unix.NsecToTimespec(f.ModTime().UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return o.permission(fmt.Errorf("set the time of %s: %w", path, err))
	}
	return nil
}

// fill writes data (holes for pages of zeros when sparse), then the owner and the mode: a chown
// clears setuid and setgid, so the mode comes after it.
func (o *fileOutput) fill(fd int, data []byte, f fs.File) error {
	if err := writeData(fd, data, o.WriteSparseFiles); err != nil {
		return err
	}
	return o.finish(fd, f)
}

// finish sets a written file's owner, then its mode.
func (o *fileOutput) finish(fd int, f fs.File) error {
	if !o.SkipOwners {
		if err := unix.Fchown(fd, int(f.Owner().UserID), int(f.Owner().GroupID)); err != nil {
			if err := o.permission(err); err != nil {
				return fmt.Errorf("chown: %w", err)
			}
		}
	}
	if err := unix.Fchmod(fd, mode(f)); err != nil {
		return o.permission(fmt.Errorf("chmod: %w", err))
	}
	return nil
}

// mode is f's mode as chmod(2) takes it: permissions, setuid, setgid, sticky.
func mode(f fs.File) uint32 {
	m := f.Mode()
	out := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		out |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		out |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		out |= unix.S_ISVTX
	}
	return out
}

// permission drops a permission error as Kopia's output does (IgnorePermissionErrors).
func (o *fileOutput) permission(err error) error {
	if o.IgnorePermissionErrors && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
		return nil
	}
	return err
}

// readAll reads f's contents into buf (grown as needed): at most smallFileMax bytes.
func readAll(ctx context.Context, f fs.File, buf []byte) ([]byte, error) {
	r, err := f.Open(ctx)
	if err != nil {
		return buf, err
	}
	defer r.Close()
	lr := io.LimitReader(r, smallFileMax+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return buf, err
		}
	}
	if int64(len(buf)) != f.Size() {
		return buf, fmt.Errorf("%d bytes, the snapshot says %d", len(buf), f.Size())
	}
	return buf, nil
}

// writeData writes data at the start of fd; with sparse, pages of zeros are left as holes (the
// file's length is set at the end). Runs of pages with data are written with one call each.
func writeData(fd int, data []byte, sparse bool) error {
	if !sparse {
		return writeAt(fd, data, 0)
	}
	holes, run := false, -1 // run: the start of the pages with data not written yet
	for off := 0; off < len(data); off += pageSize {
		if !zero(data[off:min(off+pageSize, len(data))]) {
			if run < 0 {
				run = off
			}
			continue
		}
		holes = true
		if run >= 0 {
			if err := writeAt(fd, data[run:off], int64(run)); err != nil {
				return err
			}
			run = -1
		}
	}
	if run >= 0 {
		if err := writeAt(fd, data[run:], int64(run)); err != nil {
			return err
		}
	}
	if holes {
		return unix.Ftruncate(fd, int64(len(data)))
	}
	return nil
}

func writeAt(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err != nil {
			return err
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
