package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

// plainArchive builds a tar.gz with the given entries, as the decrypted archive holds.
func plainArchive(entries map[string]string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range entries {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(data))
	}
	_ = tw.Close()
	_ = gz.Close()
	return buf.Bytes()
}

// FuzzReader feeds the archive reader what a bucket writer could put in a decrypted archive:
// it must return an error or clean entries, never panic, never a path that leaves its directory,
// never an entry larger than the limit.
func FuzzReader(f *testing.F) {
	f.Add(plainArchive(map[string]string{"core/v1/configmaps/shop/app.json": `{"kind":"ConfigMap"}`}))
	f.Add(plainArchive(map[string]string{"../../etc/passwd.json": "{}"}))
	f.Add(plainArchive(map[string]string{"apps/v1/deployments/_cluster/x.json": "{}", "core/v1/secrets/a/..json": "{}"}))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add([]byte("not gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := newPlainReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for i := 0; i < 10000; i++ {
			k, body, err := r.Next()
			if err != nil {
				return
			}
			p := k.Path()
			for _, seg := range strings.Split(p, "/") {
				if seg == "" || seg == "." || seg == ".." {
					t.Fatalf("entry %q escapes its directory", p)
				}
			}
			if back, err := ParsePath(p); err != nil || back != k {
				t.Fatalf("entry %v: its path %q does not parse back: %v %v", k, p, back, err)
			}
			if len(body) > maxEntry {
				t.Fatalf("entry %q of %d bytes", p, len(body))
			}
		}
	})
}

// FuzzNewReader feeds the encrypted reader arbitrary headers: errors only, and fast (the scrypt
// cost is capped).
func FuzzNewReader(f *testing.F) {
	f.Add([]byte("age-encryption.org/v1\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 22\nAAAA\n--- AAAA\n"))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 AAAA\nAAAA\n--- AAAA\n"))
	f.Add([]byte("age-encryption.org/v1\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "pw")
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			if _, _, err := r.Next(); err != nil {
				return // io.EOF or a reason: both fine
			}
		}
	})
}
