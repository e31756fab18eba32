package copier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// copyWorkers is how many blobs are copied at once.
const copyWorkers = 4

// maxListed bounds the names read from one repository listing.
const maxListed = 20_000_000

// RepoCopy is what the copy of one namespace repository did.
type RepoCopy struct {
	Namespace string `json:"namespace"`
	Blobs     int    `json:"blobs"`   // copied now
	Bytes     int64  `json:"bytes"`   // copied now
	Present   int    `json:"present"` // already in the second location
}

// blobTarget is where a repository's blobs go: its bucket (narrowed to the repository) and the
// second location's lock, if it has one.
type blobTarget struct {
	from, to *blob.Bucket
	lock     *store.Lock
	throttle *repo.Throttle // nil: no bandwidth limit
	// after, for tests, is called after each blob copied; an error stops the copy there.
	after func() error
}

// syncRepository copies every blob of a namespace repository that the second location lacks (by
// name, and by length for Kopia's few rewritten blobs), as Kopia's own `repository sync-to`
// does: Kopia's blob names are content-addressed and its blobs written once, so a name present is
// the same blob, and copying the next backup moves only what it added. Packs first, indexes after
// them and the format and maintenance blobs last, so that an interrupted copy never leaves an index
// naming a pack not there; running it again finishes it. Kopia's repository logs are not copied.
func syncRepository(ctx context.Context, t blobTarget, ns string) (RepoCopy, error) {
	res := RepoCopy{Namespace: ns}
	if err := sameRepository(ctx, t.from, t.to, ns); err != nil {
		return res, err
	}
	have, err := listed(ctx, t.to)
	if err != nil {
		return res, fmt.Errorf("list the second location's repository of %s: %w", ns, err)
	}
	src, err := listed(ctx, t.from)
	if err != nil {
		return res, fmt.Errorf("list the repository of %s: %w", ns, err)
	}
	var todo []string
	for k, n := range src {
		switch {
		case strings.HasPrefix(k, "_log"):
		case have[k] == n && (!strings.HasPrefix(k, "kopia.") || k == "kopia.repository" || k == "kopia.blobcfg"):
			res.Present++
		default:
			todo = append(todo, k)
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		if a, b := phase(todo[i]), phase(todo[j]); a != b {
			return a < b
		}
		return todo[i] < todo[j]
	})
	for _, p := range []int{0, 1, 2} {
		var batch []string
		for _, k := range todo {
			if phase(k) == p {
				batch = append(batch, k)
			}
		}
		n, bytes, err := t.copyAll(ctx, batch)
		res.Blobs += n
		res.Bytes += bytes
		if err != nil {
			return res, fmt.Errorf("copy the repository of %s: %w (run the copy again to finish it)", ns, err)
		}
	}
	return res, nil
}

// phase orders blobs: data first, then indexes, then Kopia's format and maintenance blobs.
func phase(k string) int {
	switch {
	case strings.HasPrefix(k, "kopia."):
		return 2
	case strings.HasPrefix(k, "x"):
		return 1
	}
	return 0
}

// copyAll copies keys with copyWorkers at once; it returns how many and how many bytes it copied.
func (t blobTarget) copyAll(ctx context.Context, keys []string) (int, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		n     atomic.Int64
		bytes atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	work := make(chan string)
	fail := func(err error) { once.Do(func() { first = err; cancel() }) }
	for range copyWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				size, err := t.copyOne(ctx, k)
				if err == nil && t.after != nil {
					err = t.after()
				}
				if err != nil {
					fail(err)
					continue
				}
				n.Add(1)
				bytes.Add(size)
			}
		}()
	}
	for _, k := range keys {
		select {
		case work <- k:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return int(n.Load()), bytes.Load(), first
}

// copyOne streams one blob across, with the second location's lock.
func (t blobTarget) copyOne(ctx context.Context, key string) (int64, error) {
	r, err := t.from.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return 0, fmt.Errorf("%s was deleted while it was copied (maintenance of the first location?)", key)
		}
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	opts := &blob.WriterOptions{ContentType: "application/x-kopia"}
	if t.lock != nil {
		opts = store.WithObjectLock(opts, t.lock.Mode, t.lock.Until(time.Now()))
	}
	cr := &countReader{r: t.throttle.Reader(ctx, r)}
	if err := store.Upload(ctx, t.to, key, cr, opts); err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return cr.n, nil
}

// listed maps each blob name of b to its length.
func listed(ctx context.Context, b *blob.Bucket) (map[string]int64, error) {
	out := map[string]int64{}
	it := b.List(&blob.ListOptions{})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(out) == maxListed {
			return nil, fmt.Errorf("more than %d blobs", maxListed)
		}
		out[obj.Key] = obj.Size
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
