package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestBuildMoverDigest pins the mover image's digests to those of the builder before Spec had
// Files, Entrypoint, Title and Env: left empty, they change nothing.
func TestBuildMoverDigest(t *testing.T) {
	for arch, want := range map[string]string{
		"amd64": "sha256:b15c1e43ce9681d8e784cf25fc129c714b94b926ec8909a814ca8dd81dd943c9",
		"arm64": "sha256:b4a81e3601c05c27b17c4e47e171a84adb0fdb9fdc878b038cb6b606197561e9",
	} {
		if got := digest(t, mustBuild(t, spec(arch))).String(); got != want {
			t.Errorf("%s: %s; want %s", arch, got, want)
		}
	}
}

// filesSpec is an image of host programs alone, as the Velero lab makes.
func filesSpec(t *testing.T) Spec {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for f, data := range map[string]string{a: "program a", b: "program b"} {
		if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Spec{CABundle: []byte(testCA), Arch: "amd64", Title: "velero", Env: []string{"PATH=/bin"},
		Entrypoint: []string{"/bin/b", "/plugins/a"},
		Files:      []File{{Source: a, Path: "/plugins/a", Mode: 0o755}, {Source: b, Path: "/bin/b", Mode: 0o750}}}
}

// TestBuildFiles: each file is at its path with its mode, under directories of its own, beside the
// CA bundle and the non-root user (and no mover binary); the config has the entrypoint, the title
// and the environment asked for; two builds of one spec have one digest.
func TestBuildFiles(t *testing.T) {
	s := filesSpec(t)
	img := mustBuild(t, s)
	if a, b := digest(t, img), digest(t, mustBuild(t, s)); a != b {
		t.Errorf("two builds of one spec: %s and %s", a, b)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if strings.Join(c.Entrypoint, " ") != "/bin/b /plugins/a" || c.User != "65532:65532" || c.Labels[LabelTitle] != "velero" {
		t.Errorf("entrypoint %q user %q labels %v", c.Entrypoint, c.User, c.Labels)
	}
	if strings.Join(c.Env, " ") != "SSL_CERT_FILE="+CertsPath+" TMPDIR=/tmp HOME=/tmp PATH=/bin" {
		t.Errorf("env %q", c.Env)
	}
	got := layerHeaders(t, img)
	want := "bin/ 755|etc/ 755|etc/ssl/ 755|etc/ssl/certs/ 755|plugins/ 755|tmp/ 1777|etc/passwd 644|etc/group 644|" +
		"etc/ssl/certs/ca-certificates.crt 644|plugins/a 755 program a|bin/b 750 program b"
	if strings.Join(got, "|") != want {
		t.Errorf("layer\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}

// layerHeaders are the layer's entries in order: name, mode in octal and, for host files, content.
func layerHeaders(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		e := fmt.Sprintf("%s %o", h.Name, h.Mode)
		if b, _ := io.ReadAll(tr); strings.HasPrefix(string(b), "program") {
			e += " " + string(b)
		}
		out = append(out, e)
	}
}

// TestBuildFilesRefuses: a path that is not a clean absolute file path, one the image already has,
// a missing or non-regular host file and a mode with more than permission bits are refused.
func TestBuildFilesRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*File)
		want string
	}{
		{"relative", func(f *File) { f.Path = "plugins/a" }, "not a clean absolute file path"},
		{"unclean", func(f *File) { f.Path = "/plugins/../a" }, "not a clean absolute file path"},
		{"tmp", func(f *File) { f.Path = "/tmp" }, "not a clean absolute file path"},
		{"passwd", func(f *File) { f.Path = "/etc/passwd" }, "already has a file at /etc/passwd"},
		{"twice", func(f *File) { f.Path = "/bin/b" }, "already has a file at /bin/b"},
		{"missing", func(f *File) { f.Source += ".missing" }, "a.missing"},
		{"directory", func(f *File) { f.Source = filepath.Dir(f.Source) }, "not a regular file"},
		{"mode", func(f *File) { f.Mode |= 0o40000 }, "more than permission bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := filesSpec(t)
			tc.mut(&s.Files[0])
			if _, err := Build(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v; want %q", err, tc.want)
			}
		})
	}
}

// TestBuildFileChanged: a host file that changes size after Build makes the layer unreadable,
// rather than an image whose layer differs from its digest.
func TestBuildFileChanged(t *testing.T) {
	for name, data := range map[string]string{"grown": "program a, longer", "shrunk": "prog"} {
		t.Run(name, func(t *testing.T) {
			s := filesSpec(t)
			img := mustBuild(t, s)
			if err := os.WriteFile(s.Files[0].Source, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			rc, err := layers[0].Uncompressed()
			if err == nil {
				_, err = io.Copy(io.Discard, rc)
				rc.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "changed while the image was written") {
				t.Fatalf("reading the layer: %v; want the file named as changed", err)
			}
		})
	}
}
