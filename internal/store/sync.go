package store

import (
	"context"
	"os"
	"path/filepath"

	"gocloud.dev/blob"
)

// Write stores data under key, replacing what is there. On file:// the content and the directory
// entry are synced to disk before it returns, as every write of this package is there: a key file
// that a power cut leaves empty is a location that no password opens. Elsewhere it is a Put: locked
// when the location is immutable.
func (l *Location) Write(ctx context.Context, key string, data []byte, contentType string) error {
	p, ok := l.localPath(key)
	if !ok {
		return l.Scrub(l.Put(ctx, key, data, &blob.WriterOptions{ContentType: contentType}))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return replaceSynced(p, data)
}

// replaceSynced replaces file p with data through a synced temporary file beside it and a
// rename, then syncs the directory: p is the old content or the new, never a part.
func replaceSynced(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), tempPrefix+filepath.Base(p)+".*"+tempSuffix)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeSynced(tmp, data); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	return syncDir(filepath.Dir(p))
}

// writeSynced writes data to f, syncs it and closes it.
func writeSynced(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a directory's new entries durable (where a directory can be opened and synced).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil // Windows: directories are not opened; NTFS journals the rename
	}
	defer d.Close()
	_ = d.Sync() // some filesystems refuse fsync on a directory: nothing more can be done there
	return nil
}
