package files

import (
	"bytes"
	"context"
	"fmt"

	kfs "github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// contents writes a file from its decrypted Kopia contents, each written from the slice the
// repository returns. Kopia's object reader copies every content once more into a fresh chunk
// buffer (allocated and zeroed) and the caller's read copies it again: in a profile of cp those
// copies were a fifth of its user CPU, and cp is CPU-bound. What it reads and checks is Kopia's:
// each content is decrypted and authenticated by the content manager, as the object reader does.
type contents struct {
	rep kopiarepo.DirectRepository
}

// newContents reads rep's contents directly; nil when rep is not a repository that allows it
// (the object reader is used instead).
func newContents(rep kopiarepo.Repository) *contents {
	if r, ok := rep.(*repo.Repository); ok {
		rep = r.Repository
	}
	dr, ok := rep.(kopiarepo.DirectRepository)
	if !ok {
		return nil
	}
	return &contents{rep: dr}
}

// GetContent, with the repository's ContentInfo and PrefetchContents, is what
// object.LoadIndexObject reads a seek table with.
func (c *contents) GetContent(ctx context.Context, id content.ID) ([]byte, error) {
	return c.rep.ContentReader().GetContent(ctx, id)
}

func (c *contents) ContentInfo(ctx context.Context, id content.ID) (content.Info, error) {
	return c.rep.ContentInfo(ctx, id)
}

func (c *contents) PrefetchContents(ctx context.Context, ids []content.ID, hint string) []content.ID {
	return c.rep.PrefetchContents(ctx, ids, hint)
}

// piece is one content of an object, in order.
type piece struct {
	id         content.ID
	compressed bool
	length     int64 // what the seek table says; -1 for an object of one content
}

// objectID is the object that holds e's data, when e is an entry of a snapshot.
func objectID(e kfs.File) (object.ID, bool) {
	de, ok := e.(snapshot.HasDirEntry)
	if !ok || de.DirEntry() == nil {
		return object.EmptyID, false
	}
	return de.DirEntry().ObjectID, true
}

// pieces lists oid's contents in order, following seek tables (which may nest).
func (c *contents) pieces(ctx context.Context, oid object.ID, length int64, out []piece) ([]piece, error) {
	if idx, ok := oid.IndexObjectID(); ok {
		table, err := object.LoadIndexObject(ctx, c, idx)
		if err != nil {
			return nil, fmt.Errorf("read the seek table of object %v: %w", oid, err)
		}
		for _, st := range table {
			if out, err = c.pieces(ctx, st.Object, st.Length, out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	id, compressed, ok := oid.ContentID()
	if !ok {
		return nil, fmt.Errorf("object %v: not a content or a seek table", oid)
	}
	return append(out, piece{id: id, compressed: compressed, length: length}), nil
}

// each calls fn with oid's data in order, one content at a time, and returns the bytes given. It
// stops at ctx's end, and when the object holds more than size bytes (the caller compares a short
// result with size).
func (c *contents) each(ctx context.Context, oid object.ID, size int64, fn func([]byte) error) (int64, error) {
	ps, err := c.pieces(ctx, oid, -1, nil)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		data, err := c.read(ctx, p)
		if err != nil {
			return n, err
		}
		if n+int64(len(data)) > size {
			return n, fmt.Errorf("object %v holds more than the %d bytes the backup says", oid, size)
		}
		if err := fn(data); err != nil {
			return n, err
		}
		n += int64(len(data))
	}
	return n, nil
}

// read returns p's data, decompressed, of the length its seek table gives.
func (c *contents) read(ctx context.Context, p piece) ([]byte, error) {
	data, err := c.GetContent(ctx, p.id)
	if err != nil {
		return nil, fmt.Errorf("read content %v: %w", p.id, err)
	}
	if p.compressed { // an object compressed whole, as repositories before Kopia 0.9 did (object.newRawReader)
		var b bytes.Buffer
		if err := compression.DecompressByHeader(&b, bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("decompress content %v: %w", p.id, err)
		}
		data = b.Bytes()
	}
	if p.length >= 0 && int64(len(data)) != p.length {
		return nil, fmt.Errorf("content %v holds %d bytes, its seek table says %d", p.id, len(data), p.length)
	}
	return data, nil
}
