package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	azblobblob "github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Version is one stored version of an object, as a conditional write compares it: its ETag
// (S3, Azure), its generation (GCS), or a hash of its content (file://, mem://, where this
// process does the comparing under a lock).
type Version string

// ErrChanged is returned (wrapped) by ReplaceIf when the object is not the version given any more.
var ErrChanged = errors.New("the object changed since it was read")

// ReadVersion reads key whole, refusing more than max bytes, and returns its version.
func (l *Location) ReadVersion(ctx context.Context, key string, max int64) ([]byte, Version, error) {
	if p, ok := l.localPath(key); ok {
		data, err := readLocal(p, max)
		if err != nil {
			return nil, "", err
		}
		return data, hashVersion(data), nil
	}
	r, err := l.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, "", l.Scrub(err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, "", l.Scrub(err)
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("%s in %s is larger than %d bytes", key, l.display, max)
	}
	return data, readerVersion(r, data), nil
}

// readerVersion is the version of the object r read: from the same response, so that it is the
// version of what was read.
func readerVersion(r *blob.Reader, data []byte) Version {
	var s3out s3.GetObjectOutput
	if r.As(&s3out) && s3out.ETag != nil {
		return Version(*s3out.ETag)
	}
	var gcs *storage.Reader
	if r.As(&gcs) && gcs != nil {
		return Version("generation:" + strconv.FormatInt(gcs.Attrs.Generation, 10))
	}
	var az azblobblob.DownloadStreamResponse
	if r.As(&az) && az.ETag != nil {
		return Version(*az.ETag)
	}
	return hashVersion(data)
}

func hashVersion(data []byte) Version {
	h := sha256.Sum256(data)
	return Version("sha256:" + hex.EncodeToString(h[:]))
}

// ReplaceIf stores data under key only if key still holds version v, in one step two writers
// cannot both pass (S3 If-Match, GCS generation match, Azure If-Match; on file:// and mem:// a
// lock of this process and of others on the same machine). Anything else there is ErrChanged.
func (l *Location) ReplaceIf(ctx context.Context, key string, data []byte, v Version) error {
	if p, ok := l.localPath(key); ok {
		return replaceLocal(p, data, v)
	}
	if l.bucketURL == "" || hasScheme(l.bucketURL, "mem") {
		return l.replaceMem(ctx, key, data, v)
	}
	opts := &blob.WriterOptions{ContentType: "application/json", BeforeWrite: func(as func(any) bool) error {
		return ifMatch(as, v)
	}}
	err := Upload(ctx, l.bucket, key, bytes.NewReader(data), opts)
	switch code := gcerrors.Code(err); {
	case err == nil:
		return nil
	case code == gcerrors.FailedPrecondition || code == gcerrors.NotFound:
		return fmt.Errorf("%s in %s: %w", key, l.display, ErrChanged)
	default:
		return l.Scrub(err)
	}
}

// ifMatch makes the write conditional on v, in the terms of the store's SDK.
func ifMatch(as func(any) bool, v Version) error {
	var s3in *transfermanager.UploadObjectInput
	if as(&s3in) {
		s3in.IfMatch = aws.String(string(v))
		return nil
	}
	var gcs **storage.ObjectHandle
	if as(&gcs) {
		gen, err := strconv.ParseInt(string(v[len("generation:"):]), 10, 64)
		if err != nil || len(v) <= len("generation:") {
			return fmt.Errorf("version %q is not a GCS generation", v)
		}
		*gcs = (*gcs).If(storage.Conditions{GenerationMatch: gen})
		return nil
	}
	var az *azblob.UploadStreamOptions
	if as(&az) {
		etag := azcore.ETag(v)
		az.AccessConditions = &azblobblob.AccessConditions{ModifiedAccessConditions: &azblobblob.ModifiedAccessConditions{IfMatch: &etag}}
		return nil
	}
	return errors.New("this store's writes cannot be made conditional")
}

// memLocks serialises ReplaceIf on mem:// buckets (one process).
var memLocks sync.Mutex

func (l *Location) replaceMem(ctx context.Context, key string, data []byte, v Version) error {
	memLocks.Lock()
	defer memLocks.Unlock()
	cur, err := l.bucket.ReadAll(ctx, key)
	if err != nil || hashVersion(cur) != v {
		return fmt.Errorf("%s in %s: %w", key, l.display, ErrChanged)
	}
	return l.bucket.WriteAll(ctx, key, data, nil)
}

func readLocal(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", p, ErrNotFound)
		}
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, max)
	}
	return data, nil
}

// replaceLocal compares and replaces p under an exclusive lock (lock_*.go), writing the new
// content to a synced temporary file renamed over p.
func replaceLocal(p string, data []byte, v Version) error {
	unlock, err := lockFile(p + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	cur, err := os.ReadFile(p)
	if err != nil || !bytes.Equal([]byte(hashVersion(cur)), []byte(v)) {
		return fmt.Errorf("%s: %w", p, ErrChanged)
	}
	return replaceSynced(p, data)
}

func hasScheme(u, scheme string) bool {
	return strings.HasPrefix(u, scheme+":")
}
