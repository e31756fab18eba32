package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	_ "gocloud.dev/blob/s3blob" // s3://

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// openS3 opens the bucket of an s3:// URL (whole, not narrowed to the URL's prefix) and its client.
func openS3(ctx context.Context, raw string) (*blob.Bucket, *s3.Client, string, string, error) {
	bucketURL, prefix, err := store.Parse(raw)
	if err != nil {
		return nil, nil, "", "", err
	}
	u, _ := url.Parse(bucketURL)
	if u.Scheme != "s3" {
		return nil, nil, "", "", fmt.Errorf("%s: the lab's bucket is an s3:// URL", store.Redact(raw))
	}
	b, err := blob.OpenBucket(ctx, bucketURL)
	if err != nil {
		return nil, nil, "", "", err
	}
	var c *s3.Client
	if !b.As(&c) {
		_ = b.Close()
		return nil, nil, "", "", errors.New("not an S3 bucket")
	}
	return b, c, u.Host, prefix, nil
}

// runBucket is `velero-lab bucket create|delete|check URL`.
func runBucket(args []string) error {
	if len(args) != 2 {
		return errUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, c, name, _, err := openS3(ctx, args[1])
	if err != nil {
		return err
	}
	defer b.Close()
	switch args[0] {
	case "create":
		if ok, err := b.IsAccessible(ctx); err == nil && ok {
			fmt.Printf("bucket %s exists\n", name)
			return nil
		}
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		fmt.Printf("created bucket %s\n", name)
		return nil
	case "delete":
		return deleteBucket(ctx, b, c, name)
	case "check":
		return checkBucket(ctx, b, name)
	}
	return errUsage
}

// checkBucket fails if the bucket is still there (what hack/velero-lab.sh down must leave: no
// bucket at all), naming how many objects it holds.
func checkBucket(ctx context.Context, b *blob.Bucket, name string) error {
	n, gone, err := eachObject(ctx, b, name, func(string) error { return nil })
	if gone || err != nil {
		return err
	}
	return fmt.Errorf("bucket %s is still there, with %d objects: delete it with hack/velero-lab.sh down", name, n)
}

// deleteBucket deletes every object of the bucket, then the bucket.
func deleteBucket(ctx context.Context, b *blob.Bucket, c *s3.Client, name string) error {
	n, gone, err := eachObject(ctx, b, name, func(key string) error {
		if err := b.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete %s/%s: %w", name, key, err)
		}
		return nil
	})
	if gone || err != nil {
		return err
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	fmt.Printf("deleted bucket %s and its %d objects\n", name, n)
	return nil
}

// eachObject calls fn with the key of every object of the bucket and counts them; gone says
// (and prints) that the bucket is not there at all.
func eachObject(ctx context.Context, b *blob.Bucket, name string, fn func(key string) error) (n int, gone bool, err error) {
	if ok, err := b.IsAccessible(ctx); err != nil || !ok {
		fmt.Printf("bucket %s is gone\n", name)
		return 0, true, nil
	}
	it := b.List(nil)
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n, false, nil
		}
		if err != nil {
			return n, false, fmt.Errorf("list bucket %s: %w", name, err)
		}
		if err := fn(obj.Key); err != nil {
			return n, false, err
		}
		n++
	}
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runExport is `velero-lab export URL DIR --backup NAME... --repo NS...`.
func runExport(args []string) error {
	if len(args) < 2 {
		return errUsage
	}
	var backups, repos listFlag
	fl := flag.NewFlagSet("export", flag.ExitOnError)
	fl.Var(&backups, "backup", "a backup to copy (repeatable)")
	fl.Var(&repos, "repo", "a namespace whose Kopia repository to copy (repeatable)")
	_ = fl.Parse(args[2:])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, _, _, prefix, err := openS3(ctx, args[0])
	if err != nil {
		return err
	}
	defer b.Close()
	dir := args[1]
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	var total int64
	for _, p := range append(prefixes("backups/", backups), prefixes("kopia/", repos)...) {
		n, err := copyPrefix(ctx, b, prefix, p, dir)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Printf("exported %d bytes into %s\n", total, dir)
	return nil
}

func prefixes(parent string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = parent + n + "/"
	}
	return out
}

// copyPrefix copies the objects under bucketPrefix+p into dir/p, leaving out Kopia's logs.
func copyPrefix(ctx context.Context, b *blob.Bucket, bucketPrefix, p, dir string) (int64, error) {
	var total int64
	found := false
	it := b.List(&blob.ListOptions{Prefix: bucketPrefix + p})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		rel := strings.TrimPrefix(obj.Key, bucketPrefix)
		if strings.HasPrefix(filepath.Base(rel), "_log_") {
			continue // Kopia's own logs: never read
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			return 0, err
		}
		out := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return 0, err
		}
		total += int64(len(data))
		found = true
	}
	if !found {
		return 0, fmt.Errorf("nothing under %s%s", bucketPrefix, p)
	}
	return total, nil
}
