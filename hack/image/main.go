// Command image builds the mover image as an OCI image layout in a tarball, without a container
// engine: one layer holding the static kubectl-pvbackup binary, the CA certificates, a passwd entry
// for the non-root user and an empty /tmp; the entrypoint is `kubectl-pvbackup mover`.
//
//	go run -ldflags '-X .../internal/version.Version=v0.1.0' ./hack/image --binary FILE --out .local/images/pvbackup-mover.tar
//
// `make image` runs it.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
)

// Paths and identity inside the image; the plugin's Jobs rely on them.
const (
	BinaryPath = "/usr/local/bin/kubectl-pvbackup"
	CertsPath  = "/etc/ssl/certs/ca-certificates.crt"
	UID        = 65532
)

func main() {
	binary := flag.String("binary", "", "static linux kubectl-pvbackup binary (CGO_ENABLED=0)")
	certs := flag.String("certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to ship (Debian's ca-certificates)")
	ref := flag.String("ref", version.MoverImage(), "image reference recorded in the layout (default: the plugin's --mover-image default)")
	ver := flag.String("version", version.Version, "version label")
	arch := flag.String("arch", runtime.GOARCH, "architecture of the binary")
	out := flag.String("out", "", "OCI layout tarball to write")
	flag.Parse()
	if *binary == "" || *ref == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: image --binary FILE --ref REF --out FILE.tar [--certs FILE] [--arch ARCH] [--version V]")
		os.Exit(2)
	}
	if err := build(*binary, *certs, *ref, *ver, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s, %s)\n", *out, *ref, *arch)
}

func build(binary, certs, ref, version, arch, out string) error {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("read binary: %w (build it with CGO_ENABLED=0 GOOS=linux)", err)
	}
	ca, err := os.ReadFile(certs)
	if err != nil {
		return fmt.Errorf("read CA certificates: %w (apt-get install ca-certificates)", err)
	}
	layerTar, err := rootfs(bin, ca)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	cf.Config = v1.Config{
		Entrypoint: []string{BinaryPath, "mover"},
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/tmp",
		Env:        []string{"SSL_CERT_FILE=" + CertsPath, "TMPDIR=/tmp", "HOME=/tmp"},
		Labels: map[string]string{
			"org.opencontainers.image.title":   "pvbackup-mover",
			"org.opencontainers.image.version": version,
			"org.opencontainers.image.source":  "https://github.com/kubectl-pvbackup/kubectl-pvbackup",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref, // OCI: the reference of this manifest
		"io.containerd.image.name":          ref, // what `ctr images import` names it
	}), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch})); err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	return tarDir(dir, out)
}

// rootfs is the image's single layer.
func rootfs(bin, ca []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := []struct {
		name string
		mode int64
	}{{"etc/", 0o755}, {"etc/ssl/", 0o755}, {"etc/ssl/certs/", 0o755}, {"tmp/", 0o1777}, {"usr/", 0o755}, {"usr/local/", 0o755}, {"usr/local/bin/", 0o755}}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/tmp:/sbin/nologin\n", UID, UID))},
		{"etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID))},
		{CertsPath[1:], 0o644, ca},
		{BinaryPath[1:], 0o755, bin},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// tarDir writes the layout directory as a tarball (what `ctr images import` and skopeo's
// oci-archive: read).
func tarDir(dir, out string) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = time.Unix(0, 0), 0, 0, "", ""
		hdr.Mode = 0o644
		if info.IsDir() {
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		f.Close()
		return fmt.Errorf("tar layout: %w", err)
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
