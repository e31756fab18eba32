// Package image builds, reads and pushes the mover image: the plugin's own static binary, a CA
// bundle and a non-root user in one layer, for linux/amd64 and linux/arm64, as one image or as a
// multi-arch index. It writes OCI image layouts (as tarballs, for `ctr images import`, skopeo and
// crane) and pushes to registries with go-containerregistry; no container engine is involved.
// The Velero test lab (hack/velero-lab) builds Velero's images with it too (Spec.Files).
package image

import (
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

// Spec is one single-architecture mover image. Files, Entrypoint, Title and Env make another image
// of the same shape (the Velero lab's); left empty, the image is the mover's.
type Spec struct {
	// Binary is a static linux kubectl-pvbackup for Arch (CGO_ENABLED=0), at BinaryPath; it may be
	// left out of an image made of Files.
	Binary []byte
	// CABundle is PEM certificates, shipped at CertsPath.
	CABundle []byte
	Arch     string
	// Version is the image's version label (the binary's version).
	Version string
	// Files are more files of the image, read from the host whenever the layer is read (programs
	// of 100+ MB: the layer is streamed, never held in memory).
	Files []File
	// Entrypoint replaces the mover's (BinaryPath mover).
	Entrypoint []string
	// Title replaces the title label Title: an image that is not the mover's.
	Title string
	// Env is added to the image's environment (SSL_CERT_FILE, TMPDIR, HOME).
	Env []string
}

// File is a host file and where it goes in the image.
type File struct {
	// Source is the file on the host; it must not change until the image is written.
	Source string
	// Path is its absolute path in the image.
	Path string
	// Mode is its permission bits (0755 for a program).
	Mode int64
}

// Build makes the image of s. Its content and digest depend on s alone: every time in it is the epoch.
func Build(s Spec) (v1.Image, error) {
	if !knownArch(s.Arch) {
		return nil, fmt.Errorf("architecture %q: the mover image is built for %v", s.Arch, Arches)
	}
	if len(s.Binary) == 0 && len(s.Files) == 0 {
		return nil, fmt.Errorf("no binary for linux/%s", s.Arch)
	}
	if err := CheckCABundle(s.CABundle); err != nil {
		return nil, err
	}
	entries, err := layerEntries(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return streamLayer(entries), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
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
		Entrypoint: or(s.Entrypoint, []string{BinaryPath, "mover"}),
		User:       fmt.Sprintf("%d:%d", UID, UID),
		WorkingDir: "/tmp",
		Env:        append([]string{"SSL_CERT_FILE=" + CertsPath, "TMPDIR=/tmp", "HOME=/tmp"}, s.Env...),
		Labels: map[string]string{
			LabelTitle:   or(s.Title, Title),
			LabelVersion: s.Version,
			LabelSource:  "https://github.com/kubectl-pvbackup/kubectl-pvbackup",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// or is v, or def when v is empty.
func or[T []string | string](v, def T) T {
	if len(v) == 0 {
		return def
	}
	return v
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
