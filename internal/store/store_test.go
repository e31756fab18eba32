package store

import (
	"context"
	"errors"
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
	for _, tc := range []struct{ in, want string }{
		{"azblob://c/p?sas_token=abc&account=me&x_secret=1", "azblob://c/p?sas_token=REDACTED&account=me&x_secret=REDACTED"},
		{"s3://user:pass@bkt/p", "s3://REDACTED@bkt/p"},
		{"s3://b/p?region=x&endpoint=http://user:s3cr3t@h:9000", "s3://b/p?region=x&endpoint=http%3A%2F%2FREDACTED%40h%3A9000"},
		{"s3://b/p?endpoint=http%3A%2F%2Fuser%3As3cr3t%40h", "s3://b/p?endpoint=http%3A%2F%2FREDACTED%40h"},
		{"s3://b/p?region=x&aws_secret_access_key=SEC%zzRET", "s3://b/p?region=x&aws_secret_access_key=REDACTED"},
		{"s3://b/p?region=eu-west-1&endpoint=http://h:9000", "s3://b/p?region=eu-west-1&endpoint=http://h:9000"},
		{"s3://us%er:pa%zz@b/p", "s3://REDACTED@b/p"},
		{"s3://b/p%zz?token=abc", "s3://b/p%zz?token=REDACTED"},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestCredentialsRefused checks that a location URL carrying a credential is refused with a
// message that names the parameter but not its value.
func TestCredentialsRefused(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"s3://b/p?region=x&aws_secret_access_key=S3CR3T", `parameter "aws_secret_access_key" is a credential`},
		{"gs://b/p?access_token=S3CR3T", `parameter "access_token" is a credential`},
		{"azblob://c/p?sas_token=S3CR3T", `parameter "sas_token" is a credential`},
		{"s3://b/p?region=x&endpoint=http://user:S3CR3T@127.0.0.1:1", `parameter "endpoint" holds a password`},
		{"s3://b/p?region=x&endpoint=http%3A%2F%2Fuser%3AS3CR3T%40h", `parameter "endpoint" holds a password`},
		{"s3://user:S3CR3T@b/p?region=x", "holds a password (user:password@)"},
		{"s3://b/p?region=x&aws_secret_access_key=S3CR3T%zz", `parameter "aws_secret_access_key" is a credential`},
		{"s3://us:S3CR3T%zz@b/p", "a %-escape is malformed"},
		{"s3://b/p?region=x&X-Amz-Signature=S3CR3T", `"X-Amz-Signature" is a credential`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, _, err := Parse(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v; want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "S3CR3T") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	for _, ok := range []string{"gs://b/p?access_id=sa@p.iam.gserviceaccount.com&private_key_path=/k.pem", "s3://b/p?region=x&kmskeyid=alias/k&ssetype=aws:kms", "s3://user@b/p?region=x"} {
		if _, _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%q) = %v; it holds no credential", ok, err)
		}
	}
}

func TestScrub(t *testing.T) {
	raw := "s3://u:PW1@b/p?region=x&aws_secret_access_key=KEY%2F2&endpoint=http%3A%2F%2Fv%3APW3%40h"
	err := errors.New("open bucket s3://u:PW1@b?aws_secret_access_key=KEY%2F2 (key KEY/2) endpoint http://v:PW3@h: unknown")
	got := Scrub(raw, err)
	for _, s := range []string{"PW1", "KEY%2F2", "KEY/2", "PW3"} {
		if strings.Contains(got.Error(), s) {
			t.Errorf("Scrub left %q in %q", s, got)
		}
	}
	if !errors.Is(got, err) {
		t.Error("Scrub does not unwrap to the original error")
	}
	if Scrub(raw, nil) != nil {
		t.Error("Scrub(nil) != nil")
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

func TestIsTemp(t *testing.T) {
	for key, want := range map[string]bool{
		"backups/race/.claim.json.1023100144.tmp": true,
		".location.age.42.tmp":                    true,
		"backups/race/claim.json":                 false,
		"backups/race/claim.json.tmp":             false,
		"backups/.hidden/backup.json":             false,
	} {
		if got := IsTemp(key); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", key, got, want)
		}
	}
}
