package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
)

// lockProbePrefix is where CheckObjectLock writes its probe object.
const lockProbePrefix = ".pvbackup-lock-probe/"

// s3Target is the S3 client of an s3:// location, its bucket and the key prefix of the location.
type s3Target struct {
	client *s3.Client
	bucket string
	prefix string
}

// s3 returns the location's S3 client, or why object lock is not available on its store.
func (l *Location) s3() (*s3Target, error) {
	u, err := url.Parse(l.bucketURL)
	if err != nil || l.bucketURL == "" {
		return nil, fmt.Errorf("%s was not opened from a URL: %w", l.display, ErrLockUnsupported)
	}
	switch u.Scheme {
	case "s3":
	case "file", "mem":
		return nil, fmt.Errorf("%s is a directory (or memory) of this machine, whose owner can always delete its files: %w (use an s3:// bucket created with Object Lock)", l.display, ErrLockUnsupported)
	case "gs":
		return nil, fmt.Errorf("%s: GCS object retention is not supported by this kubectl-pvbackup (no test server enforces it, and an untested lock is no lock): %w; use an s3:// bucket created with Object Lock", l.display, ErrLockUnsupported)
	case "azblob":
		return nil, fmt.Errorf("%s: Azure immutability policies are not supported by this kubectl-pvbackup (Azurite does not enforce them, and an untested lock is no lock): %w; use an s3:// bucket created with Object Lock", l.display, ErrLockUnsupported)
	default:
		return nil, fmt.Errorf("%s: %w", l.display, ErrLockUnsupported)
	}
	var c *s3.Client
	if !l.bucket.As(&c) || c == nil {
		return nil, fmt.Errorf("%s: its S3 client is not reachable: %w", l.display, ErrLockUnsupported)
	}
	return &s3Target{client: c, bucket: u.Host, prefix: l.prefix}, nil
}

// CheckObjectLock proves that the location's bucket locks objects, before anything is written to
// it locked: Object Lock enabled on the bucket (S3 allows that only when the bucket is created,
// and it turns on versioning), and a probe object locked for a minute in governance mode whose
// version the store then refuses to delete. A store that accepts the lock but deletes the version
// anyway is refused too.
func (l *Location) CheckObjectLock(ctx context.Context) error {
	t, err := l.s3()
	if err != nil {
		return err
	}
	cfg, err := t.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: aws.String(t.bucket)})
	if err != nil || cfg.ObjectLockConfiguration == nil || cfg.ObjectLockConfiguration.ObjectLockEnabled != s3types.ObjectLockEnabledEnabled {
		why := "it has none"
		if err != nil {
			why = shortError(l.Scrub(err))
		}
		return fmt.Errorf("bucket %s of %s has no Object Lock (%s): %w; S3 turns it on only when a bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket): create a new bucket for immutable backups", t.bucket, l.display, why, ErrLockUnsupported)
	}
	v, err := t.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(t.bucket)})
	if err != nil || v.Status != s3types.BucketVersioningStatusEnabled {
		return fmt.Errorf("bucket %s of %s has Object Lock but versioning is not enabled: %w", t.bucket, l.display, ErrLockUnsupported)
	}
	return t.probeLock(ctx, l.display)
}

func (t *s3Target) probeLock(ctx context.Context, display string) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := t.prefix + lockProbePrefix + hex.EncodeToString(b)
	until := time.Now().Add(time.Minute)
	put, err := t.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key),
		Body:           strings.NewReader("kubectl-pvbackup object lock probe: unlocks a minute after it was written\n"),
		ObjectLockMode: s3types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(until)})
	if err != nil {
		return fmt.Errorf("write a locked probe object %s into %s: %s: %w", key, display, shortError(err), ErrLockUnsupported)
	}
	// Hidden behind a delete marker whatever happens; its version goes with the bucket's
	// lifecycle once unlocked.
	defer func() {
		_, _ = t.client.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key)})
	}()
	h, err := t.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key), VersionId: put.VersionId})
	if err != nil || h.ObjectLockMode != s3types.ObjectLockModeGovernance || h.ObjectLockRetainUntilDate == nil {
		return fmt.Errorf("the probe object %s of %s came back without its lock: the store ignores Object Lock: %w", key, display, ErrLockUnsupported)
	}
	_, err = t.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(key), VersionId: put.VersionId})
	if err == nil {
		return fmt.Errorf("the store deleted the locked version of the probe object %s of %s: it does not enforce Object Lock: %w", key, display, ErrLockUnsupported)
	}
	return nil
}

// RetainedUntil is when the current version of key unlocks: zero when it has no lock (or the
// store has none).
func (l *Location) RetainedUntil(ctx context.Context, key string) (time.Time, error) {
	a, err := l.bucket.Attributes(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	var h s3.HeadObjectOutput
	if a.As(&h) && h.ObjectLockRetainUntilDate != nil {
		return h.ObjectLockRetainUntilDate.UTC(), nil
	}
	return time.Time{}, nil
}

// ExtendRetention moves the lock of the current version of key (inside the location's bucket
// prefix, as given) to until, in mode: what Kopia's full maintenance does to its blobs.
func ExtendRetention(ctx context.Context, b *blob.Bucket, bucketName, key, mode string, until time.Time) error {
	var c *s3.Client
	if !b.As(&c) || c == nil {
		return fmt.Errorf("extend the lock of %s: %w", key, ErrLockUnsupported)
	}
	_, err := c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(bucketName), Key: aws.String(key),
		Retention: &s3types.ObjectLockRetention{Mode: s3types.ObjectLockRetentionMode(mode), RetainUntilDate: aws.Time(until)}})
	return err
}

// IsLockUnsupported reports whether err says object lock is not available.
func IsLockUnsupported(err error) bool { return errors.Is(err, ErrLockUnsupported) }
