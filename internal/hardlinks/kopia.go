package hardlinks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
)

// FreeName returns the record's entry name for the volume at dir: Name, or Name with a number
// when the volume has an entry of that name.
func FreeName(dir string) (string, error) {
	for i := 0; i < 100; i++ {
		n := Name
		if i > 0 {
			n = fmt.Sprintf(".pvbackup-hardlinks-%d.json", i)
		}
		if _, err := os.Lstat(dir + "/" + n); errors.Is(err, os.ErrNotExist) {
			return n, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no free name for the hard link record in %s", dir)
}

// Attach returns root with the record as one more entry, name: what the backup uploads.
func Attach(root fs.Directory, name string, rec *Record) (fs.Directory, error) {
	b, err := rec.Encode()
	if err != nil {
		return nil, err
	}
	return &withEntry{Directory: root, extra: &recordFile{name: name, data: b, mtime: root.ModTime(), owner: root.Owner()}}, nil
}

// recordFile is the record as a file of the snapshot; it can be read again (the uploader's
// estimate walks the root before the upload does).
type recordFile struct {
	name  string
	data  []byte
	mtime time.Time
	owner fs.OwnerInfo
}

func (f *recordFile) Name() string                { return f.name }
func (f *recordFile) IsDir() bool                 { return false }
func (f *recordFile) Mode() os.FileMode           { return 0o400 }
func (f *recordFile) ModTime() time.Time          { return f.mtime }
func (f *recordFile) Size() int64                 { return int64(len(f.data)) }
func (f *recordFile) Sys() any                    { return nil }
func (f *recordFile) Owner() fs.OwnerInfo         { return f.owner }
func (f *recordFile) Device() fs.DeviceInfo       { return fs.DeviceInfo{} }
func (f *recordFile) LocalFilesystemPath() string { return "" }
func (f *recordFile) Close()                      {}
func (f *recordFile) GetReader(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// withEntry is a directory with one more entry than it has.
type withEntry struct {
	fs.Directory
	extra fs.Entry
}

func (d *withEntry) Child(ctx context.Context, name string) (fs.Entry, error) {
	if name == d.extra.Name() {
		return d.extra, nil
	}
	return d.Directory.Child(ctx, name)
}

func (d *withEntry) Iterate(ctx context.Context) (fs.DirectoryIterator, error) {
	it, err := d.Directory.Iterate(ctx)
	if err != nil {
		return nil, err
	}
	return &extraIterator{DirectoryIterator: it, extra: d.extra}, nil
}

type extraIterator struct {
	fs.DirectoryIterator
	extra fs.Entry
}

func (it *extraIterator) Next(ctx context.Context) (fs.Entry, error) {
	e, err := it.DirectoryIterator.Next(ctx)
	if e == nil && err == nil && it.extra != nil {
		e, it.extra = it.extra, nil
	}
	return e, err
}

// Load finds the record of a snapshot whose root is root and whose tags are tags, and returns
// the root without it (what restore, cp and ls see) and the record; a snapshot without the tag
// has none (nil). The record is read bounded (Read).
func Load(ctx context.Context, root fs.Entry, tags map[string]string) (fs.Entry, *Record, error) {
	name, ok := tags[Tag]
	dir, isDir := root.(fs.Directory)
	if !ok || !isDir {
		return root, nil, nil
	}
	if err := checkPath(name); err != nil || strings.Contains(name, "/") {
		return nil, nil, fmt.Errorf("%w: tag %s names %q", ErrInvalid, Tag, name)
	}
	e, err := dir.Child(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("hard link record %s: %w", name, err)
	}
	f, ok := e.(fs.File)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s is not a file", ErrInvalid, name)
	}
	if f.Size() > MaxBytes {
		return nil, nil, fmt.Errorf("%w: %s has %d bytes, more than %d", ErrInvalid, name, f.Size(), MaxBytes)
	}
	rd, err := f.Open(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("hard link record %s: %w", name, err)
	}
	defer rd.Close()
	rec, err := Read(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("hard link record %s: %w", name, err)
	}
	return &without{Directory: dir, name: name}, rec, nil
}

// without is a directory with one entry hidden.
type without struct {
	fs.Directory
	name string
}

func (d *without) Child(ctx context.Context, name string) (fs.Entry, error) {
	if name == d.name {
		return nil, fs.ErrEntryNotFound
	}
	return d.Directory.Child(ctx, name)
}

func (d *without) Iterate(ctx context.Context) (fs.DirectoryIterator, error) {
	it, err := d.Directory.Iterate(ctx)
	if err != nil {
		return nil, err
	}
	return &skipIterator{DirectoryIterator: it, name: d.name}, nil
}

type skipIterator struct {
	fs.DirectoryIterator
	name string
}

func (it *skipIterator) Next(ctx context.Context) (fs.Entry, error) {
	for {
		e, err := it.DirectoryIterator.Next(ctx)
		if e == nil || err != nil || e.Name() != it.name {
			return e, err
		}
	}
}

// What Kopia asks of a snapshot's directories beyond fs.Directory, passed through.

func (d *without) ObjectID() object.ID {
	if h, ok := d.Directory.(object.HasObjectID); ok {
		return h.ObjectID()
	}
	return object.EmptyID
}

func (d *without) DirEntry() *snapshot.DirEntry {
	if h, ok := d.Directory.(snapshot.HasDirEntry); ok {
		return h.DirEntry()
	}
	return nil
}

func (d *without) Summary(ctx context.Context) (*fs.DirectorySummary, error) {
	if s, ok := d.Directory.(fs.DirectoryWithSummary); ok {
		return s.Summary(ctx)
	}
	return nil, nil
}
