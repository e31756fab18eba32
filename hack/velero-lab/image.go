package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Identity inside the images: Velero's own images run as a non-root user too; the node-agent's
// DaemonSet asks for root itself (runAsUser: 0) to read the pods' volumes on the host.
const (
	certsPath = "/etc/ssl/certs/ca-certificates.crt"
	uid       = 65532
)

// file is one file of the layer: a host path and where it goes in the image.
type file struct {
	src, dst string
	mode     int64
}

type fileFlags []file

func (f *fileFlags) String() string { return fmt.Sprint(*f) }

// Set parses SRC=DST (mode 0755: these are programs).
func (f *fileFlags) Set(s string) error {
	src, dst, ok := strings.Cut(s, "=")
	if !ok || src == "" || !path.IsAbs(dst) || path.Clean(dst) != dst {
		return fmt.Errorf("--file %q: write HOST_PATH=/absolute/path/in/image", s)
	}
	*f = append(*f, file{src: src, dst: dst, mode: 0o755})
	return nil
}

type spec struct {
	ref, arch, out, certs, title string
	files                        []file
	entrypoint                   []string
}

// runImage is `velero-lab image`.
func runImage(args []string) error {
	var s spec
	var files fileFlags
	var entrypoint string
	fl := flag.NewFlagSet("image", flag.ExitOnError)
	fl.Var(&files, "file", "HOST_PATH=/path/in/image (repeatable): a program of the image")
	fl.StringVar(&entrypoint, "entrypoint", "", "entrypoint, words separated by spaces")
	fl.StringVar(&s.ref, "ref", "", "image reference recorded in the layout (what `ctr images import` names it)")
	fl.StringVar(&s.title, "title", "", "org.opencontainers.image.title label")
	fl.StringVar(&s.arch, "arch", runtime.GOARCH, "architecture of the programs")
	fl.StringVar(&s.certs, "certs", certsPath, "CA bundle to ship")
	fl.StringVar(&s.out, "out", "", "OCI layout tarball to write")
	_ = fl.Parse(args)
	s.files, s.entrypoint = files, strings.Fields(entrypoint)
	if len(s.files) == 0 || s.ref == "" || s.out == "" || len(s.entrypoint) == 0 {
		return errUsage
	}
	if err := build(s); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %s)\n", s.out, s.ref, s.arch)
	return nil
}

func build(s spec) error {
	if err := os.MkdirAll(filepath.Dir(s.out), 0o755); err != nil {
		return err
	}
	layerFile, err := writeRootfs(s)
	if err != nil {
		return err
	}
	defer os.Remove(layerFile)
	layer, err := tarball.LayerFromFile(layerFile, tarball.WithMediaType(types.OCILayer))
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
	cf.OS, cf.Architecture = "linux", s.arch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	cf.Config = v1.Config{
		Entrypoint: s.entrypoint,
		User:       fmt.Sprintf("%d:%d", uid, uid),
		WorkingDir: "/tmp",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=" + certsPath, "TMPDIR=/tmp", "HOME=/tmp"},
		Labels:     map[string]string{"org.opencontainers.image.title": s.title, "org.opencontainers.image.description": "built by kubectl-pvbackup's hack/velero-lab for the test lab"},
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	return writeLayout(img, s)
}

// writeLayout writes img as an OCI layout and tars it into s.out.
func writeLayout(img v1.Image, s spec) error {
	dir, err := os.MkdirTemp(filepath.Dir(s.out), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": s.ref,
		"io.containerd.image.name":          s.ref,
	}), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: s.arch})); err != nil {
		return fmt.Errorf("write image: %w", err)
	}
	return tarDir(dir, s.out)
}

// writeRootfs writes the image's single layer to a temporary file (the programs are 100+ MB).
func writeRootfs(s spec) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(s.out), ".layer-*.tar")
	if err != nil {
		return "", err
	}
	err = rootfs(f, s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func rootfs(w io.Writer, s spec) error {
	ca, err := os.ReadFile(s.certs)
	if err != nil {
		return fmt.Errorf("read CA certificates: %w (apt-get install ca-certificates)", err)
	}
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	dirs := map[string]int64{"etc/": 0o755, "etc/ssl/": 0o755, "etc/ssl/certs/": 0o755, "tmp/": 0o1777}
	for _, f := range s.files {
		for d := path.Dir(f.dst); d != "/"; d = path.Dir(d) {
			dirs[d[1:]+"/"] = 0o755
		}
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // parents first
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: dirs[d], ModTime: epoch}); err != nil {
			return err
		}
	}
	small := []struct {
		name string
		data []byte
	}{
		{"etc/passwd", []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/tmp:/sbin/nologin\n", uid, uid))},
		{"etc/group", []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", uid))},
		{certsPath[1:], ca},
	}
	for _, f := range small {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, f := range s.files {
		if err := addFile(tw, f, epoch); err != nil {
			return err
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, f file, mtime time.Time) error {
	src, err := os.Open(f.src)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.dst[1:], Mode: f.mode, Size: st.Size(), ModTime: mtime}); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// tarDir writes the layout directory as a tarball (what `ctr images import` reads).
func tarDir(dir, out string) error {
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, hdr.Mode = time.Unix(0, 0), 0, 0, "", "", 0o644
		if info.IsDir() {
			hdr.Name += "/"
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil || info.IsDir() {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tar layout %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}
