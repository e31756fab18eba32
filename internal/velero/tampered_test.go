package velero

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Tampered variants of the fixtures: what a damaged or hostile bucket could hold instead of what
// Velero wrote. Each is refused with the file and the reason, never read past its limit.

// tarEntries reads the entries of a tar.gz file.
func tarEntries(t *testing.T, file string) []tarEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []tarEntry
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out = append(out, tarEntry{name: h.Name, data: string(data), typ: h.Typeflag})
	}
}

func TestTamperedTarball(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra tarEntry
		want  string
	}{
		{"dot-dot", tarEntry{name: "resources/pods/namespaces/vl-fs/../../../../../etc/cron.d/x.json", data: "{}"}, "escapes its directory"},
		{"absolute", tarEntry{name: "/etc/passwd", data: "x"}, "not a relative path"},
		{"symlink", tarEntry{name: "resources/pods/namespaces/vl-fs/link.json", typ: tar.TypeSymlink}, "not a regular file"},
		{"escape sequence", tarEntry{name: "resources/pods/namespaces/vl-fs/\x1b]0;owned\x07.json", data: "{}"}, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureDir(t)
			tb := filepath.Join(dir, "backups", fixtureFS, fixtureFS+suffixTarball)
			entries := append(tarEntries(t, tb), tc.extra)
			if err := os.WriteFile(tb, makeTarball(t, entries), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := openFixture(t, dir).Describe(context.Background(), fixtureFS)
			if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "backups/fs-deploy/fs-deploy.tar.gz") {
				t.Fatalf("err = %v, want ErrUnreadable naming the tarball and %q", err, tc.want)
			}
		})
	}
}

// TestGzipBomb: a side file that decompresses far beyond its limit stops at the limit.
func TestGzipBomb(t *testing.T) {
	dir := fixtureDir(t)
	file := filepath.Join(dir, "backups", fixtureFS, fixtureFS+suffixResourceList)
	var list map[string][]string
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeGzipJSON(orig, 1<<20, "resource list", &list); err != nil {
		t.Fatal(err)
	}
	// The real list, plus one item of 64 MiB: about 64 KiB once compressed.
	list["v1/Pod"] = append(list["v1/Pod"], "vl-fs/"+strings.Repeat("A", 64<<20))
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err := json.NewEncoder(w).Encode(list); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	loc := openFixture(t, dir)
	loc.Limits.JSONBytes = 16 << 20
	_, err = loc.Describe(context.Background(), fixtureFS)
	if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "decompresses to more than 16777216 bytes") || !strings.Contains(err.Error(), fixtureFS+suffixResourceList) {
		t.Fatalf("err = %v", err)
	}
}

// TestFormat2: a backup whose format is 2.0.0 is listed as such and refused by describe.
func TestFormat2(t *testing.T) {
	dir := fixtureDir(t)
	file := filepath.Join(dir, "backups", fixtureMover, MetadataFile)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(data, []byte(`"formatVersion": "1.1.0"`), []byte(`"formatVersion": "2.0.0"`), 1)
	if bytes.Equal(tampered, data) {
		t.Fatal("the fixture has no formatVersion 1.1.0")
	}
	if err := os.WriteFile(file, tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	loc := openFixture(t, dir)
	entries, err := loc.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name == fixtureMover && (e.Backup == nil || e.Backup.FormatVersion != "2.0.0") {
			t.Errorf("list: %+v", e)
		}
	}
	_, err = loc.Describe(context.Background(), fixtureMover)
	if !errors.Is(err, ErrFormat) || err.Error() != `backup "datamover-sts" has Velero format 2.0.0; this build reads format 1.x only` {
		t.Fatalf("err = %v", err)
	}
}

// TestTarballLimits: the tarball's entry count and total size stop the read at their limits.
func TestTarballLimits(t *testing.T) {
	loc := openFixture(t, fixtureDir(t))
	loc.Limits.Entries = 5
	if _, err := loc.ReadResources(context.Background(), fixtureMover); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "more than 5 entries") {
		t.Errorf("entries: %v", err)
	}
	loc.Limits = DefaultLimits
	loc.Limits.ResourcesBytes = 1000
	if _, err := loc.ReadResources(context.Background(), fixtureMover); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "more than 1000 bytes") {
		t.Errorf("bytes: %v", err)
	}
	loc.Limits = DefaultLimits
	loc.Limits.TarballBytes = 100
	if _, err := loc.ReadResources(context.Background(), fixtureMover); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "more than the 100 read") {
		t.Errorf("compressed size: %v", err)
	}
}
