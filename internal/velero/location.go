package velero

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// ProbeTimeout bounds the reachability check of Open.
var ProbeTimeout = 15 * time.Second

// Location is a Velero backup storage location opened for reading.
type Location struct {
	bucket    *blob.Bucket // narrowed to the location's prefix
	display   string       // the URL without secrets
	raw       string       // the URL as given, to scrub its secrets from messages
	bucketURL string       // what gocloud opens; "" when built by New
	prefix    string       // the BackupStorageLocation's prefix, "" or "a/b/"
	// Limits bound every read; DefaultLimits unless a caller (a test) lowers them.
	Limits Limits
}

// New reads bucket, already narrowed to the location's prefix; display names it in messages.
// The caller keeps owning bucket. A Location made by New opens no Kopia repository.
func New(bucket *blob.Bucket, display string) *Location {
	return &Location{bucket: bucket, display: display, Limits: DefaultLimits}
}

// Open opens the location at rawURL: any gocloud URL, whose path is the BackupStorageLocation's
// prefix (s3://bucket/prefix?endpoint=...). Unlike a location of our own, a file:// directory
// that does not exist is an error, not created: nothing is ever written.
func Open(ctx context.Context, rawURL string) (*Location, error) {
	bucketURL, prefix, err := store.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("--from-velero: %w", err)
	}
	display := store.Redact(rawURL)
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open Velero location %s: %w", display, store.Scrub(rawURL, err))
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix)
	}
	if err := store.Probe(ctx, b, ProbeTimeout); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("the Velero location %s is not reachable: %s (check the URL, the endpoint and the credentials)", display, firstLine(store.Scrub(rawURL, err)))
	}
	return &Location{bucket: b, display: display, raw: rawURL, bucketURL: bucketURL, prefix: prefix, Limits: DefaultLimits}, nil
}

// String names the location without secrets.
func (l *Location) String() string { return l.display }

// Bucket is the location's bucket, narrowed to its prefix. It is for reading only.
func (l *Location) Bucket() *blob.Bucket { return l.bucket }

// Close releases the bucket.
func (l *Location) Close() error { return l.bucket.Close() }

// sub opens a second handle on the bucket narrowed to prefix (a repository's "kopia/<ns>/"),
// the caller's to close: gocloud's PrefixedBucket takes over the handle it wraps.
func (l *Location) sub(ctx context.Context, prefix string) (*blob.Bucket, error) {
	if l.bucketURL == "" {
		return nil, fmt.Errorf("the Velero location %s was not opened from a URL: its repositories cannot be opened", l.display)
	}
	b, err := blob.OpenBucket(ctx, l.bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open Velero location %s: %w", l.display, l.scrub(err))
	}
	return blob.PrefixedBucket(b, l.prefix+prefix), nil
}

// scrub removes the URL's secrets from err's message.
func (l *Location) scrub(err error) error {
	if l.raw == "" {
		return err
	}
	return store.Scrub(l.raw, err)
}

// RepositoryDisplay names the Kopia repository of namespace in messages.
func (l *Location) RepositoryDisplay(namespace string) string {
	return l.display + " (" + RepositoryPrefix(namespace) + ")"
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
