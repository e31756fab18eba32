package repo

import (
	"context"
	"fmt"
	"io"
	"strings"

	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
)

// Windows of data packs held in memory by the storage adapter. A restore of many small files
// reads each file's content with its own ranged read of a data pack ("p" blob) — one S3 GET per
// file, or an open and a read of the blob's file (and its attributes) on a filesystem location —
// which made a restore of 50,000 small files four to six times slower than their backup. Kopia
// packs the contents of a directory's files together as it uploads them, and a restore walks the
// tree in the same order, so the first small read of a pack fetches the window of windowBytes
// around it and the next reads of that window are served from memory. Large reads (the chunks
// of big files) go to the storage by range, as before.
const (
	windowBytes      = 4 << 20   // one window: a 20 MiB pack is read in five
	smallRead        = 256 << 10 // reads up to this size go through a window
	windowCacheBytes = 32 << 20  // bound of the windows kept (least recently used go first)
)

// fromWindow serves a small read of a data pack from its window, fetching the window once
// however many readers ask at once. done is false when the read is not one for a window.
func (s *Storage) fromWindow(ctx context.Context, id kblob.ID, offset, length int64, output kblob.OutputBuffer) (done bool, err error) {
	if s.windows == nil || length <= 0 || length > smallRead || !strings.HasPrefix(string(id), string(content.PackBlobIDPrefixRegular)) {
		return false, nil
	}
	start := offset / windowBytes * windowBytes
	if offset+length > start+windowBytes {
		return false, nil // across two windows: by range
	}
	key := kblob.ID(fmt.Sprintf("%s@%d", id, start))
	data, _, err := s.windows.get(ctx, key, func(ctx context.Context) ([]byte, error) {
		r, err := s.bucket.NewRangeReader(ctx, string(id), start, windowBytes, nil)
		if err != nil {
			return nil, s.translate("get", id, err)
		}
		defer r.Close() //nolint:errcheck // read-only
		n := min(windowBytes, max(r.Size()-start, 0))
		b := make([]byte, n) // one allocation of the window's size, not ReadAll's doublings
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, s.translate("get", id, err)
		}
		return b, nil
	})
	if err != nil {
		return true, err
	}
	if offset+length > start+int64(len(data)) {
		return true, fmt.Errorf("get %s [%d+%d]: the blob ends at %d: %w", id, offset, length, start+int64(len(data)), kblob.ErrInvalidRange)
	}
	_, err = output.Write(data[offset-start : offset-start+length])
	return true, err
}
