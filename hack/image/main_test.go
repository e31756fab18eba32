//go:build integration

package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestImage builds the image from the real static binary, reads the tarball back as an OCI
// layout, validates it, checks its config runs the mover as non-root, and runs the binary taken
// out of the layer.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-pvbackup")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/kubectl-pvbackup/kubectl-pvbackup/cmd/kubectl-pvbackup")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "mover.tar")
	const ref = "registry.example/pvbackup-mover:test"
	if err := buildImage(t, bin, ref, out); err != nil {
		t.Fatal(err)
	}

	// Unpack the tarball and open it as an OCI layout.
	lay := filepath.Join(dir, "layout")
	untar(t, out, lay)
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index has %d manifests; want 1", len(im.Manifests))
	}
	desc := im.Manifests[0]
	if got := desc.Annotations["org.opencontainers.image.ref.name"]; got != ref {
		t.Errorf("ref.name annotation = %q; want %q", got, ref)
	}
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	mt, _ := img.MediaType()
	if !strings.Contains(string(mt), "oci") {
		t.Errorf("manifest media type %s; want OCI", mt)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != BinaryPath+" mover" {
		t.Errorf("entrypoint %q; want %q", got, BinaryPath+" mover")
	}
	if u := cf.Config.User; u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("user %q; want a non-root uid", u)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}

	// The layer holds exactly the binary, the CA bundle, passwd/group and directories.
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[h.Name] = b
		}
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	want := map[string]bool{BinaryPath[1:]: true, CertsPath[1:]: true, "etc/passwd": true, "etc/group": true}
	for n := range files {
		if !want[n] {
			t.Errorf("unexpected file %s in the image", n)
		}
	}
	if len(files) != len(want) {
		t.Errorf("image files %v; want %v", names, want)
	}
	if !bytes.Contains(files[CertsPath[1:]], []byte("BEGIN CERTIFICATE")) {
		t.Error("CA bundle has no certificates")
	}
	exe := filepath.Join(dir, "from-image")
	if err := os.WriteFile(exe, files[BinaryPath[1:]], 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := exec.Command(exe, "mover", "backup", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(o), "--source") {
		t.Fatalf("the image's binary does not run the mover: %v\n%s", err, o)
	}
}

func buildImage(t *testing.T, bin, ref, out string) error {
	t.Helper()
	return build(bin, "/etc/ssl/certs/ca-certificates.crt", ref, "test", runtime.GOARCH, out)
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
