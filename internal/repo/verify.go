package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path"
	"runtime"
	"strings"
	"sync"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/snapshotfs"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hardlinks"
)

// Verify checks every snapshot in the repository the way `kopia snapshot verify` does: every
// directory and file object is walked, every backing pack must exist, and filesPercent of the files
// (100 = all) are read back in full, which checks their contents decrypt and hash correctly.
func Verify(ctx context.Context, r *Repository, filesPercent float64) error {
	opts := snapshotfs.VerifierOptions{
		VerifyFilesPercent: filesPercent,
		FileQueueLength:    20000,
		Parallelism:        max(2, runtime.NumCPU()),
		MaxErrors:          10,
	}
	if dr, ok := r.Repository.(repo.DirectRepository); ok {
		bm, err := kblob.ReadBlobMap(ctx, dr.BlobReader())
		if err != nil {
			return fmt.Errorf("verify %s: list packs: %w", r.display, err)
		}
		opts.BlobMap = bm
	}
	manifests, err := snapshot.ListSnapshotManifests(ctx, r, nil, nil)
	if err != nil {
		return fmt.Errorf("verify %s: list snapshots: %w", r.display, err)
	}
	snaps, err := snapshot.LoadSnapshots(ctx, r, manifests)
	if err != nil {
		return fmt.Errorf("verify %s: load snapshots: %w", r.display, err)
	}
	v := snapshotfs.NewVerifier(ctx, r, opts)
	_, err = v.InParallel(ctx, func(tw *snapshotfs.TreeWalker) error {
		for _, man := range snaps {
			if man.RootEntry == nil {
				continue
			}
			root, err := snapshotfs.SnapshotRoot(r, man)
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", man.ID, err)
			}
			_ = tw.Process(ctx, root, fmt.Sprintf("%v@%s", man.Source, man.ID)) // errors are collected by the walker
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify %s: %w", r.display, err)
	}
	return nil
}

// ErrSnapshotMissing is returned (wrapped) by VerifySnapshot when the snapshot is not in the
// repository.
var ErrSnapshotMissing = errors.New("snapshot not found")

// VerifyOptions say how deep VerifySnapshot looks.
type VerifyOptions struct {
	// ReadPercent of the files (0-100) are read back in full: their contents are fetched,
	// decrypted and authenticated. The others are checked in the index and the pack list only.
	ReadPercent float64
	Parallel    int // files checked at once (0 = 8)
	// Blobs is the repository's pack list (BlobMap); nil skips the pack checks.
	Blobs map[kblob.ID]kblob.Metadata
	// MaxProblems bounds the problems kept (0 = 20); all are counted.
	MaxProblems int
}

// Problem is one damaged or missing part of a snapshot, by path inside it ("." for the root).
type Problem struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// VerifyStats is what VerifySnapshot walked and found.
type VerifyStats struct {
	Dirs      int64 `json:"dirs"`
	Files     int64 `json:"files"`
	Bytes     int64 `json:"bytes"`
	ReadFiles int64 `json:"readFiles"`
	ReadBytes int64 `json:"readBytes"`
	// HardLinks are the paths the snapshot's hard link record links to another path.
	HardLinks    int64     `json:"hardLinks,omitempty"`
	Problems     []Problem `json:"problems,omitempty"`
	ProblemCount int       `json:"problemCount"`
}

// BlobMap lists the repository's blobs once, for VerifyOptions.Blobs.
func (r *Repository) BlobMap(ctx context.Context) (map[kblob.ID]kblob.Metadata, error) {
	dr, ok := r.Repository.(repo.DirectRepository)
	if !ok {
		return nil, nil
	}
	bm, err := kblob.ReadBlobMap(ctx, dr.BlobReader())
	if err != nil {
		return nil, fmt.Errorf("list packs of %s: %w", r.display, err)
	}
	return bm, nil
}

// VerifySnapshot walks snapshot id's whole tree: every directory is read, every file's contents
// must be in the index and in a pack that exists and is long enough, and opts.ReadPercent of the
// files are read back. Problems name the path; the error is for a missing snapshot or a
// cancelled context only.
func VerifySnapshot(ctx context.Context, r *Repository, id string, opts VerifyOptions) (*VerifyStats, error) {
	man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(id))
	if errors.Is(err, snapshot.ErrSnapshotNotFound) {
		return nil, fmt.Errorf("%w: %s in %s", ErrSnapshotMissing, id, r.display)
	}
	if err != nil {
		return nil, fmt.Errorf("load snapshot %s from %s: %w", id, r.display, err)
	}
	root, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s in %s: %w", id, r.display, err)
	}
	root, links, linkErr := hardlinks.Load(ctx, root, man.Tags)
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.MaxProblems <= 0 {
		opts.MaxProblems = 20
	}
	v := &verifier{r: r, opts: opts, work: make(chan fileWork, 1000), stats: &VerifyStats{}}
	if linkErr != nil {
		v.problem(man.Tags[hardlinks.Tag], linkErr)
	}
	var wg sync.WaitGroup
	for range opts.Parallel {
		wg.Go(func() {
			for w := range v.work {
				v.file(ctx, w)
			}
		})
	}
	if d, ok := root.(fs.Directory); ok {
		v.dir(ctx, d, ".")
	} else {
		v.work <- fileWork{oid: objectID(root), path: ".", size: root.Size()}
	}
	close(v.work)
	wg.Wait()
	v.links(ctx, root, links)
	return v.stats, ctx.Err()
}

// links checks the hard link record: every path of a group is a file of the snapshot with the
// same contents (object) as the group's first, as paths of one file are.
func (v *verifier) links(ctx context.Context, root fs.Entry, rec *hardlinks.Record) {
	if rec == nil {
		return
	}
	v.stats.HardLinks = int64(rec.Links())
	for _, g := range rec.Groups {
		var first object.ID
		for i, p := range g {
			if ctx.Err() != nil {
				return
			}
			e, err := lookup(ctx, root, p)
			if err != nil {
				v.problem(p, fmt.Errorf("in the hard link record: %w", err))
				continue
			}
			_, isFile := e.(fs.File)
			switch oid := objectID(e); {
			case !isFile:
				v.problem(p, errors.New("in the hard link record, but not a file"))
			case i == 0:
				first = oid
			case oid != first:
				v.problem(p, fmt.Errorf("a hard link of %s in the record, but its contents differ", g[0]))
			}
		}
	}
}

// lookup walks root to the clean relative path p.
func lookup(ctx context.Context, root fs.Entry, p string) (fs.Entry, error) {
	e := root
	for _, name := range strings.Split(p, "/") {
		d, ok := e.(fs.Directory)
		if !ok {
			return nil, fmt.Errorf("%s is not a directory", e.Name())
		}
		child, err := d.Child(ctx, name)
		if err != nil {
			return nil, err
		}
		e = child
	}
	return e, nil
}

type fileWork struct {
	oid  object.ID
	path string
	size int64
}

type verifier struct {
	r     *Repository
	opts  VerifyOptions
	work  chan fileWork
	mu    sync.Mutex
	stats *VerifyStats
}

func objectID(e fs.Entry) object.ID {
	if h, ok := e.(object.HasObjectID); ok {
		return h.ObjectID()
	}
	return object.EmptyID
}

func (v *verifier) problem(path string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.stats.ProblemCount++
	if len(v.stats.Problems) < v.opts.MaxProblems {
		v.stats.Problems = append(v.stats.Problems, Problem{Path: path, Error: err.Error()})
	}
}

// dir checks a directory's own object, then walks its entries: directories here, files in the
// workers. Reading the listing reads the directory object in full.
func (v *verifier) dir(ctx context.Context, d fs.Directory, p string) {
	if ctx.Err() != nil {
		return
	}
	v.mu.Lock()
	v.stats.Dirs++
	v.mu.Unlock()
	if err := v.check(ctx, objectID(d)); err != nil {
		v.problem(p, err)
		return
	}
	err := fs.IterateEntries(ctx, d, func(ctx context.Context, e fs.Entry) error {
		child := path.Join(p, e.Name())
		if sub, ok := e.(fs.Directory); ok {
			v.dir(ctx, sub, child)
			return nil
		}
		if objectID(e) == object.EmptyID {
			return nil // sockets, devices: no data
		}
		v.work <- fileWork{oid: objectID(e), path: child, size: e.Size()}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		v.problem(p, fmt.Errorf("read directory: %w", err))
	}
}

func (v *verifier) file(ctx context.Context, w fileWork) {
	if ctx.Err() != nil {
		return
	}
	err := v.check(ctx, w.oid)
	var n int64
	read := err == nil && 100*rand.Float64() < v.opts.ReadPercent
	if read {
		n, err = v.read(ctx, w.oid)
	}
	v.mu.Lock()
	v.stats.Files++
	v.stats.Bytes += w.size
	if read {
		v.stats.ReadFiles++
		v.stats.ReadBytes += n
	}
	v.mu.Unlock()
	if err != nil {
		v.problem(w.path, err)
	}
}

// check looks the object's contents up in the index and their packs up in the pack list.
func (v *verifier) check(ctx context.Context, oid object.ID) error {
	cids, err := v.r.VerifyObject(ctx, oid)
	if err != nil {
		return fmt.Errorf("object %v: %w", oid, err)
	}
	if v.opts.Blobs == nil {
		return nil
	}
	for _, cid := range cids {
		ci, err := v.r.ContentInfo(ctx, cid)
		if err != nil {
			return fmt.Errorf("content %v: %w", cid, err)
		}
		bm, ok := v.opts.Blobs[ci.PackBlobID]
		if !ok {
			return fmt.Errorf("content %v is in pack %v, which is missing", cid, ci.PackBlobID)
		}
		if end := int64(ci.PackOffset) + int64(ci.PackedLength); end > bm.Length {
			return fmt.Errorf("content %v is in pack %v, which is truncated (%d bytes, the content ends at %d)", cid, ci.PackBlobID, bm.Length, end)
		}
	}
	return nil
}

// read reads the object back in full: Kopia decrypts and authenticates every content.
func (v *verifier) read(ctx context.Context, oid object.ID) (int64, error) {
	rd, err := v.r.OpenObject(ctx, oid)
	if err != nil {
		return 0, fmt.Errorf("open object %v: %w", oid, err)
	}
	defer rd.Close()
	n, err := io.Copy(io.Discard, rd)
	if err != nil {
		return n, fmt.Errorf("read object %v: %w", oid, err)
	}
	return n, nil
}
