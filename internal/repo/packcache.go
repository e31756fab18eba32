package repo

import (
	"container/list"
	"context"
	"strings"
	"sync"

	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
)

// Metadata packs held in memory by the storage adapter. Without a local cache (content cache 0,
// see Config.ContentCacheBytes) Kopia reads every directory listing of a snapshot with its own
// ranged GET of a metadata pack ("q" blob): an incremental backup reads the parent's whole tree
// that way, which made the mover's S3 incremental 0.2 s slower than the kopia CLI's, whose
// metadata cache fetches each pack once. Packs are immutable (content-addressed names), so the
// first ranged read of a small one fetches it whole and later reads are served from memory.
const (
	maxCachedPackBytes = 8 << 20  // larger metadata packs are read by range, as before
	packCacheBytes     = 64 << 20 // bound of the whole cache (least recently used go first)
)

type packCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     *list.List // of *packEntry, most recent first
	entries map[kblob.ID]*list.Element
}

type packEntry struct {
	id   kblob.ID
	once sync.Once
	data []byte
	big  bool // larger than maxCachedPackBytes: read by range, never fetched whole again
	err  error
}

func newPackCache(maxBytes int64) *packCache {
	return &packCache{max: maxBytes, lru: list.New(), entries: map[kblob.ID]*list.Element{}}
}

// cacheable says whether a read of blob id belongs in the cache: a metadata pack.
func cacheable(id kblob.ID) bool {
	return strings.HasPrefix(string(id), string(content.PackBlobIDPrefixSpecial))
}

// get returns the whole blob, fetched by fetch once however many readers ask at once; big is
// true (and data nil) for a blob too large to keep, which the caller reads by range.
func (c *packCache) get(ctx context.Context, id kblob.ID, fetch func(context.Context) ([]byte, error)) (data []byte, big bool, err error) {
	c.mu.Lock()
	el, ok := c.entries[id]
	if ok {
		c.lru.MoveToFront(el)
	} else {
		el = c.lru.PushFront(&packEntry{id: id})
		c.entries[id] = el
	}
	e := el.Value.(*packEntry)
	c.mu.Unlock()

	var fetchedBig []byte // a blob too large to keep, fetched whole by this reader
	e.once.Do(func() {
		e.data, e.err = fetch(ctx)
		c.mu.Lock()
		defer c.mu.Unlock()
		cur, ok := c.entries[id]
		kept := ok && cur == el // not evicted while it was fetched
		switch {
		case e.err != nil:
			// Not kept: the next reader tries again (a cancelled read must not stick).
			if kept {
				c.lru.Remove(el)
				delete(c.entries, id)
			}
		case len(e.data) > maxCachedPackBytes:
			// The entry stays, without its data, to send later reads to ranges.
			e.big, fetchedBig, e.data = true, e.data, nil
		case kept:
			c.size += int64(len(e.data))
			for c.size > c.max && c.lru.Len() > 1 {
				old := c.lru.Back()
				oe := old.Value.(*packEntry)
				c.lru.Remove(old)
				delete(c.entries, oe.id)
				c.size -= int64(len(oe.data))
			}
		}
	})
	if fetchedBig != nil {
		return fetchedBig, false, nil
	}
	if e.big {
		return nil, true, nil
	}
	return e.data, false, e.err
}
