package repo

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	kblob "github.com/kopia/kopia/repo/blob"
)

func TestPackCache(t *testing.T) {
	ctx := context.Background()
	var fetches atomic.Int64
	fetchOf := func(data []byte, err error) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { fetches.Add(1); return data, err }
	}
	t.Run("concurrent readers fetch a pack once", func(t *testing.T) {
		c := newPackCache(1 << 20)
		fetches.Store(0)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if b, big, err := c.get(ctx, "qabc", fetchOf([]byte("pack"), nil)); err != nil || big || string(b) != "pack" {
					t.Errorf("get = %q, %v, %v", b, big, err)
				}
			})
		}
		wg.Wait()
		if n := fetches.Load(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
	})
	t.Run("a failed fetch is not kept", func(t *testing.T) {
		c := newPackCache(1 << 20)
		fetches.Store(0)
		if _, _, err := c.get(ctx, "qerr", fetchOf(nil, context.Canceled)); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if b, _, err := c.get(ctx, "qerr", fetchOf([]byte("ok"), nil)); err != nil || string(b) != "ok" || fetches.Load() != 2 {
			t.Errorf("retry = %q, %v after %d fetches", b, err, fetches.Load())
		}
	})
	t.Run("a large pack is used once, then read by range", func(t *testing.T) {
		c := newPackCache(64 << 20)
		large := []byte(strings.Repeat("x", maxCachedPackBytes+1))
		if b, big, err := c.get(ctx, "qbig", fetchOf(large, nil)); err != nil || big || len(b) != len(large) {
			t.Fatalf("first get: %d bytes, big %v, %v", len(b), big, err)
		}
		if b, big, err := c.get(ctx, "qbig", fetchOf(large, nil)); err != nil || !big || b != nil {
			t.Errorf("second get: %d bytes, big %v, %v; want a range read", len(b), big, err)
		}
		if c.size != 0 {
			t.Errorf("cache holds %d bytes of a pack it does not keep", c.size)
		}
	})
	t.Run("least recently used packs go past the bound", func(t *testing.T) {
		c := newPackCache(10)
		for _, id := range []kblob.ID{"q1", "q2", "q3"} {
			if _, _, err := c.get(ctx, id, fetchOf([]byte("12345"), nil)); err != nil {
				t.Fatal(err)
			}
		}
		if _, ok := c.entries["q1"]; ok || c.size != 10 || len(c.entries) != 2 {
			t.Errorf("entries %v, size %d; want q2 and q3, 10 bytes", c.entries, c.size)
		}
	})
	if !cacheable("qabc") || cacheable("pabc") || cacheable("xn0_abc") {
		t.Error("only metadata packs (q) are cached")
	}
}
