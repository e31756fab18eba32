// Command imagetar writes a one-layer container image as a docker-archive tarball that
// `ctr images import` loads, so the test cluster never pulls an image:
//
//	imagetar -o pause.tar -name localhost/pvbackup/pause:3.10 -file .local/bin/pause:/pause -entrypoint /pause
//	imagetar -o busybox.tar -name localhost/pvbackup/busybox:1.35 -busybox /bin/busybox -cmd sh
//
// The layer also holds /etc/passwd, /etc/group and /tmp. Timestamps are fixed, so the same inputs
// give the same image digest.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	var files multi
	out := flag.String("o", "", "output tarball")
	ref := flag.String("name", "", "image name, e.g. localhost/pvbackup/busybox:1.35")
	busybox := flag.String("busybox", "", "a static busybox binary: installed as /bin/busybox with a /bin symlink per applet")
	entrypoint := flag.String("entrypoint", "", "entrypoint, words separated by spaces")
	cmd := flag.String("cmd", "", "default command (arguments of the entrypoint), words separated by spaces")
	flag.Var(&files, "file", "SRC:DST, a file to put in the image with mode 0755 (repeatable)")
	flag.Parse()
	if err := run(*out, *ref, *busybox, *entrypoint, *cmd, files); err != nil {
		fmt.Fprintln(os.Stderr, "imagetar:", err)
		os.Exit(1)
	}
}

type entry struct {
	hdr  tar.Header
	data []byte
}

func run(out, ref, busybox, entrypoint, cmd string, files []string) error {
	if out == "" || ref == "" {
		return fmt.Errorf("-o and -name are required")
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	entries := map[string]entry{}
	dir := func(p string, mode int64) {
		entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: mode}}
	}
	file := func(p string, mode int64, data []byte) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				dir(d, 0o755)
			}
		}
		entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: int64(len(data))}, data: data}
	}
	dir("tmp", 0o1777)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("-file %q: want SRC:DST", f)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		file(strings.TrimPrefix(dst, "/"), 0o755, b)
	}
	if busybox != "" {
		b, err := os.ReadFile(busybox)
		if err != nil {
			return err
		}
		file("bin/busybox", 0o755, b)
		list, err := exec.Command(busybox, "--list").Output()
		if err != nil {
			return fmt.Errorf("%s --list: %w", busybox, err)
		}
		for _, applet := range strings.Fields(string(list)) {
			if applet == "busybox" {
				continue
			}
			p := "bin/" + applet
			if _, ok := entries[p]; !ok {
				entries[p] = entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: "busybox", Mode: 0o777}}
			}
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		e := entries[n]
		e.hdr.ModTime = epoch
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{"PATH=/bin"}
	if entrypoint != "" {
		cf.Config.Entrypoint = strings.Fields(entrypoint)
	}
	if cmd != "" {
		cf.Config.Cmd = strings.Fields(cmd)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: epoch}); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
