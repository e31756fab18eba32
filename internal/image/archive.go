package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Artifact is what is written or pushed: one image, or an index of images (Index wins when both
// are set).
type Artifact struct {
	Image v1.Image
	Index v1.ImageIndex
}

// Digest is the artifact's manifest digest.
func (a Artifact) Digest() (v1.Hash, error) {
	if a.Index != nil {
		return a.Index.Digest()
	}
	if a.Image != nil {
		return a.Image.Digest()
	}
	return v1.Hash{}, errors.New("empty artifact")
}

// Images are the artifact's images: the image, or every image of the index.
func (a Artifact) Images() ([]v1.Image, error) {
	if a.Index == nil {
		if a.Image == nil {
			return nil, errors.New("empty artifact")
		}
		return []v1.Image{a.Image}, nil
	}
	im, err := a.Index.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Image
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() {
			return nil, fmt.Errorf("the index holds a %s, not an image", d.MediaType)
		}
		img, err := a.Index.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s of the index: %w", d.Digest, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// Annotations recorded with the artifact in a layout: the reference it is known by.
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name" // OCI: the reference of this manifest
	AnnotationContainerdRef = "io.containerd.image.name"          // what `ctr images import` names it
)

// WriteArchive writes a as an OCI image layout tarball to out (through a temporary file renamed
// at the end), recording ref as its name. The tarball's bytes depend on a and ref alone.
func WriteArchive(out, ref string, a Artifact) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	named := layout.WithAnnotations(map[string]string{AnnotationRefName: ref, AnnotationContainerdRef: ref})
	if a.Index != nil {
		err = p.AppendIndex(a.Index, named)
	} else {
		err = p.AppendImage(a.Image, named)
	}
	if err != nil {
		return fmt.Errorf("write %s into the OCI layout: %w", ref, err)
	}
	return tarDir(dir, out)
}

// tarDir writes the layout directory as a tarball (what `ctr images import` and skopeo's
// oci-archive: read): entries in lexical order, owner root, every time the epoch.
func tarDir(dir, out string) (err error) {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		return tarEntry(tw, p, filepath.ToSlash(rel), info)
	})
	if err != nil {
		return fmt.Errorf("tar the OCI layout: %w", err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func tarEntry(tw *tar.Writer, file, name string, info os.FileInfo) error {
	hdr, err := tar.FileInfoHeader(info, "")
	if err != nil {
		return err
	}
	hdr.Name, hdr.Mode = name, 0o644
	if info.IsDir() {
		hdr.Name, hdr.Mode = name+"/", 0o755
	}
	hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = time.Unix(0, 0), 0, 0, "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := tw.WriteHeader(hdr); err != nil || info.IsDir() {
		return err
	}
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	_, err = io.Copy(tw, src)
	return err
}

// Bounds of an archive read by ReadArchive.
const (
	maxArchiveEntries = 1000
	maxArchiveBytes   = 4 << 30
)

// Archive is an OCI layout tarball unpacked into a temporary directory; Close removes it.
type Archive struct {
	Artifact
	// Ref is the reference the layout records (org.opencontainers.image.ref.name), if any.
	Ref string
	dir string
}

// Close removes the unpacked layout.
func (a *Archive) Close() error { return os.RemoveAll(a.dir) }

// ReadArchive unpacks the OCI layout tarball file (bounded: entries, bytes, names inside the
// layout) and returns what its index.json names: one image or one index, or an index made of
// several images with their platforms.
func ReadArchive(file string) (*Archive, error) {
	dir, err := os.MkdirTemp("", "pvbackup-oci-")
	if err != nil {
		return nil, err
	}
	a := &Archive{dir: dir}
	if err := untar(file, dir); err != nil {
		a.Close()
		return nil, fmt.Errorf("unpack %s: %w", file, err)
	}
	if err := a.open(); err != nil {
		a.Close()
		return nil, fmt.Errorf("%s is not an OCI image layout of an image or an index: %w (give the release's pvbackup-mover_<version>.oci.tar or `make image`'s tarball)", file, err)
	}
	return a, nil
}

func (a *Archive) open() error {
	root, err := layout.ImageIndexFromPath(a.dir)
	if err != nil {
		return err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return err
	}
	switch {
	case len(im.Manifests) == 0:
		return errors.New("its index.json names nothing")
	case len(im.Manifests) == 1:
		d := im.Manifests[0]
		a.Ref = d.Annotations[AnnotationRefName]
		switch {
		case d.MediaType.IsIndex():
			a.Index, err = root.ImageIndex(d.Digest)
		case d.MediaType.IsImage():
			a.Image, err = root.Image(d.Digest)
		default:
			err = fmt.Errorf("its index.json names a %s", d.MediaType)
		}
		return err
	}
	// Several images side by side (one per platform): push them as one index.
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() || d.Platform == nil {
			return fmt.Errorf("its index.json names %d manifests, and %s is not an image with a platform", len(im.Manifests), d.Digest)
		}
	}
	a.Index = root
	return nil
}

// untar unpacks regular files and directories of file into dir, refusing names that leave dir,
// links and devices, more than maxArchiveEntries entries and more than maxArchiveBytes bytes.
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var entries int
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if entries++; entries > maxArchiveEntries {
			return fmt.Errorf("more than %d entries: not a mover image layout", maxArchiveEntries)
		}
		name := path.Clean(h.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("entry %q leaves the layout", h.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			if total += h.Size; total > maxArchiveBytes {
				return fmt.Errorf("more than %d bytes: not a mover image layout", int64(maxArchiveBytes))
			}
			err = writeFile(target, tr, h.Size)
		default:
			return fmt.Errorf("entry %q is neither a file nor a directory", h.Name)
		}
		if err != nil {
			return err
		}
	}
}

func writeFile(target string, r io.Reader, size int64) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(out, r, size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
