package repo

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	kblob "github.com/kopia/kopia/repo/blob"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob"
)

// slicedBytes is a blob in several buffers, as Kopia's packs are, whose reader counts its reads.
type slicedBytes struct {
	slices [][]byte
	reads  *int
}

func (s slicedBytes) all() []byte { return bytes.Join(s.slices, nil) }

func (s slicedBytes) Length() int { return len(s.all()) }

func (s slicedBytes) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, b := range s.slices {
		n, err := w.Write(b)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Reader is, as Kopia's, a Reader, Seeker and Closer and nothing more (no WriteTo).
func (s slicedBytes) Reader() io.ReadSeekCloser {
	return countingReader{bytes.NewReader(s.all()), s.reads}
}

type countingReader struct {
	r     *bytes.Reader
	reads *int
}

func (c countingReader) Read(p []byte) (int, error) {
	*c.reads++
	return c.r.Read(p)
}

func (c countingReader) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }
func (c countingReader) Close() error                              { return nil }

func newSlicedBytes(n, size int) slicedBytes {
	s := slicedBytes{reads: new(int)}
	for i := range n {
		s.slices = append(s.slices, bytes.Repeat([]byte{byte('a' + i)}, size))
	}
	return s
}

// A put to a filesystem location writes the blob's own buffers: nothing is copied through the
// reader (io.Copy's 32 KiB buffer), and the file holds the blob.
func TestPutBlobFileWritesBuffers(t *testing.T) {
	dir := t.TempDir()
	b, err := blob.OpenBucket(context.Background(), fileWithoutSidecars("file://"+dir)) // as Service opens it
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, release := NewStorage(blob.PrefixedBucket(b, "kopia/ns/"), "file:///test")
	defer release()
	data := newSlicedBytes(5, 100<<10)
	if err := st.PutBlob(context.Background(), "p1", data, kblob.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if *data.reads != 0 {
		t.Errorf("the put read the blob %d times through its reader; want its buffers written as they are", *data.reads)
	}
	got, err := os.ReadFile(filepath.Join(dir, "kopia", "ns", "p1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data.all()) {
		t.Errorf("the file holds %d bytes; want the blob's %d", len(got), data.Length())
	}
}

// WriteTo writes what is left to read: the whole blob from the start, the rest after a read, and
// nothing once the reader is at the end.
func TestBlobReaderWriteTo(t *testing.T) {
	data := newSlicedBytes(3, 10)
	want := data.all()
	for _, tc := range []struct {
		name   string
		before int64 // bytes read before WriteTo
		seek   int64 // then a seek to here (-1: none)
	}{
		{"from the start", 0, -1},
		{"after a read", 7, -1},
		{"after a read and a seek back", 7, 0},
		{"after a seek", 0, 12},
		{"at the end", 30, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newBlobReader(data)
			if _, err := io.CopyN(io.Discard, struct{ io.Reader }{r}, tc.before); err != nil {
				t.Fatal(err)
			}
			from := tc.before
			if tc.seek >= 0 {
				if _, err := r.Seek(tc.seek, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				from = tc.seek
			}
			var out bytes.Buffer
			n, err := r.WriteTo(&out)
			if err != nil || n != int64(len(want))-from || !bytes.Equal(out.Bytes(), want[from:]) {
				t.Errorf("WriteTo = %d, %v, %q; want %d bytes %q", n, err, out.Bytes(), len(want)-int(from), want[from:])
			}
			if m, err := r.Read(make([]byte, 1)); m != 0 || err != io.EOF {
				t.Errorf("Read after WriteTo = %d, %v; want 0, EOF", m, err)
			}
		})
	}
}
