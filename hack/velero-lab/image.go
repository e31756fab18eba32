package main

import (
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/image"
)

type fileFlags []image.File

func (f *fileFlags) String() string { return fmt.Sprint(*f) }

// Set parses SRC=DST (mode 0755: these are programs).
func (f *fileFlags) Set(s string) error {
	src, dst, ok := strings.Cut(s, "=")
	if !ok || src == "" || !path.IsAbs(dst) || path.Clean(dst) != dst {
		return fmt.Errorf("--file %q: write HOST_PATH=/absolute/path/in/image", s)
	}
	*f = append(*f, image.File{Source: src, Path: dst, Mode: 0o755})
	return nil
}

// spec is one image of the lab: Velero's or its AWS plugin's, built by internal/image as the mover
// image is (one layer, the CA bundle, the non-root user, reproducible), of the programs in files.
type spec struct {
	ref, arch, out, certs, title string
	files                        []image.File
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
	fl.StringVar(&s.certs, "certs", image.CertsPath, "CA bundle to ship")
	fl.StringVar(&s.out, "out", "", "OCI layout tarball to write")
	_ = fl.Parse(args)
	s.files, s.entrypoint = files, strings.Fields(entrypoint)
	if len(s.files) == 0 || s.ref == "" || s.out == "" || s.title == "" || len(s.entrypoint) == 0 {
		return errUsage
	}
	if err := build(s); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%s, %s)\n", s.out, s.ref, s.arch)
	return nil
}

func build(s spec) error {
	ca, _, err := image.SystemCABundle(s.certs)
	if err != nil {
		return err
	}
	img, err := image.Build(image.Spec{
		CABundle: ca, Arch: s.arch, Files: s.files, Entrypoint: s.entrypoint, Title: s.title,
		// The lab's images have always had a PATH (the mover's needs none).
		Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
	})
	if err != nil {
		return fmt.Errorf("image %s: %w", s.ref, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.out), 0o755); err != nil {
		return err
	}
	return image.WriteArchive(s.out, s.ref, image.Artifact{Image: img})
}
