package mover

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
)

// A block restore from a snapshot fetches the image's chunks (the entries of its Kopia index
// object, BlockSplitter's 512 KiB each) several at once and writes each at its offset: read
// through one object reader, each chunk is one read from the bucket after the other, and a
// bucket's latency, not its bandwidth, sets the pace. A chunk whose object read as zeros once is
// not fetched again (a device's zero chunks are one content): its range is only checked on the
// device, as copyBlocks does.

// maxImageChunk bounds a chunk of an image's index, which comes from the bucket: no Kopia
// splitter cuts bigger ones (DYNAMIC-8M-*: 16 MiB at most).
const maxImageChunk = 16 << 20

// fetchWindow bounds the bytes of chunks a restore holds at once: with the largest chunks, fewer
// are fetched in parallel than --parallel asks.
const fetchWindow = 32 << 20

// maxIndexEntryBytes bounds one entry of an index object ({"s":…,"l":…,"o":"…"}, a 64-digit
// content ID at most) and minIndexChunk the chunks it may list, so that an index is read only up
// to what an image of its size can need.
const (
	maxIndexEntryBytes = 160
	minIndexChunk      = 4 << 10
)

// imageChunk is one entry of an image's index: length bytes at off are object oid.
type imageChunk struct {
	off, length int64
	oid         object.ID
}

// imageChunks lists the chunks of the image f (its index, checked against f's size). ok is false
// when the image has no index (one content, or an entry that is no repository's), which a
// seeking reader restores as well.
func imageChunks(ctx context.Context, r kopiarepo.Repository, f fs.File) (chunks []imageChunk, ok bool, err error) {
	h, isObject := f.(object.HasObjectID)
	if !isObject {
		return nil, false, nil
	}
	index, indirect := h.ObjectID().IndexObjectID()
	if !indirect {
		return nil, false, nil
	}
	rd, err := r.OpenObject(ctx, index)
	if err != nil {
		return nil, false, fmt.Errorf("read the index of %s: %w", BlockEntry, err)
	}
	defer rd.Close()
	size := f.Size()
	if limit := (size/minIndexChunk + 1) * maxIndexEntryBytes; rd.Length() > limit {
		return nil, false, fmt.Errorf("the index of %s is %d bytes, more than an image of %d bytes needs (%d): the snapshot is damaged", BlockEntry, rd.Length(), size, limit)
	}
	var ind struct {
		Stream  string                       `json:"stream"`
		Entries []object.IndirectObjectEntry `json:"entries"`
	}
	if err := json.NewDecoder(rd).Decode(&ind); err != nil {
		return nil, false, fmt.Errorf("read the index of %s: %w (the snapshot is damaged)", BlockEntry, err)
	}
	if chunks, err = checkIndex(ind.Entries, size); err != nil {
		return nil, false, fmt.Errorf("the index of %s: %w: the snapshot is damaged", BlockEntry, err)
	}
	return chunks, true, nil
}

// checkIndex turns an index's entries into chunks: they must follow each other from 0 to size,
// none bigger than maxImageChunk; empty ones are left out.
func checkIndex(entries []object.IndirectObjectEntry, size int64) ([]imageChunk, error) {
	chunks := make([]imageChunk, 0, len(entries))
	var off int64
	for i, e := range entries {
		switch {
		case e.Start != off:
			return nil, fmt.Errorf("entry %d starts at %d, not where the one before ends (%d)", i, e.Start, off)
		case e.Length < 0 || e.Length > maxImageChunk:
			return nil, fmt.Errorf("entry %d at %d is %d bytes (0 to %d)", i, off, e.Length, maxImageChunk)
		case e.Length > size-off:
			return nil, fmt.Errorf("entry %d at %d (%d bytes) ends past the image's %d bytes", i, off, e.Length, size)
		case e.Length == 0:
			continue // the end of a part of a parallel upload (Kopia concatenates the parts' indexes)
		}
		chunks = append(chunks, imageChunk{off: off, length: e.Length, oid: e.Object})
		off += e.Length
	}
	if off != size {
		return nil, fmt.Errorf("its entries cover %d bytes of the image's %d", off, size)
	}
	return chunks, nil
}

// fetchers is how many chunks a restore fetches at once: parallel, fewer when the largest chunk
// would take the window past fetchWindow.
func fetchers(chunks []imageChunk, parallel int) int {
	var biggest int64 = 1
	for _, ch := range chunks {
		biggest = max(biggest, ch.length)
	}
	return max(1, min(parallel, int(fetchWindow/biggest)))
}

// fetchImage writes chunks over dev, workers at once, stopping at the first error (the other
// workers at their next chunk) or when ctx ends.
func fetchImage(ctx context.Context, r kopiarepo.Repository, chunks []imageChunk, dev *os.File, workers int, c *counters) error {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan imageChunk)
	var zeros zeroObjects
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf, old := make([]byte, blockChunk), make([]byte, blockChunk)
			for ch := range next {
				if err := fetchChunk(wctx, r, ch, dev, buf, old, &zeros, c); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, ch := range chunks {
		select {
		case next <- ch:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if wctx.Err() != nil {
		return context.Cause(wctx)
	}
	return nil
}

// fetchChunk writes one chunk at its offset in blockChunk pieces (a piece of zeros only where
// the device is not zero), fetching it unless its object is known to be zeros.
func fetchChunk(ctx context.Context, r kopiarepo.Repository, ch imageChunk, dev *os.File, buf, old []byte, zeros *zeroObjects, c *counters) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var src io.Reader = zeroReader{}
	if !zeros.has(ch.oid) {
		rd, err := r.OpenObject(ctx, ch.oid)
		if err != nil {
			return fmt.Errorf("read the image's chunk at %d (object %s): %w", ch.off, ch.oid, err)
		}
		defer rd.Close()
		if rd.Length() != ch.length {
			return fmt.Errorf("the image's chunk at %d (object %s) is %d bytes, its index says %d: the snapshot is damaged", ch.off, ch.oid, rd.Length(), ch.length)
		}
		src = rd
	}
	allZero := true
	for pos := int64(0); pos < ch.length; {
		p := buf[:min(int64(len(buf)), ch.length-pos)]
		if _, err := io.ReadFull(src, p); err != nil {
			return fmt.Errorf("read the image at %d (object %s): %w", ch.off+pos, ch.oid, err)
		}
		allZero = allZero && isZero(p)
		if err := writeChunk(dev, p, old[:len(p)], ch.off+pos); err != nil {
			return err
		}
		pos += int64(len(p))
		c.bytes.Add(int64(len(p)))
	}
	if allZero {
		zeros.add(ch.oid)
	}
	return nil
}

// zeroObjects are the objects of an image read as zeros. An image has one per chunk size at
// most (a device's zero chunks dedup into one content); the set is bounded all the same.
type zeroObjects struct {
	mu  sync.Mutex
	ids []object.ID
}

const maxZeroObjects = 16

func (z *zeroObjects) has(id object.ID) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Contains(z.ids, id)
}

func (z *zeroObjects) add(id object.ID) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.ids) < maxZeroObjects && !slices.Contains(z.ids, id) {
		z.ids = append(z.ids, id)
	}
}

// zeroReader reads as zeros for ever: the source of a chunk known to be zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
