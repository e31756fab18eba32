package velero

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Limits bound everything read from the bucket. The defaults are far above what Velero writes
// for a large cluster; a bucket that exceeds them is damaged or hostile, and the read stops there.
type Limits struct {
	MetadataBytes   int64 // velero-backup.json
	FileBytes       int64 // one gzipped JSON file beside it, compressed
	JSONBytes       int64 // the same, decompressed
	TarballBytes    int64 // the resources tarball, compressed
	ResourcesBytes  int64 // the tarball decompressed: every entry's bytes together
	EntryBytes      int64 // one entry of the tarball (one object's JSON)
	Entries         int   // entries of the tarball
	ListItems       int   // items of one JSON list (volumes, operations, ...)
	Backups         int   // backup directories listed
	ObjectsInBucket int   // objects listed under one backup's directory
}

// DefaultLimits are the limits New uses.
var DefaultLimits = Limits{
	MetadataBytes:   8 << 20,
	FileBytes:       256 << 20,
	JSONBytes:       1 << 30,
	TarballBytes:    4 << 30,
	ResourcesBytes:  4 << 30,
	EntryBytes:      64 << 20, // the apiserver's own limit on a request is 3 MiB
	Entries:         4_000_000,
	ListItems:       1_000_000,
	Backups:         1_000_000,
	ObjectsInBucket: 10_000,
}

// ErrUnreadable is returned (wrapped) when a file of the bucket is not what Velero writes: too
// large, not gzip, not JSON, or an archive entry that is not a safe path.
var ErrUnreadable = errors.New("not a file Velero writes")

// ErrNotFound is returned (wrapped) when a backup or a file does not exist.
var ErrNotFound = errors.New("not found")

// readAll reads key whole, refusing more than max bytes. A missing key is ErrNotFound.
func (l *Location) readAll(ctx context.Context, key string, max int64) ([]byte, error) {
	r, err := l.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, l.readError(key, err)
	}
	defer r.Close() //nolint:errcheck // read-only
	if r.Size() > max {
		return nil, fmt.Errorf("%s in %s is %d bytes, more than the %d read: %w", key, l.display, r.Size(), max, ErrUnreadable)
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, l.readError(key, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s in %s is more than the %d bytes read: %w", key, l.display, max, ErrUnreadable)
	}
	return b, nil
}

func (l *Location) readError(key string, err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("%s in %s: %w", key, l.display, ErrNotFound)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("read %s from %s: %w", key, l.display, l.scrub(err))
}

// readGzipJSON decodes the gzipped JSON file key into v, bounded compressed and decompressed.
func (l *Location) readGzipJSON(ctx context.Context, key string, v any) error {
	b, err := l.readAll(ctx, key, l.Limits.FileBytes)
	if err != nil {
		return err
	}
	return decodeGzipJSON(b, l.Limits.JSONBytes, key, v)
}

// decodeGzipJSON decodes gzipped JSON of at most max decompressed bytes into v. name names it
// in errors.
func decodeGzipJSON(b []byte, max int64, name string, v any) error {
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s is not gzip: %w", name, ErrUnreadable)
	}
	lr := &limitedReader{r: gz, left: max}
	dec := json.NewDecoder(lr)
	if err := dec.Decode(v); err != nil {
		if lr.over {
			return fmt.Errorf("%s decompresses to more than %d bytes (a gzip bomb, or not a file Velero writes): %w", name, max, ErrUnreadable)
		}
		return fmt.Errorf("%s is not the JSON Velero writes: %v: %w", name, err, ErrUnreadable)
	}
	// Nothing but white space may follow the value, and the stream must be whole.
	if _, err := dec.Token(); err != io.EOF {
		if lr.over {
			return fmt.Errorf("%s decompresses to more than %d bytes (a gzip bomb, or not a file Velero writes): %w", name, max, ErrUnreadable)
		}
		return fmt.Errorf("%s holds more than one JSON value or a damaged gzip stream: %w", name, ErrUnreadable)
	}
	return nil
}

// limitedReader fails once more than left bytes were asked for, and says so.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

var errTooLarge = errors.New("too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		if n, _ := l.r.Read(make([]byte, 1)); n > 0 {
			l.over = true
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// list calls fn for each object or directory directly under prefix (delimiter "/"), at most max.
func (l *Location) list(ctx context.Context, prefix string, max int, fn func(*blob.ListObject) error) error {
	it := l.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for n := 0; ; n++ {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return l.readError(prefix, err)
		}
		if n >= max {
			return fmt.Errorf("%s in %s holds more than %d entries: %w", prefix, l.display, max, ErrUnreadable)
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
}
