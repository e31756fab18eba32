package files

import (
	"context"
	"errors"
	"io"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
)

// boundedRepo is the repository Kopia's snapshot filesystem (snapshotfs) reads directories and
// symlinks through: its objects are read by the bounded walk of object.go, at most maxUnsized
// bytes each, instead of Kopia's object reader.
type boundedRepo struct {
	kopiarepo.Repository
	c *contents
}

// bounded wraps rep when its contents can be read directly (always, for the repositories this
// plugin opens); the repository itself otherwise.
func bounded(rep kopiarepo.Repository, c *contents) kopiarepo.Repository {
	if c == nil {
		return rep
	}
	return boundedRepo{Repository: rep, c: c}
}

// OpenObject reads id through the bounded walk.
func (r boundedRepo) OpenObject(ctx context.Context, id object.ID) (object.Reader, error) {
	return &objectReader{walkReader: walkReader{w: r.c.walkObject(ctx, id, maxUnsized, false)}}, nil
}

// objectReader is an object.Reader that reads forward only: what snapshotfs does with
// directories and symlinks.
type objectReader struct {
	walkReader
}

var errNoSeek = errors.New("this object reader reads forward only")

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	if whence == io.SeekCurrent && offset == 0 {
		return r.n, nil
	}
	return 0, errNoSeek
}

func (r *objectReader) Close() error { return nil }

// Length is unknown before the end: it is the bytes read so far.
func (r *objectReader) Length() int64 { return r.n }
