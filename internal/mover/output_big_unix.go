//go:build !windows

package mover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/snapshot/restore"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Big files of a restore. Kopia's output copies a file's contents one after the other, each a
// read of the store (one S3 GET of ~4 MiB at a time), so a big file was one latency-bound stream
// however many the restore ran for small files: the restore's end waited for its largest file.
// A file of bigFileMin or more is written as bigSegments stretches at once, each read by a reader
// of its own from its offset and written there — the mirror of the parallel upload of big files
// in parts (DefaultParallelAbove).
const (
	bigFileMin     = DefaultParallelAbove
	bigSegments    = 4
	segmentBufSize = 1 << 20
)

// writeBig writes f into a target that does not have it yet (a name that exists goes to Kopia's
// output, which overwrites), then its owner, mode and time.
func (o *fileOutput) writeBig(ctx context.Context, rel string, f fs.File, progress restore.FileWriteProgress) error {
	path := filepath.Join(o.TargetPath, filepath.FromSlash(rel))
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, unix.EEXIST) {
		return o.FilesystemOutput.WriteFile(ctx, rel, f, progress)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	err = copySegments(ctx, fd, f, o.segment, progress)
	if err == nil {
		err = o.finish(fd, f)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	t := unix.NsecToTimespec(f.ModTime().UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return o.permission(fmt.Errorf("set the time of %s: %w", path, err))
	}
	return nil
}

// copySegments copies f into fd as stretches of segment bytes (bigSegments of them, when 0),
// all at once; progress is called from one goroutine at a time, as Kopia's counts expect.
func copySegments(ctx context.Context, fd int, f fs.File, segment int64, progress restore.FileWriteProgress) error {
	size := f.Size()
	if segment <= 0 {
		segment = (size + bigSegments - 1) / bigSegments
		segment = (segment + segmentBufSize - 1) / segmentBufSize * segmentBufSize
	}
	var mu sync.Mutex
	report := func(n int64) {
		mu.Lock()
		progress(n)
		mu.Unlock()
	}
	g, ctx := errgroup.WithContext(ctx)
	for off := int64(0); off < size; off += segment {
		g.Go(func() error { return copySegment(ctx, fd, f, off, min(segment, size-off), report) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return unix.Ftruncate(fd, size) // a snapshot's file longer than it says would show here
}

// copySegment copies n bytes of f from off into fd at off.
func copySegment(ctx context.Context, fd int, f fs.File, off, n int64, report func(int64)) error {
	r, err := f.Open(ctx)
	if err != nil {
		return fmt.Errorf("read from the snapshot: %w", err)
	}
	defer r.Close()
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("read from the snapshot at %d: %w", off, err)
	}
	buf := make([]byte, min(n, segmentBufSize))
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := io.ReadFull(r, buf[:min(int64(len(buf)), n)])
		if err != nil {
			return fmt.Errorf("read from the snapshot at %d: %w (the snapshot says %d bytes)", off, err, f.Size())
		}
		if err := writeAt(fd, buf[:k], off); err != nil {
			return err
		}
		off, n = off+int64(k), n-int64(k)
		report(int64(k))
	}
	return nil
}
