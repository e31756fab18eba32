package mover

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
)

// chunkRepo is a repository that counts the opens of each object and lets a test act on them:
// before (an error fails the open) and wrap (the reader handed out).
type chunkRepo struct {
	kopiarepo.Repository
	mu     sync.Mutex
	opened map[object.ID]int
	order  []object.ID
	before func(ctx context.Context, id object.ID, n int) error // n: the opens of id so far, this one included
	wrap   func(id object.ID, rd object.Reader) object.Reader
}

func (r *chunkRepo) OpenObject(ctx context.Context, id object.ID) (object.Reader, error) {
	r.mu.Lock()
	if r.opened == nil {
		r.opened = map[object.ID]int{}
	}
	r.opened[id]++
	n := r.opened[id]
	r.order = append(r.order, id)
	r.mu.Unlock()
	if r.before != nil {
		if err := r.before(ctx, id, n); err != nil {
			return nil, err
		}
	}
	rd, err := r.Repository.OpenObject(ctx, id)
	if err != nil || r.wrap == nil {
		return rd, err
	}
	return r.wrap(id, rd), nil
}

// failingReader returns err once it has read after bytes.
type failingReader struct {
	object.Reader
	after int64
	err   error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, f.err
	}
	n, err := f.Reader.Read(p[:min(int64(len(p)), f.after)])
	f.after -= int64(n)
	return n, err
}

// fetchFixture is a block snapshot of a 32 MiB image (64 chunks of 512 KiB: data, some at
// unaligned offsets, between zero runs), opened for restores through a chunkRepo.
type fetchFixture struct {
	want   []byte
	id     string
	chunks []imageChunk
	r      kopiarepo.Repository
}

func newFetchFixture(t *testing.T) fetchFixture {
	t.Helper()
	ctx := context.Background()
	s := fileSettings(t)
	src := filepath.Join(t.TempDir(), "disk")
	want := blockImage(t, src, 32<<20, 0, 3<<20+4096, 10<<20, 20<<20+512<<10, 31<<20)
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "disk", Backup: "b1", Block: true}, func(Event) {})
	if err != nil {
		t.Fatalf("block backup: %v", err)
	}
	r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeFn)
	root, _, _, err := restoreRoot(ctx, r, RestoreConfig{SnapshotID: res.SnapshotID}, &Result{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := blockFile(ctx, root, res.SnapshotID)
	if err != nil {
		t.Fatal(err)
	}
	chunks, indexed, err := imageChunks(ctx, r, f)
	if err != nil || !indexed || len(chunks) != 64 {
		t.Fatalf("the image's index: %d chunks, indexed %v, %v; want 64 chunks of 512 KiB", len(chunks), indexed, err)
	}
	return fetchFixture{want: want, id: res.SnapshotID, chunks: chunks, r: r}
}

// restore restores the fixture's snapshot into a new zero device through repo, bounded in time so
// that a hang fails the test.
func (fx fetchFixture) restore(t *testing.T, ctx context.Context, repo *chunkRepo) (string, error) {
	t.Helper()
	dev := filepath.Join(t.TempDir(), "dev")
	blockImage(t, dev, 32<<20)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- restoreBlockVolume(ctx, repo, RestoreConfig{SnapshotID: fx.id, Target: dev, Block: true, Parallel: 4}, &Result{})
	}()
	select {
	case err := <-done:
		return dev, err
	case <-time.After(3 * time.Minute):
		t.Fatal("the block restore did not return (a worker or the feeder is stuck)")
		return "", nil
	}
}

// The image's chunks are fetched each through an object read of its own, parallel at once, the
// zero chunk's object once per worker at most (then known), and the device is written byte for
// byte with its zero runs left unwritten.
func TestBlockRestoreFetchesChunks(t *testing.T) {
	fx := newFetchFixture(t)
	var inFlight, most int
	var mu sync.Mutex
	repo := &chunkRepo{Repository: fx.r}
	repo.before = func(context.Context, object.ID, int) error {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		return nil
	}
	repo.wrap = func(_ object.ID, rd object.Reader) object.Reader {
		mu.Lock()
		inFlight--
		mu.Unlock()
		return rd
	}
	dev, err := fx.restore(t, context.Background(), repo)
	if err != nil {
		t.Fatalf("block restore: %v", err)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, fx.want) {
		t.Fatal("the restored device differs from the image")
	}
	if a := allocated(t, dev); a > 12<<20 {
		t.Errorf("restore into a zero device allocated %d bytes; want about the 5 MiB of data", a)
	}
	counts := map[object.ID]int{}
	for _, ch := range fx.chunks {
		counts[ch.oid]++
	}
	var zero object.ID
	for id, n := range counts {
		if n > 1 {
			zero = id // the one object many chunks share: the zero chunk
		}
	}
	for id, n := range counts {
		switch got := repo.opened[id]; {
		case id == zero && (got < 1 || got > 4):
			t.Errorf("the zero chunk (%d chunks) was fetched %d times; want once per worker at most (4)", n, got)
		case id != zero && got != n:
			t.Errorf("chunk object %s (%d chunks) was fetched %d times", id, n, got)
		}
	}
	t.Logf("%d chunk fetches, %d at once at most", len(repo.order), most)
}

// A read that fails in the middle of a chunk fails the restore, naming the volume, the device and
// the offset, and stops the other workers: nothing hangs.
func TestBlockRestoreReadError(t *testing.T) {
	fx := newFetchFixture(t)
	bad := fx.chunks[41] // data at 20.5 MiB
	repo := &chunkRepo{Repository: fx.r}
	repo.wrap = func(id object.ID, rd object.Reader) object.Reader {
		if id == bad.oid {
			return &failingReader{Reader: rd, after: 100 << 10, err: errors.New("connection reset by peer")}
		}
		return rd
	}
	dev, err := fx.restore(t, context.Background(), repo)
	if err == nil {
		t.Fatal("a restore whose chunk read failed succeeded")
	}
	for _, want := range []string{"team-a/disk", dev, "connection reset by peer", "at 21495808"} { // chunk 41: 20.5 MiB
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	// An open that fails: the same.
	repo = &chunkRepo{Repository: fx.r}
	repo.before = func(_ context.Context, id object.ID, _ int) error {
		if id == bad.oid {
			return errors.New("blob not found")
		}
		return nil
	}
	if _, err := fx.restore(t, context.Background(), repo); err == nil || !strings.Contains(err.Error(), "blob not found") || !strings.Contains(err.Error(), "team-a/disk") {
		t.Errorf("a restore whose chunk open failed: %v; want the error naming the volume", err)
	}
}

// A restore canceled while chunks are fetched returns the cancellation, fetching no chunk after
// those in flight.
func TestBlockRestoreCanceled(t *testing.T) {
	fx := newFetchFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	repo := &chunkRepo{Repository: fx.r}
	at := fx.chunks[20].oid // data at 10 MiB
	repo.before = func(_ context.Context, id object.ID, _ int) error {
		if id == at {
			cancel()
		}
		return nil
	}
	_, err := fx.restore(t, ctx, repo)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled restore: %v; want context.Canceled", err)
	}
	// After the cancel each of the 4 workers takes one chunk more at most, and fetches none.
	if n := repo.opened[fx.chunks[63].oid]; n != 0 {
		t.Errorf("the last chunk was fetched %d times after a cancel at the 21st", n)
	}
}

// The index comes from the bucket: its entries must tile the image, each of a size Kopia cuts.
func TestCheckIndex(t *testing.T) {
	e := func(s, l int64) object.IndirectObjectEntry { return object.IndirectObjectEntry{Start: s, Length: l} }
	for _, tc := range []struct {
		name    string
		entries []object.IndirectObjectEntry
		size    int64
		want    string
	}{
		{"ok", []object.IndirectObjectEntry{e(0, 512<<10), e(512<<10, 100)}, 512<<10 + 100, ""},
		{"gap", []object.IndirectObjectEntry{e(0, 512<<10), e(600<<10, 100)}, 600<<10 + 100, "not where the one before ends"},
		{"overlap", []object.IndirectObjectEntry{e(0, 512<<10), e(500<<10, 100)}, 512<<10 + 100, "not where the one before ends"},
		{"empty entry", []object.IndirectObjectEntry{e(0, 512<<10), e(512<<10, 0), e(512<<10, 100)}, 512<<10 + 100, ""},
		{"negative entry", []object.IndirectObjectEntry{e(0, 512<<10), e(512<<10, -1)}, 512 << 10, "is -1 bytes"},
		{"huge entry", []object.IndirectObjectEntry{e(0, 1<<30)}, 1 << 30, "is 1073741824 bytes"},
		{"past the end", []object.IndirectObjectEntry{e(0, 512<<10)}, 100, "ends past"},
		{"short", []object.IndirectObjectEntry{e(0, 512<<10)}, 1 << 20, "cover 524288 bytes"},
		{"none", nil, 1 << 20, "cover 0 bytes"},
	} {
		_, err := checkIndex(tc.entries, tc.size)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	chunks := []imageChunk{{length: 512 << 10}, {length: 16 << 20}}
	if n := fetchers(chunks, 8); n != 2 {
		t.Errorf("fetchers with 16 MiB chunks: %d; want 2 (a 32 MiB window)", n)
	}
	if n := fetchers(chunks[:1], 8); n != 8 {
		t.Errorf("fetchers with 512 KiB chunks: %d; want 8 (--parallel)", n)
	}
}

// An image without an index (a file no repository holds, standing in for an object of one
// content) is read in parts through readers that seek, byte for byte.
func TestBlockRestoreWithoutIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "image")
	want := blockImage(t, src, 3*blockPart/2, 0, blockPart-512<<10, blockPart+8<<20)
	f := &deviceImage{path: src, size: int64(len(want))}
	if _, indexed, err := imageChunks(ctx, nil, f); indexed || err != nil {
		t.Fatalf("an image without an object: indexed %v, %v; want no index", indexed, err)
	}
	dev := filepath.Join(dir, "dev")
	blockImage(t, dev, int64(len(want)))
	var c counters
	if err := restoreImage(ctx, nil, f, dev, 4, &c); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dev); !bytes.Equal(got, want) || c.bytes.Load() != int64(len(want)) {
		t.Errorf("the restored device differs from the image (%d bytes written)", c.bytes.Load())
	}
}
