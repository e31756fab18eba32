// Package image builds, reads and pushes the mover image: the plugin's own static binary, a CA
// bundle and a non-root user in one layer, for linux/amd64 and linux/arm64, as one image or as a
// multi-arch index. It writes OCI image layouts (as tarballs, for `ctr images import`, skopeo and
// crane) and pushes to registries with go-containerregistry; no container engine is involved.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Paths and identity inside the image; the plugin's Jobs rely on them.
const (
	BinaryPath = "/usr/local/bin/kubectl-pvbackup"
	CertsPath  = "/etc/ssl/certs/ca-certificates.crt"
	UID        = 65532
	// Title is the image's org.opencontainers.image.title: how an archive is known as a mover's.
	Title = "pvbackup-mover"
)

// Label keys of the image config.
const (
	LabelTitle   = "org.opencontainers.image.title"
	LabelVersion = "org.opencontainers.image.version"
	LabelSource  = "org.opencontainers.image.source"
)

// Arches are the architectures a mover image is built for.
var Arches = []string{"amd64", "arm64"}

// Spec is one single-architecture mover image.
type Spec struct {
	// Binary is a static linux kubectl-pvbackup for Arch (CGO_ENABLED=0).
	Binary []byte
	// CABundle is PEM certificates, shipped at CertsPath.
	CABundle []byte
	Arch     string
	// Version is the image's version label (the binary's version).
	Version string
}

// Build makes the image of s. Its content and digest depend on s alone: every time in it is the epoch.
func Build(s Spec) (v1.Image, error) {
	if !knownArch(s.Arch) {
		return nil, fmt.Errorf("architecture %q: the mover image is built for %v", s.Arch, Arches)
	}
	if len(s.Binary) == 0 {
		return nil, fmt.Errorf("no binary for linux/%s", s.Arch)
	}
	if err := CheckCABundle(s.CABundle); err != nil {
		return nil, err
	}
	layerTar, err := rootfs(s.Binary, s.CABundle)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("mover image layer: %w", err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	cf.Config = v1.Config{
		Entrypoint: []string{BinaryPath, "mover"},
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/tmp",
		Env:        []string{"SSL_CERT_FILE=" + CertsPath, "TMPDIR=/tmp", "HOME=/tmp"},
		Labels: map[string]string{
			LabelTitle:   Title,
			LabelVersion: s.Version,
			LabelSource:  "https://github.com/kubectl-pvbackup/kubectl-pvbackup",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Index makes the multi-architecture index of images, each with its platform from its config.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image config: %w", err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

func knownArch(arch string) bool {
	for _, a := range Arches {
		if a == arch {
			return true
		}
	}
	return false
}

// rootfs is the image's single layer: directories, passwd and group for the non-root user, the CA
// bundle and the binary; owned by root, every time the epoch.
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
