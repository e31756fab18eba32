package mover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/snapshot"
)

// Raw block volumes (volumeMode: Block). A block volume's snapshot is a directory holding one
// file, BlockEntry, whose content is the whole device (as Velero's block uploader does), cut by
// BlockSplitter, so a run of zeros is stored once and an incremental after
// a small change uploads little; it is read in full each time (a device has no modification
// times to trust).

// BlockEntry is the one file of a block volume's snapshot: `cp BACKUP NS/PVC:/volume.img` copies
// the device's image out, sparse where it was zero.
const BlockEntry = "volume.img"

// BlockSplitter cuts a new device's image into aligned 512 KiB chunks: a device's data never
// shifts, so fixed chunks dedup every zero chunk into one content and an incremental after a
// small change uploads the changed chunks (content-defined chunks, 4 MiB on average, carried
// zeros next to data). A changed extent rarely starts at a chunk's start, so it uploads its size
// plus up to one chunk: 1 MiB written at a 4 KiB offset uploads 1.5 MiB (1 MiB chunks: 2 MiB).
// Each chunk is one read from the bucket: a restore fetches --parallel of them at once
// (fetchImage; make bench-block, 2 GiB: 1.2-2.5x the kopia CLI's restore throughput, 0.76x once at
// load 30; read one after the other, 0.72-1.0x).
const BlockSplitter = "FIXED-512K"

// blockSplitterBefore is the splitter of the block snapshots made before TagBlockSplitter (all
// of them: FIXED-1M).
const blockSplitterBefore = "FIXED-1M"

// TagBlockSplitter names, on a block volume's snapshot, the splitter that cut its image: the
// volume's next backup uses it again, so that its unchanged chunks are those already stored (a
// device backed up with 1 MiB chunks is not uploaded whole again after an upgrade).
const TagBlockSplitter = "pvbackup-block-splitter"

// blockSplitters are the splitters a block snapshot's tag may name.
var blockSplitters = map[string]bool{"FIXED-256K": true, "FIXED-512K": true, "FIXED-1M": true}

// blockSplitterFor is the splitter of a block backup after the volume's previous snapshots
// (the latest complete one first): the latest's, else BlockSplitter. The tag comes from the bucket: one this
// version does not know gives BlockSplitter (the dedup against it lost once).
func blockSplitterFor(previous []*snapshot.Manifest) string {
	if len(previous) == 0 {
		return BlockSplitter
	}
	switch s, ok := previous[0].Tags[TagBlockSplitter]; {
	case !ok:
		return blockSplitterBefore
	case blockSplitters[s]:
		return s
	}
	return BlockSplitter
}

// blockChunk is the unit a block restore writes or, when it is all zeros, skips.
const blockChunk = 1 << 20

// blockSource is the snapshot root of a block backup: a static directory with the device (or
// image file) at path as its file BlockEntry. The device is opened once here to check that the
// mover may read it and to learn its size; close has nothing left to release.
func blockSource(path string) (root fs.Directory, closeFn func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, blockOpenError(path, "read", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, fmt.Errorf("size of block device %s: %w", path, err)
	}
	file := &deviceImage{path: path, size: size, modTime: time.Now()}
	return virtualfs.NewStaticDirectory("", []fs.Entry{file}), func() {}, nil
}

// deviceImage is a device read as a regular file of known size whose readers seek: Kopia's
// uploader then cuts an image above the parallel-upload size into parts hashed and uploaded in
// parallel (every part a multiple of BlockSplitter's chunk, so the chunks and their dedup are
// those of one stream), where a streaming file is one sequential stream. Its time is the
// backup's, never a previous snapshot's: a device has no modification time, so it is always read.
type deviceImage struct {
	path    string
	size    int64
	modTime time.Time
}

func (b *deviceImage) Name() string                { return BlockEntry }
func (b *deviceImage) Size() int64                 { return b.size }
func (b *deviceImage) Mode() os.FileMode           { return 0o600 }
func (b *deviceImage) ModTime() time.Time          { return b.modTime }
func (b *deviceImage) IsDir() bool                 { return false }
func (b *deviceImage) Sys() any                    { return nil }
func (b *deviceImage) Owner() fs.OwnerInfo         { return fs.OwnerInfo{} }
func (b *deviceImage) Device() fs.DeviceInfo       { return fs.DeviceInfo{} }
func (b *deviceImage) LocalFilesystemPath() string { return "" }
func (b *deviceImage) Close()                      {}

// Open opens the device again: each part of a parallel upload reads through its own descriptor.
func (b *deviceImage) Open(context.Context) (fs.Reader, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, blockOpenError(b.path, "read", err)
	}
	return blockReader{File: f, entry: b}, nil
}

type blockReader struct {
	*os.File
	entry fs.Entry
}

func (r blockReader) Entry() (fs.Entry, error) { return r.entry, nil }

// checkBlock says whether path is a block device (or, for tests and images, a regular file).
func checkBlock(path, what string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st.Mode()&os.ModeDevice == 0 && !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is neither a block device nor a file (a block volume's mover maps the claim with volumeDevices)", what, path)
	}
	return nil
}

// blockOpenError explains a device the mover may not open: movers of block volumes run as root
// without capabilities, which opens a device owned by root; another owner needs --mover-privileged.
func blockOpenError(path, how string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("open block device %s to %s: %w (the mover runs as uid %d; the device's owner must match, or use --mover-privileged)", path, how, err, os.Getuid())
	}
	return fmt.Errorf("open block device %s to %s: %w", path, how, err)
}

// blockFile is the BlockEntry of a block volume's snapshot root.
func blockFile(ctx context.Context, root fs.Entry, what string) (fs.File, error) {
	dir, ok := root.(fs.Directory)
	if !ok {
		return nil, fmt.Errorf("%s is not a block volume's snapshot (its root is no directory)", what)
	}
	e, err := dir.Child(ctx, BlockEntry)
	if err != nil {
		return nil, fmt.Errorf("%s is not a block volume's snapshot (it has no %s): restore it into a filesystem claim: %w", what, BlockEntry, err)
	}
	f, ok := e.(fs.File)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not a file", what, BlockEntry)
	}
	return f, nil
}

// writeDevice writes an image of size bytes (-1: unknown) from r into the device at target. A
// chunk of zeros is only written where the device is not zero already, so a thin-provisioned new
// volume stays thin. The image must fit the device.
func writeDevice(ctx context.Context, r io.Reader, size int64, target string, c *counters) error {
	dev, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return blockOpenError(target, "write", err)
	}
	defer dev.Close()
	if have, err := dev.Seek(0, io.SeekEnd); err == nil && size > have {
		return fmt.Errorf("the target device %s holds %d bytes, the backed-up volume %d: restore into a claim at least as large", target, have, size)
	}
	if err := copyBlocks(ctx, dev, r, &c.bytes); err != nil {
		return err
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("flush %s: %w", target, err)
	}
	return nil
}

// copyBlocks copies r to dev from offset 0 in blockChunk pieces; a piece of zeros is written
// only where dev does not read as zeros. done counts the bytes copied.
func copyBlocks(ctx context.Context, dev *os.File, r io.Reader, done *atomic.Int64) error {
	buf, old := make([]byte, blockChunk), make([]byte, blockChunk)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := writeChunk(dev, buf[:n], old[:n], off); err != nil {
				return err
			}
			off += int64(n)
			done.Add(int64(n))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read the image at %d: %w", off, rerr)
		}
	}
}

func writeChunk(dev *os.File, p, old []byte, off int64) error {
	if isZero(p) {
		if _, err := dev.ReadAt(old, off); err == nil && isZero(old) {
			return nil
		}
	}
	if _, err := dev.WriteAt(p, off); err != nil {
		return fmt.Errorf("write the device at %d: %w", off, err)
	}
	return nil
}

var zeroChunk = make([]byte, blockChunk)

func isZero(p []byte) bool { return bytes.Equal(p, zeroChunk[:len(p)]) }

// restoreBlockVolume is Restore of a block volume: the snapshot's image (or the device FromDir,
// a claim made from a kept VolumeSnapshot) written over the device Target.
func restoreBlockVolume(ctx context.Context, r kopiarepo.Repository, cfg RestoreConfig, res *Result) error {
	if cfg.DiffOnly || cfg.SubPath != "" {
		return errors.New("a block volume is restored whole: --include-path and a dry run of an in-place restore apply to filesystem volumes only")
	}
	if err := checkBlock(cfg.Target, "target"); err != nil {
		return err
	}
	var c counters
	sink := func() { res.Files, res.Bytes = 1, c.bytes.Load() }
	defer sink()
	if cfg.FromDir != "" {
		if err := checkBlock(cfg.FromDir, "source device"); err != nil {
			return err
		}
		src, err := os.Open(cfg.FromDir)
		if err != nil {
			return blockOpenError(cfg.FromDir, "read", err)
		}
		defer src.Close()
		size, _ := src.Seek(0, io.SeekEnd)
		if _, err := src.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("source device %s: %w", cfg.FromDir, err)
		}
		if err := writeDevice(ctx, src, size, cfg.Target, &c); err != nil {
			return fmt.Errorf("copy %s into %s: %w", cfg.FromDir, cfg.Target, err)
		}
		return nil
	}
	root, _, _, err := restoreRoot(ctx, r, cfg, res)
	if err != nil {
		return err
	}
	what := "snapshot " + cfg.SnapshotID
	if res.PVC != "" {
		what += " of volume " + res.Namespace + "/" + res.PVC
	}
	f, err := blockFile(ctx, root, what)
	if err != nil {
		return err
	}
	if err := restoreImage(ctx, r, f, cfg.Target, cfg.Parallel, &c); err != nil {
		return fmt.Errorf("restore %s into %s: %w", what, cfg.Target, err)
	}
	return nil
}

// blockPart is the range of an image one worker of a parallel restore writes at a time.
const blockPart = 64 << 20

// blockWorkers is how many parts of an image are restored at once: one per CPU (at least 2),
// never more than asked (--parallel).
func blockWorkers(parallel int) int {
	n := DefaultParallel()
	if parallel > 0 {
		n = min(n, parallel)
	}
	return n
}

// restoreImage writes the image f over the device target: its chunks fetched parallel at once
// (fetchImage), or, for an image without an index, blockWorkers parts of blockPart at once, each
// through a reader of its own (Kopia's object readers seek).
func restoreImage(ctx context.Context, r kopiarepo.Repository, f fs.File, target string, parallel int, c *counters) error {
	dev, err := os.OpenFile(target, os.O_RDWR, 0)
	if err != nil {
		return blockOpenError(target, "write", err)
	}
	defer dev.Close()
	size := f.Size()
	if have, err := dev.Seek(0, io.SeekEnd); err == nil && size > have {
		return fmt.Errorf("the target device %s holds %d bytes, the backed-up volume %d: restore into a claim at least as large", target, have, size)
	}
	chunks, indexed, err := imageChunks(ctx, r, f)
	switch {
	case err != nil:
		return err
	case indexed:
		err = fetchImage(ctx, r, chunks, dev, fetchers(chunks, parallel), c)
	default:
		err = readParts(ctx, f, dev, blockWorkers(parallel), c)
	}
	if err != nil {
		return err
	}
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("flush %s: %w", target, err)
	}
	return nil
}

// readParts writes the image f over dev, workers parts of blockPart at once, each through a
// reader of its own: decrypting and writing one stream keeps one CPU busy at most.
func readParts(ctx context.Context, f fs.File, dev *os.File, workers int, c *counters) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	parts := make(chan int64)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			if errs[i] = restoreParts(wctx, f, dev, parts, c); errs[i] != nil {
				cancel() // the other workers stop at their next chunk
			}
		})
	}
feed:
	for off := int64(0); off < f.Size(); off += blockPart {
		select {
		case parts <- off:
		case <-wctx.Done():
			break feed
		}
	}
	close(parts)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// restoreParts writes the parts it receives (offsets) from one reader of the image.
func restoreParts(ctx context.Context, f fs.File, dev *os.File, parts <-chan int64, c *counters) error {
	rd, err := f.Open(ctx)
	if err != nil {
		return fmt.Errorf("open %s: %w", BlockEntry, err)
	}
	defer rd.Close()
	buf, old := make([]byte, blockChunk), make([]byte, blockChunk)
	for off := range parts {
		if _, err := rd.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("seek the image to %d: %w", off, err)
		}
		for pos := off; pos < off+blockPart; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, rerr := io.ReadFull(rd, buf)
			if n > 0 {
				if err := writeChunk(dev, buf[:n], old[:n], pos); err != nil {
					return err
				}
				pos += int64(n)
				c.bytes.Add(int64(n))
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				return fmt.Errorf("read the image at %d: %w", pos, rerr)
			}
		}
	}
	return nil
}
