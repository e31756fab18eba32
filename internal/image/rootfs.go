package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"
)

// entry is one regular file of the layer: its bytes, or a host file of a known size.
type entry struct {
	name string // in the layer: no leading slash
	mode int64
	data []byte
	src  string
	size int64
}

// layerEntries are the files of s's layer in their order: passwd and group for the non-root user,
// the CA bundle, the binary, then s.Files. The host files are checked (regular, their size noted).
func layerEntries(s Spec) ([]entry, error) {
	entries := []entry{
		{name: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/tmp:/sbin/nologin\n", UID, UID))},
		{name: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID))},
		{name: CertsPath[1:], mode: 0o644, data: s.CABundle},
	}
	if len(s.Binary) > 0 {
		entries = append(entries, entry{name: BinaryPath[1:], mode: 0o755, data: s.Binary})
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.name] = true
	}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" || f.Path == "/tmp" {
			return nil, fmt.Errorf("file %s: the path in the image %q is not a clean absolute file path", f.Source, f.Path)
		}
		if seen[f.Path[1:]] {
			return nil, fmt.Errorf("file %s: the image already has a file at %s", f.Source, f.Path)
		}
		seen[f.Path[1:]] = true
		if f.Mode&^0o7777 != 0 {
			return nil, fmt.Errorf("file %s: mode %o has more than permission bits", f.Source, f.Mode)
		}
		st, err := os.Stat(f.Source)
		if err != nil {
			return nil, fmt.Errorf("file of the image: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("file %s is not a regular file", f.Source)
		}
		entries = append(entries, entry{name: f.Path[1:], mode: f.Mode, src: f.Source, size: st.Size()})
	}
	return entries, nil
}

// layerDirs are the directories of the entries' paths with /tmp (world-writable, sticky), sorted:
// parents first.
func layerDirs(entries []entry) []tar.Header {
	modes := map[string]int64{}
	for _, e := range entries {
		for d := path.Dir(e.name); d != "."; d = path.Dir(d) {
			modes[d+"/"] = 0o755
		}
	}
	modes["tmp/"] = 0o1777
	var dirs []tar.Header
	for name, mode := range modes {
		dirs = append(dirs, tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: time.Unix(0, 0)})
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].Name < dirs[j].Name })
	return dirs
}

// streamLayer is the layer's tarball, written as it is read.
func streamLayer(entries []entry) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw, entries)) }()
	return pr
}

// writeLayer writes the image's single layer: the directories, then the entries; owned by root,
// every time the epoch.
func writeLayer(w io.Writer, entries []entry) error {
	tw := tar.NewWriter(w)
	for _, d := range layerDirs(entries) {
		if err := tw.WriteHeader(&d); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if err := writeEntry(tw, e); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, e entry) error {
	r, size := io.Reader(bytes.NewReader(e.data)), int64(len(e.data))
	if e.src != "" {
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		r, size = f, e.size
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: e.mode, Size: size, ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	if n, err := io.Copy(tw, r); err != nil || n != size {
		return fmt.Errorf("%s changed while the image was written (%d of %d bytes): %v", e.src, n, size, err)
	}
	return nil
}
