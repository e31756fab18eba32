package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"
	"gocloud.dev/blob/memblob"
)

// A new repository gets the measured default format; one created with another format keeps it
// when opened by this version (the defaults apply only to creation).
func TestFormatOfNewAndExisting(t *testing.T) {
	ctx := context.Background()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	r, err := Open(ctx, bucket, "mem", Config{Password: "pw", Create: true, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got := r.Format()
	_ = r.Close(ctx)
	if got.Hash != DefaultHash || got.Encryption != DefaultEncryption || got.Splitter != DefaultSplitter || got.Version == 0 {
		t.Errorf("new repository's format = %+v, want %s/%s/%s", got, DefaultHash, DefaultEncryption, DefaultSplitter)
	}

	old := memblob.OpenBucket(nil)
	defer old.Close()
	r, err = Open(ctx, old, "mem", Config{Password: "pw", Create: true, CacheDir: t.TempDir(), Hash: "BLAKE2B-256-128", Encryption: "CHACHA20-POLY1305-HMAC-SHA256"})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close(ctx)
	r, err = Open(ctx, old, "mem", Config{Password: "pw", Create: true, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	if f := r.Format(); f.Hash != "BLAKE2B-256-128" || f.Encryption != "CHACHA20-POLY1305-HMAC-SHA256" {
		t.Errorf("existing repository's format = %+v: it must keep the one it was created with", f)
	}
}

func TestFormatRefusesUnknown(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{{Hash: "MD5"}, {Encryption: "ROT13"}} {
		bucket := memblob.OpenBucket(nil)
		cfg.Password, cfg.Create, cfg.CacheDir = "pw", true, t.TempDir()
		_, err := Open(ctx, bucket, "mem", cfg)
		if err == nil || !strings.Contains(err.Error(), "unknown") || !strings.Contains(err.Error(), "use one of") {
			t.Errorf("Open(%+v) = %v, want an unknown-algorithm error naming the choices", cfg, err)
		}
		_ = bucket.Close()
	}
}

func TestCompressionPolicy(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, size int) fs.Entry {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := localfs.NewEntry(p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	big, small, gz, upper := file("app.log", 64<<10), file("tiny.json", 100), file("old.log.gz", 64<<10), file("PHOTO.JPG", 64<<10)
	for _, c := range []struct {
		setting string
		f       fs.Entry
		want    string
	}{
		{"", big, AutoCompressor}, // the default is auto
		{"auto", big, AutoCompressor},
		{"auto", small, ""}, // below AutoMinSize
		{"auto", gz, ""},    // compressed already
		{"none", big, ""},
		{"zstd-fastest", gz, "zstd-fastest"}, // a named compressor is for every file
		{"zstd-fastest", small, "zstd-fastest"},
		{"auto", upper, ""}, // Kopia compares extensions as they are: the list has both cases
	} {
		p, err := CompressionPolicy(c.setting)
		if err != nil {
			t.Fatalf("CompressionPolicy(%q): %v", c.setting, err)
		}
		if got := string(p.CompressorForFile(c.f)); got != c.want {
			t.Errorf("compression %q, file %s (%d bytes): compressor %q, want %q", c.setting, c.f.Name(), c.f.Size(), got, c.want)
		}
	}
	for _, bad := range []string{"lzma", "gzip9", "AUTO", "zstd "} {
		if _, err := CompressionPolicy(bad); err == nil || !strings.Contains(err.Error(), "use none, auto, ") {
			t.Errorf("CompressionPolicy(%q) = %v, want an error listing the choices", bad, err)
		}
	}
	if err := ValidateCompression("deflate-default"); err != nil {
		t.Errorf("a current Kopia compressor is refused: %v", err)
	}
}
