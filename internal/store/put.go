package store

import (
	"bytes"
	"context"
	"io"

	"gocloud.dev/blob"
)

// Every write to a bucket goes through Upload (or Put, NewStream), never through gocloud's
// Bucket.WriteAll or a Writer's Write: gocloud v0.47.0's Azure writer panics in Close when an
// upload that was written to fails (its upload goroutine clears the pipe reader that Close then
// closes), so a refused conditional write, a locked object or a dropped connection on azblob://
// would crash the command. An upload from a reader takes the driver's own path and returns the
// error. Locked locations (lock.go) add their retention here too.

// Upload writes r under key in b. opts.ContentType defaults to application/octet-stream (gocloud's
// Upload needs one); opts.ContentMD5 must be unset (it would send the upload down the Write path).
func Upload(ctx context.Context, b *blob.Bucket, key string, r io.Reader, opts *blob.WriterOptions) error {
	o := blob.WriterOptions{}
	if opts != nil {
		o = *opts
	}
	if o.ContentType == "" {
		o.ContentType = "application/octet-stream"
	}
	o.ContentMD5 = nil
	return b.Upload(ctx, key, r, &o)
}

// Put writes data under key in the location (see Upload).
func (l *Location) Put(ctx context.Context, key string, data []byte, opts *blob.WriterOptions) error {
	return Upload(ctx, l.bucket, key, bytes.NewReader(data), l.lockOptions(opts))
}

// Stream is an upload fed by writes: the object appears when Close succeeds; cancelling the
// context given to NewStream abandons it.
type Stream struct {
	pw   *io.PipeWriter
	done chan error
}

// NewStream starts an upload of key in b whose content is written to the returned Stream.
func NewStream(ctx context.Context, b *blob.Bucket, key string, opts *blob.WriterOptions) *Stream {
	pr, pw := io.Pipe()
	s := &Stream{pw: pw, done: make(chan error, 1)}
	go func() {
		err := Upload(ctx, b, key, pr, opts)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err != nil {
			_ = pr.CloseWithError(err)
		} else {
			_ = pr.Close()
		}
		s.done <- err
	}()
	return s
}

// Write hands p to the upload; it fails once the upload has failed.
func (s *Stream) Write(p []byte) (int, error) { return s.pw.Write(p) }

// Close ends the content and waits for the upload: its error, if any.
func (s *Stream) Close() error {
	_ = s.pw.Close()
	return <-s.done
}

// NewStream starts an upload of key in the location (see the package function).
func (l *Location) NewStream(ctx context.Context, key string, opts *blob.WriterOptions) *Stream {
	return NewStream(ctx, l.bucket, key, l.lockOptions(opts))
}
