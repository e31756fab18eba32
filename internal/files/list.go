package files

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"time"

	"github.com/kopia/kopia/fs"
)

// Entry is one file, directory or symlink of a volume, as ls shows it.
type Entry struct {
	Path    string    `json:"path"` // inside the volume, from its root ("/a/b")
	Type    string    `json:"type"` // file, directory, symlink or other
	Mode    string    `json:"mode"` // as ls -l: drwxr-xr-x
	UID     uint32    `json:"uid"`
	GID     uint32    `json:"gid"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
	Target  string    `json:"target,omitempty"` // a symlink's
}

// Entry types.
const (
	TypeFile      = "file"
	TypeDirectory = "directory"
	TypeSymlink   = "symlink"
	TypeOther     = "other"
)

// ListConfig says what to list.
type ListConfig struct {
	Backup string
	Ref    Ref
	// Recursive lists whole trees (ls -R).
	Recursive bool
}

// List lists ref's directory (or the entry itself when it is not one), sorted by name; with
// Recursive, directories are followed depth first.
func List(ctx context.Context, d Deps, cfg ListConfig) ([]Entry, error) {
	src, err := open(ctx, d, cfg.Backup, cfg.Ref)
	if err != nil {
		return nil, err
	}
	defer src.close()
	dir, ok := src.entry.(fs.Directory)
	if !ok {
		e, err := describe(ctx, src.contents, src.entry, cfg.Ref.Path)
		if err != nil {
			return nil, err
		}
		return []Entry{e}, nil
	}
	out := []Entry{}
	err = listDir(ctx, src.contents, dir, cfg.Ref.Path, cfg.Recursive, func(e Entry) { out = append(out, e) })
	return out, err
}

func listDir(ctx context.Context, c *contents, dir fs.Directory, p string, recursive bool, emit func(Entry)) error {
	entries, err := fs.GetAllEntries(ctx, dir)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", p, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, child := range entries {
		if !safeName(child.Name()) {
			continue // never shown as a path it is not; cp refuses it by name
		}
		cp := path.Join(p, child.Name())
		e, err := describe(ctx, c, child, cp)
		if err != nil {
			return err
		}
		emit(e)
		if sub, ok := child.(fs.Directory); ok && recursive {
			if err := listDir(ctx, c, sub, cp, true, emit); err != nil {
				return err
			}
		}
	}
	return nil
}

func describe(ctx context.Context, c *contents, e fs.Entry, p string) (Entry, error) {
	m := e.Mode()
	out := Entry{Path: p, Mode: m.String(), UID: e.Owner().UserID, GID: e.Owner().GroupID, Size: e.Size(), ModTime: e.ModTime().UTC()}
	switch {
	case m.IsDir():
		out.Type = TypeDirectory
	case m&os.ModeSymlink != 0:
		out.Type = TypeSymlink
		if l, ok := e.(fs.Symlink); ok {
			t, err := readLink(ctx, c, l)
			if err != nil {
				return out, fmt.Errorf("read symlink %s: %w", p, err)
			}
			out.Target = t
		}
	case m.IsRegular():
		out.Type = TypeFile
	default:
		out.Type = TypeOther
	}
	return out, nil
}

// Cat streams the file at ref to w, one content at a time, and returns the bytes written. It
// reads exactly the size the backup declares for the file, or fails (object.go).
func Cat(ctx context.Context, d Deps, backup string, ref Ref, w io.Writer) (int64, error) {
	src, err := open(ctx, d, backup, ref)
	if err != nil {
		return 0, err
	}
	defer src.close()
	f, ok := src.entry.(fs.File)
	if !ok || !src.entry.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is a %s, not a file (list it with `kubectl pvbackup ls`)", ref, kind(src.entry))
	}
	oid, ok := objectID(f)
	if !ok || src.contents == nil {
		return 0, fmt.Errorf("%s: not a file of a Kopia snapshot", ref)
	}
	n, err := src.contents.each(ctx, oid, f.Size(), func(data []byte) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("read %s: %w", ref, err)
	}
	return n, nil
}

func kind(e fs.Entry) string {
	switch m := e.Mode(); {
	case m.IsDir():
		return TypeDirectory
	case m&os.ModeSymlink != 0:
		return TypeSymlink
	}
	return TypeOther
}

// readerCtx stops a long read when ctx ends (Ctrl-C during a 5 GiB cat).
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
