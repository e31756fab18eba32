package store

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in, url, prefix, err string
	}{
		{in: "s3://bkt?region=eu-west-1", url: "s3://bkt?region=eu-west-1"},
		{in: "s3://bkt/team/prod/?region=x&endpoint=http://h:9000", url: "s3://bkt?region=x&endpoint=http://h:9000", prefix: "team/prod/"},
		{in: "gs://bkt/p", url: "gs://bkt", prefix: "p/"},
		{in: "azblob://container/a/b", url: "azblob://container", prefix: "a/b/"},
		{in: "s3://bkt/a?prefix=b", url: "s3://bkt", prefix: "a/b/"},
		{in: "file:///var/backups", url: "file:///var/backups"},
		{in: "mem://", url: "mem:"},
		{in: "", err: "no backup location: pass --to/--from URL or set PVBACKUP_LOCATION"},
		{in: "file://relative/dir", err: "file:// needs an absolute path"},
		{in: "ftp://host/x", err: `unsupported scheme "ftp" (use s3://, gs://, azblob://, file:// or mem://)`},
		{in: "/var/backups", err: `unsupported scheme ""`},
		{in: "s3:///prefix", err: "has no bucket name"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			u, p, err := Parse(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want error %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil || u != tc.url || p != tc.prefix {
				t.Fatalf("got %q %q %v, want %q %q", u, p, err, tc.url, tc.prefix)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := Redact("azblob://c/p?sas_token=abc&account=me&x_secret=1")
	if strings.Contains(got, "abc") || strings.Contains(got, "=1") || !strings.Contains(got, "account=me") {
		t.Fatalf("Redact = %s", got)
	}
	if got := Redact("s3://user:pass@bkt/p"); strings.Contains(got, "pass") {
		t.Fatalf("Redact = %s", got)
	}
}

// TestUnreachable checks that a wrong endpoint fails in seconds with the location named.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	start := time.Now()
	_, err = Open(context.Background(), "s3://bkt/p?region=us-east-1&use_path_style=true&disable_https=true&endpoint=http://"+addr)
	if err == nil || !strings.Contains(err.Error(), "backup location s3://bkt/p?") || !strings.Contains(err.Error(), "is not reachable") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > ProbeTimeout {
		t.Fatalf("took %s", d)
	}
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
}

// TestSub checks that a sub-location and the location itself stay usable side by side, as the
// catalog and a Kopia repository on one location need.
func TestSub(t *testing.T) {
	ctx := context.Background()
	loc, err := Open(ctx, "file://"+t.TempDir()+"?prefix=team")
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	sub, err := loc.Sub(ctx, "kopia/shop/")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.WriteAll(ctx, "blob", []byte("k"), nil); err != nil {
		t.Fatal(err)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if err := loc.Bucket().WriteAll(ctx, "backups/x/backup.json", []byte("{}"), nil); err != nil {
		t.Fatalf("the location is unusable after Sub: %v", err)
	}
	got, err := loc.Bucket().ReadAll(ctx, "kopia/shop/blob")
	if err != nil || string(got) != "k" {
		t.Fatalf("the sub-location did not write under the location's prefix: %q %v", got, err)
	}
}
