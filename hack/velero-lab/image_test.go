package main

import (
	"archive/tar"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
)

// TestImage builds an image as the lab builds the AWS plugin's (two programs in two directories)
// through internal/image, reads the tarball back as an OCI layout, validates it and checks the
// config (entrypoint, non-root user, title) and the layer: every file at its path with its mode,
// the directories, the CA bundle given; a second build is byte for byte the same.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	a, b, ca := filepath.Join(dir, "a"), filepath.Join(dir, "b"), writeCA(t, dir)
	writeFile(t, a, "program a")
	writeFile(t, b, "program b")
	const ref = "localhost/test/plugin:v1"
	s := spec{ref: ref, arch: runtime.GOARCH, out: filepath.Join(dir, "img.tar"), certs: ca, title: "velero-plugin-for-aws",
		files:      []image.File{{Source: a, Path: "/plugins/a", Mode: 0o755}, {Source: b, Path: "/bin/b", Mode: 0o755}},
		entrypoint: []string{"/bin/b", "/plugins/a", "/target/a"}}
	if err := build(s); err != nil {
		t.Fatal(err)
	}
	img := readImage(t, s.out, ref)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/bin/b /plugins/a /target/a" {
		t.Errorf("entrypoint %q", got)
	}
	if cf.Config.User != "65532:65532" || cf.Architecture != runtime.GOARCH || cf.Config.Labels[image.LabelTitle] != s.title {
		t.Errorf("user %q, arch %q, title %q", cf.Config.User, cf.Architecture, cf.Config.Labels[image.LabelTitle])
	}
	caPEM, _ := os.ReadFile(ca)
	want := map[string]layerFile{
		"plugins/a": {0o755, "program a"}, "bin/b": {0o755, "program b"}, "etc/ssl/certs/ca-certificates.crt": {0o644, string(caPEM)},
		"etc/passwd": {0o644, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n"},
		"etc/group":  {0o644, "root:x:0:\nnonroot:x:65532:\n"},
		"bin/":       {0o755, ""}, "etc/": {0o755, ""}, "etc/ssl/": {0o755, ""}, "etc/ssl/certs/": {0o755, ""}, "plugins/": {0o755, ""}, "tmp/": {0o1777, ""},
	}
	got := layer(t, img)
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: %o %.20q; want %o %.20q", name, g.mode, g.data, w.mode, w.data)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the layer has %d entries; want %d", len(got), len(want))
	}
	first := sha(t, s.out)
	if err := build(s); err != nil {
		t.Fatal(err)
	}
	if second := sha(t, s.out); second != first {
		t.Errorf("two builds: %s and %s", first, second)
	}
}

// TestImageErrors: a missing program, a bad CA bundle and a file given twice fail, naming them.
func TestImageErrors(t *testing.T) {
	dir := t.TempDir()
	a, ca := filepath.Join(dir, "a"), writeCA(t, dir)
	writeFile(t, a, "program a")
	writeFile(t, filepath.Join(dir, "empty.pem"), "")
	base := spec{ref: "localhost/x:v1", arch: runtime.GOARCH, out: filepath.Join(dir, "img.tar"), certs: ca, title: "x",
		files: []image.File{{Source: a, Path: "/a", Mode: 0o755}}, entrypoint: []string{"/a"}}
	missing, badCA, twice := base, base, base
	missing.files = []image.File{{Source: filepath.Join(dir, "nope"), Path: "/a", Mode: 0o755}}
	badCA.certs = filepath.Join(dir, "empty.pem")
	twice.files = append(twice.files, image.File{Source: a, Path: "/a", Mode: 0o755})
	for name, tc := range map[string]struct {
		s    spec
		want string
	}{"missing": {missing, "nope"}, "bad CA": {badCA, "no PEM certificate"}, "twice": {twice, "already has a file at /a"}} {
		if err := build(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error with %q", name, err, tc.want)
		}
	}
	var f fileFlags
	if err := f.Set("prog=relative/path"); err == nil {
		t.Error("--file with a relative path in the image was accepted")
	}
}

type layerFile struct {
	mode int64
	data string
}

// readImage reads the one image of the OCI layout tarball file, named ref, and validates it.
func readImage(t *testing.T, file, ref string) v1.Image {
	t.Helper()
	a, err := image.ReadArchive(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if a.Image == nil || a.Ref != ref {
		t.Fatalf("the layout holds %+v named %q; want one image named %q", a.Artifact, a.Ref, ref)
	}
	if err := validate.Image(a.Image); err != nil {
		t.Fatalf("invalid image: %v", err)
	}
	return a.Image
}

// layer is the image's single layer: each entry's mode and content.
func layer(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = layerFile{h.Mode, string(data)}
	}
}

// writeCA writes a throwaway self-signed certificate as the CA bundle to ship.
func writeCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "velero-lab-test"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "ca.pem")
	writeFile(t, file, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	return file
}

func writeFile(t *testing.T, file, data string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(data), 0o755); err != nil {
		t.Fatal(err)
	}
}

func sha(t *testing.T, file string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
