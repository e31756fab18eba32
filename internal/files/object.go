package files

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/kopia/kopia/repo/object"
)

// Limits of one object's walk. Kopia writes a file as one content or as a seek table of contents
// (chunks of 128 KiB and more), and nests a table in another only past ~70,000 chunks; a table
// entry is under 100 bytes of JSON. Whatever an object holds, reading it costs at most about its
// declared size: every piece must fit in what its parent declares, the pieces are counted, and
// the walk fails at the first one that does not fit.
const (
	maxDepth = 6 // seek tables inside seek tables
	// pieceBytes: one piece (a content or a seek table entry, at any depth) is allowed per
	// pieceBytes of declared size, plus basePieces. Kopia's chunks are 128 KiB or more except a
	// file's last; the margin is for files concatenated from parts (parallel uploads).
	pieceBytes = 4 << 10
	basePieces = 1024
	// unsizedPieceBytes is pieceBytes for objects without a declared size, which are read whole
	// up to their bound: directories and symlinks (Kopia writes them in chunks of 2 MiB or more).
	unsizedPieceBytes = 64 << 10
	// indexEntryBytes of seek table JSON are allowed per piece, plus indexBaseBytes.
	indexEntryBytes = 256
	indexBaseBytes  = 64 << 10
	// maxUnsized bounds an object read without a declared size: a directory (about a million
	// entries) or a symlink.
	maxUnsized = 256 << 20
)

// walkBudget counts the pieces of one object's walk, across all its depths.
type walkBudget struct {
	left int64
	size int64 // what it was made for, for messages
}

func newBudget(size int64, exact bool) *walkBudget {
	per := int64(pieceBytes)
	if !exact {
		per = unsizedPieceBytes
	}
	return &walkBudget{left: basePieces + size/per, size: size}
}

func (b *walkBudget) take(oid object.ID) error {
	if b.left--; b.left < 0 {
		return fmt.Errorf("object %v: more pieces than %d bytes of data can need: %w", oid, b.size, errCrafted)
	}
	return nil
}

// indexLimit is the most seek table JSON read for an object of size bytes.
func indexLimit(size int64) int64 {
	return indexBaseBytes + indexEntryBytes*(basePieces+size/pieceBytes)
}

// objectWalk gives one object's data in order, a piece at a time, without reading ahead.
type objectWalk struct {
	c     *contents
	ctx   context.Context
	oid   object.ID
	size  int64 // declared, or the most it may hold when !exact
	exact bool
	depth int
	b     *walkBudget

	started, ended bool
	// a seek table: its JSON, the entry being read, the bytes its entries cover so far
	dec   *json.Decoder
	child *objectWalk
	off   int64
}

// walkObject walks oid, which must hold exactly size bytes (exact) or at most size.
func (c *contents) walkObject(ctx context.Context, oid object.ID, size int64, exact bool) *objectWalk {
	return &objectWalk{c: c, ctx: ctx, oid: oid, size: size, exact: exact, b: newBudget(size, exact)}
}

func (w *objectWalk) sub(oid object.ID, size int64, exact bool) *objectWalk {
	return &objectWalk{c: w.c, ctx: w.ctx, oid: oid, size: size, exact: exact, depth: w.depth + 1, b: w.b}
}

// next returns the object's next piece of data; io.EOF after the last.
func (w *objectWalk) next() ([]byte, error) {
	if err := w.ctx.Err(); err != nil {
		return nil, err
	}
	if w.ended {
		return nil, io.EOF
	}
	if _, ok := w.oid.IndexObjectID(); ok {
		return w.nextFromTable()
	}
	w.ended = true
	return w.direct()
}

// direct reads an object of one content.
func (w *objectWalk) direct() ([]byte, error) {
	id, compressed, ok := w.oid.ContentID()
	if !ok {
		return nil, fmt.Errorf("object %v: not a content or a seek table: %w", w.oid, errCrafted)
	}
	if err := w.b.take(w.oid); err != nil {
		return nil, err
	}
	data, err := w.c.content(w.ctx, id, w.size)
	if err == nil && compressed {
		data, err = decompressObject(w.oid, data, w.size)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > w.size || (w.exact && int64(len(data)) != w.size) {
		return nil, fmt.Errorf("object %v holds %d bytes where %d are declared: %w", w.oid, len(data), w.size, errCrafted)
	}
	return data, nil
}

// nextFromTable reads a seek table's entries one by one, each object in turn.
func (w *objectWalk) nextFromTable() ([]byte, error) {
	if !w.started {
		if err := w.openTable(); err != nil {
			return nil, err
		}
		w.started = true
	}
	for {
		if w.child != nil {
			data, err := w.child.next()
			if err != io.EOF {
				return data, err
			}
			w.child = nil
		}
		if !w.dec.More() {
			w.ended = true
			if err := w.closeTable(); err != nil {
				return nil, err
			}
			return nil, io.EOF
		}
		var e object.IndirectObjectEntry
		if err := w.dec.Decode(&e); err != nil {
			return nil, w.tableError(err)
		}
		if err := w.checkEntry(e); err != nil {
			return nil, err
		}
		w.child = w.sub(e.Object, e.Length, true)
		w.off += e.Length
	}
}

// checkEntry admits an entry that starts where the last ended and fits in what is declared.
func (w *objectWalk) checkEntry(e object.IndirectObjectEntry) error {
	if err := w.b.take(w.oid); err != nil {
		return err
	}
	if e.Start != w.off || e.Length <= 0 || e.Length > w.size-w.off {
		return fmt.Errorf("object %v: seek table entry at %d of %d bytes does not fit the %d bytes declared (after %d): %w", w.oid, e.Start, e.Length, w.size, w.off, errCrafted)
	}
	return nil
}

// openTable reads the seek table's JSON up to its first entry:
// {"stream":"kopia:indirect","entries":[{"s":0,"l":N,"o":"..."},...]}.
func (w *objectWalk) openTable() error {
	if w.depth >= maxDepth {
		return fmt.Errorf("object %v: seek tables nested more than %d deep: %w", w.oid, maxDepth, errCrafted)
	}
	idx, _ := w.oid.IndexObjectID()
	w.dec = json.NewDecoder(&walkReader{w: w.sub(idx, indexLimit(w.size), false)})
	if err := w.expect(json.Delim('{')); err != nil {
		return err
	}
	for w.dec.More() {
		key, err := w.dec.Token()
		if err != nil {
			return w.tableError(err)
		}
		switch key {
		case "stream":
			var s string
			if err := w.dec.Decode(&s); err != nil || s != "kopia:indirect" {
				return w.tableError(fmt.Errorf("stream %q", s))
			}
		case "entries":
			return w.expect(json.Delim('['))
		default:
			var skip json.RawMessage
			if err := w.dec.Decode(&skip); err != nil {
				return w.tableError(err)
			}
		}
	}
	return w.tableError(errors.New("no entries"))
}

// closeTable reads the end of the entries and of the table, and checks it covered the size.
func (w *objectWalk) closeTable() error {
	if err := w.expect(json.Delim(']')); err != nil {
		return err
	}
	for w.dec.More() {
		var skip json.RawMessage
		if _, err := w.dec.Token(); err != nil {
			return w.tableError(err)
		}
		if err := w.dec.Decode(&skip); err != nil {
			return w.tableError(err)
		}
	}
	if err := w.expect(json.Delim('}')); err != nil {
		return err
	}
	if w.exact && w.off != w.size {
		return fmt.Errorf("object %v: its seek table covers %d bytes where %d are declared: %w", w.oid, w.off, w.size, errCrafted)
	}
	return nil
}

func (w *objectWalk) expect(d json.Delim) error {
	tok, err := w.dec.Token()
	if err != nil {
		return w.tableError(err)
	}
	if tok != d {
		return w.tableError(fmt.Errorf("%v where %v belongs", tok, d))
	}
	return nil
}

func (w *objectWalk) tableError(err error) error {
	if errors.Is(err, errCrafted) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("read the seek table of object %v: %w", w.oid, err)
}

// walkReader reads a walk as a stream.
type walkReader struct {
	w   *objectWalk
	buf []byte
	n   int64
}

func (r *walkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		data, err := r.w.next()
		if err != nil {
			return 0, err
		}
		r.buf = data
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.n += int64(n)
	return n, nil
}

// each calls fn with oid's data in order, one content at a time, and returns the bytes given.
// The object must hold exactly size bytes; it stops at the first piece that breaks that, and at
// ctx's end.
func (c *contents) each(ctx context.Context, oid object.ID, size int64, fn func([]byte) error) (int64, error) {
	w := c.walkObject(ctx, oid, size, true)
	var n int64
	for {
		data, err := w.next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := fn(data); err != nil {
			return n, err
		}
		n += int64(len(data))
	}
}
