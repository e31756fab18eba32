package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// testCA is a real PEM certificate (a throwaway self-signed one, no key kept) so that CheckCABundle accepts it.
const testCA = `-----BEGIN CERTIFICATE-----
MIIBjTCCATOgAwIBAgIUb99fZ6IWY+FOiccJVVEBdpJsargwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcHZiYWNrdXAtdGVzdC1jYTAgFw0yNjEyMDcxMjQzNDhaGA8y
MTI2MTExMzEyNDM0OFowGzEZMBcGA1UEAwwQcHZiYWNrdXAtdGVzdC1jYTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABIBxecsJOfkUXKZGvfJm5vVnYT5Si1dRVMGQ
IwXDYFwdBZgTjWgsTRQ4gLyUGWBWe8+HcElnA/yr81qhGBbS+pujUzBRMB0GA1Ud
DgQWBBTVzBIKq6Z4s47q6QzWXW9BPCGD9DAfBgNVHSMEGDAWgBTVzBIKq6Z4s47q
6QzWXW9BPCGD9DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIBEj
UOWQ9k4hTlxYxRb8IcHQvQsfXCX4zwrdQk3rD/J9AiEAxt+kiUvOuKjADCdDOpqX
G9Y5M199aw6IsvwYEl8mCXQ=
-----END CERTIFICATE-----
`

func spec(arch string) Spec {
	return Spec{Binary: []byte("\x7fELF fake mover for " + arch), CABundle: []byte(testCA), Arch: arch, Version: "v1.2.3"}
}

func mustBuild(t *testing.T, s Spec) v1.Image {
	t.Helper()
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestBuild: the image runs the mover as the non-root user, for its architecture, labelled with
// its version, and holds exactly the binary, the CA bundle, passwd and group; the same spec gives
// the same digest.
func TestBuild(t *testing.T) {
	img := mustBuild(t, spec("arm64"))
	if a, b := digest(t, img), digest(t, mustBuild(t, spec("arm64"))); a != b {
		t.Errorf("two builds of one spec: %s and %s", a, b)
	}
	if a, b := digest(t, img), digest(t, mustBuild(t, spec("amd64"))); a == b {
		t.Error("amd64 and arm64 images have one digest")
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != BinaryPath+" mover" {
		t.Errorf("entrypoint %q", got)
	}
	if cf.Config.User != "65532:65532" || cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("user %q platform %s/%s", cf.Config.User, cf.OS, cf.Architecture)
	}
	if cf.Config.Labels[LabelTitle] != Title || cf.Config.Labels[LabelVersion] != "v1.2.3" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	files := layerFiles(t, img)
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := "etc/group etc/passwd etc/ssl/certs/ca-certificates.crt usr/local/bin/kubectl-pvbackup"; strings.Join(names, " ") != want {
		t.Errorf("files %v; want %s", names, want)
	}
	if files[BinaryPath[1:]] != string(spec("arm64").Binary) || files[CertsPath[1:]] != testCA {
		t.Error("the binary or the CA bundle is not what was given")
	}
}

func layerFiles(t *testing.T, img v1.Image) map[string]string {
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
	files := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = string(b)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Spec)
		want string
	}{
		{"arch", func(s *Spec) { s.Arch = "s390x" }, `architecture "s390x"`},
		{"binary", func(s *Spec) { s.Binary = nil }, "no binary"},
		{"ca", func(s *Spec) { s.CABundle = []byte("not pem") }, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec("amd64")
			tc.mut(&s)
			if _, err := Build(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Build: %v; want %q", err, tc.want)
			}
		})
	}
}

func multiArch(t *testing.T) v1.ImageIndex {
	t.Helper()
	idx, err := Index(mustBuild(t, spec("amd64")), mustBuild(t, spec("arm64")))
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestArchiveRoundTrip: an image and a multi-arch index written as OCI layout tarballs read back
// with their digests and reference; the tarball's bytes depend on the content alone.
func TestArchiveRoundTrip(t *testing.T) {
	dir := t.TempDir()
	const ref = "registry.example/pvbackup-mover:v1.2.3"
	for _, tc := range []struct {
		name string
		a    Artifact
	}{
		{"image", Artifact{Image: mustBuild(t, spec("amd64"))}},
		{"index", Artifact{Index: multiArch(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".tar")
			if err := WriteArchive(out, ref, tc.a); err != nil {
				t.Fatal(err)
			}
			first := fileSum(t, out)
			if err := WriteArchive(out, ref, tc.a); err != nil {
				t.Fatal(err)
			}
			if again := fileSum(t, out); again != first {
				t.Errorf("the tarball changed between two writes: %x, %x", first, again)
			}
			a, err := ReadArchive(out)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.Ref != ref {
				t.Errorf("ref %q; want %q", a.Ref, ref)
			}
			if got, want := digest(t, a.Artifact), digest(t, tc.a); got != want {
				t.Errorf("digest %s; want %s", got, want)
			}
			imgs, err := a.Images()
			if err != nil {
				t.Fatal(err)
			}
			// Validated as read back: the manifests and blobs as a registry or containerd sees them.
			for _, img := range imgs {
				if err := validate.Image(img); err != nil {
					t.Errorf("invalid image: %v", err)
				}
			}
			if want := map[string]int{"image": 1, "index": 2}[tc.name]; len(imgs) != want {
				t.Errorf("%d images; want %d", len(imgs), want)
			}
		})
	}
}

func fileSum(t *testing.T, f string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestReadArchiveRefuses: names that leave the layout, links, and tarballs that are no layout.
func TestReadArchiveRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		want string
	}{
		{"parent", tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Size: 1}, "leaves the layout"},
		{"absolute", tar.Header{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1}, "leaves the layout"},
		{"symlink", tar.Header{Name: "blobs", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, "neither a file nor a directory"},
		{"no layout", tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Size: 1}, "not an OCI image layout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tc.hdr.Mode = 0o644
			if err := tw.WriteHeader(&tc.hdr); err != nil {
				t.Fatal(err)
			}
			if tc.hdr.Size > 0 {
				_, _ = tw.Write([]byte("x"))
			}
			tw.Close()
			f := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			a, err := ReadArchive(f)
			if err == nil {
				a.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadArchive: %v; want %q", err, tc.want)
			}
		})
	}
}

func TestSelfBuildable(t *testing.T) {
	for _, tc := range []struct {
		goos, goarch, cgo string
		want              string
	}{
		{"linux", "amd64", "0", ""},
		{"linux", "arm64", "", ""},
		{"darwin", "arm64", "0", "built for darwin/arm64"},
		{"linux", "riscv64", "0", "built for linux/riscv64"},
		{"linux", "amd64", "1", "built with cgo"},
	} {
		err := selfBuildable(tc.goos, tc.goarch, tc.cgo)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrNotSelfBuildable)) {
			t.Errorf("%s/%s cgo=%s: %v; want %q", tc.goos, tc.goarch, tc.cgo, err, tc.want)
		}
	}
}

func TestSystemCABundle(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, []byte(testCA), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, from, err := SystemCABundle(f); err != nil || from != f || string(b) != testCA {
		t.Errorf("SystemCABundle(%s): %q, %v", f, from, err)
	}
	bad := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SystemCABundle(bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("an empty bundle: %v", err)
	}
	if _, _, err := SystemCABundle(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Error("a missing --ca-bundle was accepted")
	}
}
