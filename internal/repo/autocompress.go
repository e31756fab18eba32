package repo

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/object"
)

// Auto's sample test. Kopia compresses every content of a file its policy names a compressor
// for, and keeps the result only when it is smaller, so random data (encrypted volumes, already
// compressed formats with no known extension) costs a full compression pass for nothing. Auto
// compresses the first SampleSize bytes of each stream (a file, or one part of a big file
// uploaded in parallel) with the policy's compressor first, and stores the stream uncompressed
// when the sample does not shrink by at least 1/SampleMinSaving.
const (
	SampleSize      = 64 << 10
	SampleMinSaving = 20 // 5 %
)

// SampleCompression wraps w so that each object written with a compressor is first tested on a
// sample of its data (see SampleSize): what does not compress is written with no compressor,
// the rest as asked. Metadata objects (directories) are left as they are. The result is plain
// Kopia data: a content is compressed with a stock compressor or not at all.
func SampleCompression(w kopiarepo.RepositoryWriter) kopiarepo.RepositoryWriter {
	return &sampledRepositoryWriter{RepositoryWriter: w}
}

type sampledRepositoryWriter struct {
	kopiarepo.RepositoryWriter
}

func (w *sampledRepositoryWriter) NewObjectWriter(ctx context.Context, opt object.WriterOptions) object.Writer {
	c := compression.ByName[opt.Compressor]
	if opt.Compressor == "" || c == nil || opt.Prefix != "" { // a prefix: Kopia's metadata (directories)
		return w.RepositoryWriter.NewObjectWriter(ctx, opt)
	}
	buf, _ := samplePool.Get().(*bytes.Buffer)
	buf.Reset()
	return &sampledWriter{ctx: ctx, repo: w.RepositoryWriter, opt: opt, comp: c, sample: buf}
}

var samplePool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, SampleSize)) }}

// sampledWriter holds the first SampleSize bytes of an object, then opens the real writer with
// the compressor the sample earns and passes everything on. Kopia's uploader writes from one
// goroutine but may ask for a Checkpoint from its checkpoint timer's: the real writer is an
// atomic pointer, and Kopia's writer is safe to checkpoint while written.
type sampledWriter struct {
	ctx    context.Context
	repo   kopiarepo.RepositoryWriter
	opt    object.WriterOptions
	comp   compression.Compressor
	sample *bytes.Buffer // nil once decided
	inner  atomic.Pointer[innerWriter]
}

type innerWriter struct{ object.Writer }

func (s *sampledWriter) Write(p []byte) (int, error) {
	if w := s.inner.Load(); w != nil {
		return w.Write(p)
	}
	n := min(len(p), SampleSize-s.sample.Len())
	s.sample.Write(p[:n])
	if s.sample.Len() < SampleSize {
		return n, nil
	}
	w, err := s.decide()
	if err != nil {
		return n, err
	}
	m, err := w.Write(p[n:])
	return n + m, err
}

// decide opens the real writer for what the sample shows and writes the sample into it.
func (s *sampledWriter) decide() (*innerWriter, error) {
	opt := s.opt
	if !Compresses(s.comp, s.sample.Bytes()) {
		opt.Compressor = ""
	}
	w := &innerWriter{s.repo.NewObjectWriter(s.ctx, opt)}
	_, err := w.Write(s.sample.Bytes())
	samplePool.Put(s.sample)
	s.sample = nil
	s.inner.Store(w)
	return w, err
}

// Checkpoint is empty while the sample is held: nothing has been stored yet.
func (s *sampledWriter) Checkpoint() (object.ID, error) {
	if w := s.inner.Load(); w != nil {
		return w.Checkpoint()
	}
	return object.EmptyID, nil
}

func (s *sampledWriter) Result() (object.ID, error) {
	w := s.inner.Load()
	if w == nil {
		var err error
		if w, err = s.decide(); err != nil {
			return object.EmptyID, err
		}
	}
	return w.Result()
}

func (s *sampledWriter) Close() error {
	if w := s.inner.Load(); w != nil {
		return w.Close()
	}
	if s.sample != nil {
		samplePool.Put(s.sample)
		s.sample = nil
	}
	return nil
}

// Compresses reports whether c shrinks sample by at least 1/SampleMinSaving (header included);
// an empty sample has nothing to gain.
func Compresses(c compression.Compressor, sample []byte) bool {
	if len(sample) == 0 {
		return false
	}
	var out countingWriter
	if err := c.Compress(&out, bytes.NewReader(sample)); err != nil {
		return false
	}
	return out.n <= int64(len(sample))-int64(len(sample))/SampleMinSaving
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}
