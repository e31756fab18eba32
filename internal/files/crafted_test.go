package files

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/object"
)

// Objects a namespace admin (who holds the namespace's repository key after reading a mover
// Secret) can write into its repository, each for a file that declares a size it does not hold.
// Every one must fail within seconds, at a cost of about the declared size, in cp and in cat.

// rawObject writes data as one object (no splitting past 8 MiB) and returns its ID.
func rawObject(ctx context.Context, w kopiarepo.RepositoryWriter, data []byte, opts object.WriterOptions) (object.ID, error) {
	if opts.Splitter == "" {
		opts.Splitter = "FIXED-8M"
	}
	ow := w.NewObjectWriter(ctx, opts)
	defer ow.Close()
	if _, err := ow.Write(data); err != nil {
		return object.EmptyID, err
	}
	return ow.Result()
}

// seekTable writes a seek table of entries and returns the object ID that reads through it.
func seekTable(ctx context.Context, w kopiarepo.RepositoryWriter, entries []object.IndirectObjectEntry) (object.ID, error) {
	b, err := json.Marshal(map[string]any{"stream": "kopia:indirect", "entries": entries})
	if err != nil {
		return object.EmptyID, err
	}
	idx, err := rawObject(ctx, w, b, object.WriterOptions{Prefix: "x"})
	if err != nil {
		return object.EmptyID, err
	}
	return object.ParseID("I" + idx.String())
}

// repeated is a seek table's entries: n times o, each of length l.
func repeated(o object.ID, n int, l int64) []object.IndirectObjectEntry {
	out := make([]object.IndirectObjectEntry, n)
	for i := range out {
		out[i] = object.IndirectObjectEntry{Start: int64(i) * l, Length: l, Object: o}
	}
	return out
}

// nestedTables is the re-test's file: a 1-byte leaf, a table of 3,000 of it, a table of 3,000 of
// that (9,000,000 pieces from three small objects); levels adds tables of 3,000 on top.
func nestedTables(levels int) func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
	return func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
		o, err := rawObject(ctx, w, []byte("x"), object.WriterOptions{})
		l := int64(1)
		for range levels {
			if err != nil {
				return o, err
			}
			o, err = seekTable(ctx, w, repeated(o, 3000, l))
			l *= 3000
		}
		return o, err
	}
}

// spaces is a seek table of n one-byte objects " " (JSON white space, so a directory made of it
// parses for as long as it is read), nested levels deep.
func spaces(n, levels int) func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
	return func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
		o, err := rawObject(ctx, w, []byte(" "), object.WriterOptions{})
		l := int64(1)
		for range levels {
			if err != nil {
				return o, err
			}
			o, err = seekTable(ctx, w, repeated(o, n, l))
			l *= int64(n)
		}
		return o, err
	}
}

// chain nests depth tables of one entry each over a 1-byte leaf.
func chain(depth int) func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
	return func(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
		o, err := rawObject(ctx, w, []byte("x"), object.WriterOptions{})
		for range depth {
			if err != nil {
				return o, err
			}
			o, err = seekTable(ctx, w, repeated(o, 1, 1))
		}
		return o, err
	}
}

// zeroReader reads n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.n))
	clear(p[:n])
	z.n -= int64(n)
	return n, nil
}

// objectBomb is an object compressed whole (the 'Z' objects of repositories before Kopia 0.9):
// a few KiB that expand to 256 MiB.
func objectBomb(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
	var packed bytes.Buffer
	if err := compression.ByName["zstd-fastest"].Compress(&packed, &zeroReader{256 << 20}); err != nil {
		return object.EmptyID, err
	}
	oid, err := rawObject(ctx, w, packed.Bytes(), object.WriterOptions{})
	if err != nil {
		return oid, err
	}
	return object.ParseID("Z" + oid.String())
}

// contentBomb is one content compressed by the content manager: 8 MiB of zeros in a few hundred
// bytes.
func contentBomb(ctx context.Context, w kopiarepo.RepositoryWriter) (object.ID, error) {
	return rawObject(ctx, w, make([]byte, 8<<20), object.WriterOptions{Compressor: "zstd-fastest"})
}

func TestCraftedObjectsFailFast(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name string
		n    node
		want string
		// alloc bounds what reading it may allocate (TotalAlloc).
		alloc uint64
	}{
		{"3000x3000 tables for 1 byte", node{name: "tables", raw: nestedTables(2), size: 1}, "does not fit", 8 << 20},
		{"3000^3 tables for 1 byte", node{name: "tables3", raw: nestedTables(3), size: 1}, "does not fit", 8 << 20},
		{"3000x3000 tables for their 9,000,000 bytes", node{name: "tables9m", raw: nestedTables(2), size: 9_000_000}, "more pieces", 16 << 20},
		{"tables nested 8 deep", node{name: "deep", raw: chain(8), size: 1}, "nested more than", 8 << 20},
		{"object compressed whole, 256 MiB for 1 byte", node{name: "zobject", raw: objectBomb, size: 1}, "expands to more than", 8 << 20},
		// 7 MiB: a fresh zstd decoder costs ~5 MiB (its pool is emptied by any GC in the window,
		// which a busy machine makes likely: failed CI runs at 4 MiB), the expansion itself 8 MiB.
		{"compressed content, 8 MiB for 1 byte", node{name: "zcontent", raw: contentBomb, size: 1}, "expands to more than", 7 << 20},
	}
	var tree []node
	for _, tc := range cases {
		tree = append(tree, tc.n)
	}
	f.hostile("evil", "data", tree)
	ctx := context.Background()
	src, err := open(ctx, f.deps, "b1", ref("evil/data"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			e, err := src.entry.(fs.Directory).Child(ctx, tc.n.name)
			if err != nil {
				t.Fatal(err)
			}
			oid, _ := objectID(e)
			// The walk itself: time and memory. TotalAlloc counts the whole process, and the open
			// repository's own goroutines allocate now and then (a slow, busy machine makes one
			// land in the window more often): the least of three walks is what a walk costs.
			var took time.Duration
			alloc := ^uint64(0)
			for range 3 {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				_, err = src.contents.each(ctx, oid, tc.n.size, func([]byte) error { return nil })
				took = time.Since(start)
				runtime.ReadMemStats(&after)
				craftedErr(t, "read", err, tc.want)
				alloc = min(alloc, after.TotalAlloc-before.TotalAlloc)
			}
			t.Logf("refused in %v, %d KiB allocated: %v", took.Round(time.Millisecond), alloc>>10, err)
			if alloc > tc.alloc {
				t.Errorf("reading it allocated %d MiB, more than %d MiB", alloc>>20, tc.alloc>>20)
			}
			// cat and cp, end to end.
			start := time.Now()
			_, err = Cat(ctx, f.deps, "b1", ref("evil/data:/"+tc.n.name), io.Discard)
			craftedErr(t, "cat", err, tc.want)
			res, err := Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref("evil/data:/" + tc.n.name), Dest: t.TempDir()})
			if !errors.Is(err, ErrIncomplete) || len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Reason, tc.want) {
				t.Errorf("cp: %v %+v; want it to fail on the file, saying %q", err, res, tc.want)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("cat and cp took %v to refuse it", took)
			}
		})
	}
}

// Directories and symlinks have no declared size: they are read within a bound of their own.
func TestCraftedDirectoryAndSymlinkFailFast(t *testing.T) {
	f := newFixture(t)
	f.hostile("evil", "data", []node{
		// 3000^3 bytes of white space, from four small objects
		{name: "dir", raw: spaces(3000, 3), rawDir: true},
		{name: "link", raw: spaces(3000, 3), symlink: true},
		{name: "ok", data: "fine"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct{ what, path, want string }{
		{"ls of the directory", "/dir", "more pieces"},
		{"ls of the symlink's directory", "/", "does not fit"},
	} {
		start := time.Now()
		_, err := List(ctx, f.deps, ListConfig{Backup: "b1", Ref: ref("evil/data:" + tc.path)})
		craftedErr(t, tc.what, err, tc.want)
		t.Logf("%s refused in %v", tc.what, time.Since(start).Round(time.Millisecond))
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s took %v to refuse it", tc.what, took)
		}
	}
	start := time.Now()
	res, err := Copy(ctx, f.deps, CopyConfig{Backup: "b1", Ref: ref("evil/data"), Dest: t.TempDir()})
	if !errors.Is(err, ErrIncomplete) || len(res.Errors) != 2 || res.Files != 1 {
		t.Errorf("cp: %v %+v; want the directory and the symlink refused, ok copied", err, res)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("cp took %v to refuse them", took)
	}
}

// craftedErr checks err is the refusal of crafted data, saying why.
func craftedErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if !errors.Is(err, errCrafted) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v; want a refusal of crafted data (%q)", what, err, want)
	}
}
