package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"testing"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/object"
	"gocloud.dev/blob/memblob"
)

// recordingWriter notes the compressor each object writer was opened with, by description.
type recordingWriter struct {
	kopiarepo.RepositoryWriter
	mu   sync.Mutex
	comp map[string]compression.Name
}

func (r *recordingWriter) NewObjectWriter(ctx context.Context, opt object.WriterOptions) object.Writer {
	r.mu.Lock()
	r.comp[opt.Description] = opt.Compressor
	r.mu.Unlock()
	return r.RepositoryWriter.NewObjectWriter(ctx, opt)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func jsonLines(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"ts":"2026-12-07T19:%02d:%02dZ","level":"info","msg":"request served","path":"/api/v1/items/%d","status":200}`+"\n", i/60%60, i%60, i)
	}
	return b.Bytes()[:n]
}

// Auto writes a stream whose sample does not compress with no compressor (Kopia would compress
// every content of it and throw the result away), and compresses the rest as asked; whatever
// the decision and however the stream is cut into writes, the object reads back byte for byte.
func TestSampleCompressionSkipsWhatDoesNotCompress(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	r, err := Open(ctx, bucket, "mem", Config{Password: "pw", Create: true, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	compressible := jsonLines(3 << 20)
	mixed := append(randomBytes(SampleSize), compressible...) // decided on its first bytes
	cases := []struct {
		name string
		data []byte
		want compression.Name
	}{
		{"random", randomBytes(3<<20 + 7), ""},
		{"json", compressible, AutoCompressor},
		{"random-head", mixed, ""},
		{"small-random", randomBytes(10 << 10), ""},
		{"small-json", jsonLines(10 << 10), AutoCompressor},
		{"exactly-sample", jsonLines(SampleSize), AutoCompressor},
		{"empty", nil, ""},
	}
	rec := &recordingWriter{comp: map[string]compression.Name{}}
	ids := map[string]object.ID{}
	err = kopiarepo.WriteSession(ctx, r.Repository, kopiarepo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		rec.RepositoryWriter = w
		sw := SampleCompression(rec)
		for _, c := range cases {
			ow := sw.NewObjectWriter(ctx, object.WriterOptions{Description: c.name, Compressor: AutoCompressor})
			if id, err := ow.Checkpoint(); err != nil || id != object.EmptyID {
				return fmt.Errorf("%s: checkpoint before any data = %v, %v", c.name, id, err)
			}
			for rest := c.data; len(rest) > 0; { // odd-sized writes cross the sample's end
				n := min(len(rest), 40_000)
				if _, err := ow.Write(rest[:n]); err != nil {
					return err
				}
				rest = rest[n:]
			}
			if ids[c.name], err = ow.Result(); err != nil {
				return err
			}
			if err := ow.Close(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if got, ok := rec.comp[c.name]; !ok || got != c.want {
			t.Errorf("%s: written with compressor %q (opened %v), want %q", c.name, got, ok, c.want)
		}
		or, err := r.Repository.OpenObject(ctx, ids[c.name])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := io.ReadAll(or)
		_ = or.Close()
		if err != nil || !bytes.Equal(got, c.data) {
			t.Errorf("%s: read back %d bytes (err %v), want the %d written", c.name, len(got), err, len(c.data))
		}
	}
}

// Objects written with no compressor, with a name Kopia does not know, or Kopia's metadata go
// straight through.
func TestSampleCompressionLeavesUncompressedAlone(t *testing.T) {
	rec := &recordingWriter{comp: map[string]compression.Name{}, RepositoryWriter: nilObjectWriter{}}
	sw := SampleCompression(rec)
	for _, o := range []object.WriterOptions{{Description: "none"}, {Description: "unknown", Compressor: "no-such"},
		{Description: "directory", Compressor: "zstd-fastest", Prefix: "k"}} {
		if _, held := sw.NewObjectWriter(context.Background(), o).(*sampledWriter); held {
			t.Errorf("%s: the writer holds a sample", o.Description)
		}
	}
	if len(rec.comp) != 3 {
		t.Errorf("opened %v, want both at once", rec.comp)
	}
}

type nilObjectWriter struct{ kopiarepo.RepositoryWriter }

func (nilObjectWriter) NewObjectWriter(context.Context, object.WriterOptions) object.Writer {
	return nil
}

func TestCompresses(t *testing.T) {
	s2 := compression.ByName[AutoCompressor]
	for _, c := range []struct {
		name   string
		sample []byte
		want   bool
	}{
		{"random", randomBytes(SampleSize), false},
		{"json", jsonLines(SampleSize), true},
		{"zeros", make([]byte, SampleSize), true},
		{"empty", nil, false},
	} {
		if got := Compresses(s2, c.sample); got != c.want {
			t.Errorf("Compresses(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}
