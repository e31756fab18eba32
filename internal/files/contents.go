package files

import (
	"bytes"
	"context"
	"crypto/aes"
	"errors"
	"fmt"
	"reflect"

	kfs "github.com/kopia/kopia/fs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// contents reads objects from their decrypted Kopia contents, each handed on as the slice the
// repository returns. Kopia's object reader copies every content once more into a fresh chunk
// buffer (allocated and zeroed) and the caller's read copies it again: in a profile of cp those
// copies were a fifth of its user CPU, and cp is CPU-bound. What it reads and checks is Kopia's:
// each content is decrypted and authenticated as the content manager does.
//
// It is also the one reader of objects this package uses, because Kopia's trusts the seek tables
// it reads: nested tables expand before any check, a table's lengths size its buffers, and a
// compressed content expands whole. Everything in a repository is written by whoever holds the
// namespace's key (a namespace admin who read a mover Secret), so object.go walks lazily within
// limits that the declared size sets.
type contents struct {
	rep kopiarepo.DirectRepository
}

// newContents reads rep's contents directly; nil when rep is not a repository that allows it.
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

// objectID is the object that holds e's data, when e is an entry of a snapshot.
func objectID(e kfs.Entry) (object.ID, bool) {
	de, ok := e.(snapshot.HasDirEntry)
	if !ok || de.DirEntry() == nil {
		return object.EmptyID, false
	}
	return de.DirEntry().ObjectID, true
}

// contentSlack is what a content may be stored larger than the data it holds (encryption's
// nonce and tag, a compressor's frame).
const contentSlack = 64 << 10

// content returns the decrypted, decompressed data of id, refusing before any read a content
// stored larger than limit (plus slack), and stopping a decompression past limit.
func (c *contents) content(ctx context.Context, id content.ID, limit int64) ([]byte, error) {
	info, err := c.rep.ContentInfo(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read content %v: %w", id, err)
	}
	if int64(info.PackedLength) > limit+contentSlack {
		return nil, fmt.Errorf("content %v is stored in %d bytes, more than the %d its object may hold: %w", id, info.PackedLength, limit, errCrafted)
	}
	if info.CompressionHeaderID == 0 {
		data, err := c.rep.ContentReader().GetContent(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("read content %v: %w", id, err)
		}
		return data, nil
	}
	// Kopia's GetContent would expand it whole, however large: decrypt and expand it here.
	var packed bytes.Buffer
	if err := c.rep.BlobReader().GetBlob(ctx, info.PackBlobID, int64(info.PackOffset), int64(info.PackedLength), outputBuffer{&packed}); err != nil {
		return nil, fmt.Errorf("read content %v from pack %v: %w", id, info.PackBlobID, err)
	}
	if k := info.EncryptionKeyID; k != 0 {
		return nil, fmt.Errorf("content %v: unsupported encryption key ID %v", id, k)
	}
	h := id.Hash()
	if len(h) < aes.BlockSize {
		return nil, fmt.Errorf("content %v: its ID is too short", id)
	}
	plain, err := decrypt(c.rep.ContentReader().ContentFormat().Encryptor().Decrypt, packed.Bytes(), h[len(h)-aes.BlockSize:])
	if err != nil {
		return nil, fmt.Errorf("content %v in pack %v: %w", id, info.PackBlobID, err)
	}
	comp := compression.ByHeaderID[info.CompressionHeaderID]
	if comp == nil {
		return nil, fmt.Errorf("content %v: unsupported compressor %x", id, info.CompressionHeaderID)
	}
	out := &limitBuffer{max: limit}
	if err := comp.Decompress(out, bytes.NewReader(plain), true); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, fmt.Errorf("content %v expands to more than the %d bytes its object may hold: %w", id, limit, errCrafted)
		}
		return nil, fmt.Errorf("decompress content %v: %w", id, err)
	}
	return out.Bytes(), nil
}

// decompressObject expands an object compressed whole (as repositories before Kopia 0.9 wrote
// them, object.newRawReader), stopping past limit.
func decompressObject(oid object.ID, data []byte, limit int64) ([]byte, error) {
	out := &limitBuffer{max: limit}
	if err := compression.DecompressByHeader(out, bytes.NewReader(data)); err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, fmt.Errorf("object %v expands to more than the %d bytes it may hold: %w", oid, limit, errCrafted)
		}
		return nil, fmt.Errorf("decompress object %v: %w", oid, err)
	}
	return out.Bytes(), nil
}

// decrypt calls Kopia's Encryptor.Decrypt, whose buffer types are in a package of Kopia's own
// (internal/gather) that cannot be named here: their types are inferred from dec, the input's
// one exported field is set by reflection, and the output read through its methods.
func decrypt[B, W any](dec func(B, []byte, *W) error, cipherText, iv []byte) ([]byte, error) {
	var in B
	slices := reflect.ValueOf(&in).Elem().FieldByName("Slices")
	if !slices.IsValid() || !slices.CanSet() || slices.Type() != reflect.TypeFor[[][]byte]() {
		return nil, errors.New("this build's Kopia keeps its buffers differently: compressed contents cannot be read (report this)")
	}
	slices.Set(reflect.ValueOf([][]byte{cipherText}))
	out := new(W)
	buf, ok := any(out).(interface {
		ToByteSlice() []byte
		Close()
	})
	if !ok {
		return nil, errors.New("this build's Kopia keeps its buffers differently: compressed contents cannot be read (report this)")
	}
	defer buf.Close()
	if err := dec(in, iv, out); err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return buf.ToByteSlice(), nil
}

// outputBuffer is a blob.OutputBuffer on a bytes.Buffer.
type outputBuffer struct{ *bytes.Buffer }

func (b outputBuffer) Length() int { return b.Len() }

var errTooLarge = errors.New("more data than allowed")

// errCrafted marks data no Kopia writer makes: larger, longer or deeper than it says.
var errCrafted = errors.New("the repository holds data that does not match what it declares (damaged, or written by hand)")

// limitBuffer refuses to hold more than max bytes.
type limitBuffer struct {
	bytes.Buffer
	max int64
}

func (b *limitBuffer) Write(p []byte) (int, error) {
	if int64(b.Len())+int64(len(p)) > b.max {
		return 0, errTooLarge
	}
	return b.Buffer.Write(p)
}
