// Package store opens the backup location: a gocloud.dev/blob bucket (s3://, gs://, azblob://,
// file://, mem://) and the prefix inside it under which kubectl-pvbackup keeps its files.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/azureblob" // azblob://
	_ "gocloud.dev/blob/fileblob"  // file://
	_ "gocloud.dev/blob/gcsblob"   // gs://
	_ "gocloud.dev/blob/memblob"   // mem://
	_ "gocloud.dev/blob/s3blob"    // s3://
	"gocloud.dev/gcerrors"
)

// EnvLocation names the environment variable that holds the default location URL.
const EnvLocation = "PVBACKUP_LOCATION"

// ProbeTimeout bounds the reachability check so a wrong endpoint fails in seconds, not minutes.
var ProbeTimeout = 15 * time.Second

// ErrNotFound is returned (wrapped) when a key does not exist.
var ErrNotFound = errors.New("not found")

var schemes = []string{"azblob", "file", "gs", "mem", "s3"}

// Location is an opened backup location.
type Location struct {
	display   string       // the URL without secrets, for messages
	raw       string       // the URL as given, only to scrub its secrets from messages
	bucketURL string       // what gocloud opens; "" when built by FromBucket
	prefix    string       // "" or "a/b/"
	bucket    *blob.Bucket // already narrowed to the prefix
	lock      *Lock        // the location's object lock (ConfigFile); nil: none
}

// FromBucket wraps an opened bucket, for tests and callers that open buckets themselves.
func FromBucket(b *blob.Bucket, display string) *Location {
	return &Location{display: display, bucket: b}
}

// Parse checks a location URL and splits it into the URL gocloud opens and the prefix in the
// bucket. For s3://, gs:// and azblob:// the path after the bucket is the prefix
// ("s3://bucket/team/prod?region=..."); for file:// the path is the directory itself.
func Parse(raw string) (bucketURL, prefix string, err error) {
	if raw == "" {
		return "", "", fmt.Errorf("no backup location: pass --to/--from URL or set %s (e.g. s3://bucket/prefix?region=us-east-1 or file:///var/backups)", EnvLocation)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the raw URL, secrets included: say what is wrong without it.
		return "", "", fmt.Errorf("backup location %q is not a URL: %s", Redact(raw), parseProblem(err))
	}
	if err := checkNoCredentials(u); err != nil {
		return "", "", fmt.Errorf("backup location %q: %w", Redact(raw), err)
	}
	i := sort.SearchStrings(schemes, u.Scheme)
	if i == len(schemes) || schemes[i] != u.Scheme {
		return "", "", fmt.Errorf("backup location %q: unsupported scheme %q (use s3://, gs://, azblob://, file:// or mem://)", Redact(raw), u.Scheme)
	}
	switch u.Scheme {
	case "file":
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || !filepath.IsAbs(u.Path) {
			return "", "", fmt.Errorf("backup location %q: file:// needs an absolute path, e.g. file:///var/backups (three slashes)", Redact(raw))
		}
	case "mem":
		prefix = strings.Trim(u.Path, "/")
		u.Path = ""
	default:
		if u.Host == "" {
			return "", "", fmt.Errorf("backup location %q has no bucket name (e.g. %s://my-bucket/prefix)", Redact(raw), u.Scheme)
		}
		prefix = strings.Trim(u.Path, "/")
		u.Path = ""
	}
	if q := u.Query().Get("prefix"); q != "" {
		prefix = strings.Trim(strings.Trim(prefix, "/")+"/"+strings.Trim(q, "/"), "/")
		qs := u.Query()
		qs.Del("prefix")
		u.RawQuery = qs.Encode()
	}
	if prefix != "" {
		prefix += "/"
	}
	return u.String(), prefix, nil
}

// Open opens the location and checks, within ProbeTimeout, that the bucket is reachable.
func Open(ctx context.Context, raw string) (*Location, error) {
	bucketURL, prefix, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	display := Redact(raw)
	if u, _ := url.Parse(bucketURL); u.Scheme == "file" {
		// fileblob wants the directory to exist; a new backup location is a normal first step.
		if err := os.MkdirAll(u.Path, 0o700); err != nil {
			return nil, fmt.Errorf("backup location %s: %w", display, Scrub(raw, err))
		}
	}
	b, err := openBucket(ctx, bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open backup location %s: %w", display, Scrub(raw, err))
	}
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix)
	}
	if err := Probe(ctx, b, ProbeTimeout); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("backup location %s is not reachable: %s (check the URL, the endpoint and the credentials)", display, shortError(Scrub(raw, err)))
	}
	l := &Location{display: display, raw: raw, bucketURL: bucketURL, prefix: prefix, bucket: b}
	if err := l.loadConfig(ctx); err != nil {
		_ = b.Close()
		return nil, err
	}
	return l, nil
}

// Probe checks, within timeout, that b is reachable and its bucket exists. On failure it closes
// b and returns why (the storage's words, which may hold secrets: Scrub them).
func Probe(ctx context.Context, b *blob.Bucket, timeout time.Duration) error {
	probeCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok, err := b.IsAccessible(probeCtx)
	if err == nil && !ok {
		err = errors.New("the bucket does not exist")
	}
	if err != nil {
		_ = b.Close()
	}
	return err
}

// String returns the location without secrets.
func (l *Location) String() string { return l.display }

// Bucket returns the bucket, narrowed to the location's prefix.
func (l *Location) Bucket() *blob.Bucket { return l.bucket }

// Sub opens a second handle on the location's bucket, narrowed further to prefix ("kopia/ns/").
// It is the caller's to close. A handle of its own, because gocloud's PrefixedBucket takes over
// the bucket it wraps: a view on l's handle would close l.
func (l *Location) Sub(ctx context.Context, prefix string) (*blob.Bucket, error) {
	if l.bucketURL == "" {
		return nil, fmt.Errorf("location %s was not opened from a URL: it has no sub-locations", l.display)
	}
	b, err := openBucket(ctx, l.bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open backup location %s: %w", l.display, l.Scrub(err))
	}
	return blob.PrefixedBucket(b, l.prefix+prefix), nil
}

// Scrub removes the location URL's secrets from err's message (see the package function Scrub).
func (l *Location) Scrub(err error) error { return Scrub(l.raw, err) }

// parseProblem says what url.Parse found wrong, without the URL its error repeats.
func parseProblem(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return "it cannot be parsed"
	}
	var esc url.EscapeError
	var host url.InvalidHostError
	switch {
	case errors.As(ue.Err, &esc):
		return "a %-escape is malformed (write % as %25)"
	case errors.As(ue.Err, &host):
		return "its host has an invalid character"
	case !strings.ContainsAny(ue.Err.Error(), `"'`):
		// Messages without a quoted piece of the URL ("missing protocol scheme") are safe.
		return ue.Err.Error()
	}
	return "it cannot be parsed"
}

// Close releases the bucket.
func (l *Location) Close() error { return l.bucket.Close() }

// IsNotFound reports whether err means a key does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || gcerrors.Code(err) == gcerrors.NotFound
}

// shortError keeps the first line of an SDK error, which often carries a page of retry detail.
func shortError(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// ErrExists is returned (wrapped) by WriteNew when something is already stored under the key.
var ErrExists = errors.New("already exists")

// WriteNew stores data under key only if nothing is there, in one step that two writers cannot
// both pass: S3's If-None-Match (gocloud's IfNotExist), GCS and Azure preconditions, memblob's
// lock. gocloud's fileblob only checks before it renames, which two processes can both pass, so
// for file:// the object is hard-linked into place, which fails if the name exists.
// An existing object is ErrExists; any other error means the location cannot be written.
func (l *Location) WriteNew(ctx context.Context, key string, data []byte, contentType string) error {
	if p, ok := l.localPath(key); ok {
		return writeNewFile(p, data)
	}
	err := l.Put(ctx, key, data, &blob.WriterOptions{ContentType: contentType, IfNotExist: true})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("%s in %s: %w", key, l.display, ErrExists)
	}
	if err != nil {
		return l.Scrub(err)
	}
	return nil
}

// localPath is the file a file:// location keeps key in, when fileblob stores it under its own
// name (it escapes "//", "../", control characters and a trailing slash; those keys go through
// fileblob).
func (l *Location) localPath(key string) (string, bool) {
	u, err := url.Parse(l.bucketURL)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	k := l.prefix + key
	for _, c := range k {
		if c < 32 || c == '\\' {
			return "", false
		}
	}
	if strings.Contains(k, "//") || strings.Contains(k, "../") || strings.HasSuffix(k, "/") || strings.HasPrefix(k, "/") {
		return "", false
	}
	return filepath.Join(u.Path, filepath.FromSlash(k)), true
}

// tempPrefix and tempSuffix frame the name of WriteNew's temporary file on file://, beside the
// final one until it is linked into place.
const tempPrefix, tempSuffix = ".", ".tmp"

// IsTemp reports whether key is WriteNew's temporary file (file:// only): readers that ask "is
// anything here" skip it, since it is either linked into place or removed in a moment.
func IsTemp(key string) bool {
	base := key[strings.LastIndex(key, "/")+1:]
	return strings.HasPrefix(base, tempPrefix) && strings.HasSuffix(base, tempSuffix)
}

func writeNewFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), tempPrefix+filepath.Base(path)+".*"+tempSuffix)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, os.ErrExist) {
		// A filesystem without hard links: an exclusive create is as atomic, but a reader may
		// see the file before its content.
		var f *os.File
		if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			_, err = f.Write(data)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s: %w", path, ErrExists)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}
