package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/localfs"
	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// A file bigger than ParallelAbove is stored as parts (more contents than the splitter alone
// would make) and restores byte for byte; below it, it is one stream.
func TestBackupSplitsBigFiles(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 6<<20+12345)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "big.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	contents := func(s Settings, above int64) int {
		res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data", ParallelAbove: above, Parallel: 3}, func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(res.SnapshotID))
		if err != nil {
			t.Fatal(err)
		}
		root, err := snapshotfs.SnapshotRoot(r, man)
		if err != nil {
			t.Fatal(err)
		}
		f, err := root.(fs.Directory).Child(ctx, "big.img")
		if err != nil {
			t.Fatal(err)
		}
		ids, err := r.VerifyObject(ctx, f.(snapshot.HasDirEntry).DirEntry().ObjectID)
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {}); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, "big.img"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("restored big.img differs (err %v)", err)
		}
		return len(ids)
	}
	split, whole := contents(fileSettings(t), 1<<20), contents(fileSettings(t), 0)
	if split < 7 || whole >= 7 {
		t.Errorf("a 6 MiB file in 1 MiB parts has %d contents, in one stream %d; want >= 7 and fewer", split, whole)
	}
}

func TestDefaultParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if got := DefaultParallel(); got != 2 {
		t.Errorf("DefaultParallel() with GOMAXPROCS 1 = %d, want 2", got)
	}
	runtime.GOMAXPROCS(5)
	if got := DefaultParallel(); got != 5 {
		t.Errorf("DefaultParallel() with GOMAXPROCS 5 = %d, want 5", got)
	}
	p, err := backupPolicy(BackupConfig{Parallel: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.UploadPolicy.MaxParallelFileReads.OrDefault(0) != 3 || p.UploadPolicy.ParallelUploadAboveSize.OrDefault(0) != DefaultParallelAbove {
		t.Errorf("upload policy %+v", p.UploadPolicy)
	}
}

// A lone big file's parts are read --parallel at once, not one after the other: at 2 (the
// default on two cores) Kopia's pool had one worker, the file went to it, and its parts found no
// other idle worker.
func TestBigFilePartsReadInParallel(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 5<<20+4321)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(src, "disk.img"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	local, err := localfs.NewEntry(src)
	if err != nil {
		t.Fatal(err)
	}
	const parallel = 2
	opens := &openCounter{want: parallel, wait: 2 * time.Second}
	r, closeFn, err := fileSettings(t).Repos().OpenOrCreate(ctx, "team-a")
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	cfg := BackupConfig{Source: src, PVC: "data", Parallel: parallel, ParallelAbove: 1 << 20, Compression: "none"}
	si := SourceInfo("team-a", "data")
	err = kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		override, err := backupPolicy(cfg)
		if err != nil {
			return err
		}
		tree, err := policy.TreeForSourceWithOverride(ctx, w, si, override)
		if err != nil {
			return err
		}
		man, err := newUploader(w, cfg).Upload(ctx, countedDir{local.(fs.Directory), opens}, tree, si)
		if err == nil && man.RootEntry.DirSummary.TotalFileSize != int64(len(data)) {
			err = fmt.Errorf("uploaded %d bytes, want %d", man.RootEntry.DirSummary.TotalFileSize, len(data))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := opens.peak(); got != parallel {
		t.Errorf("a 5 MiB file in 1 MiB parts at --parallel %d had at most %d parts read at once; want %d", parallel, got, parallel)
	}
}

// openCounter counts the readers open at once. A reader's first read waits until want are open
// (or, once, until wait has passed), so parts that run at once are seen open at once.
type openCounter struct {
	want int
	wait time.Duration
	mu   sync.Mutex
	cond *sync.Cond
	n    int
	max  int
	late bool // a reader waited out wait: no later one waits
}

func (c *openCounter) opened() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.max = max(c.max, c.n)
	if c.cond != nil {
		c.cond.Broadcast()
	}
}

func (c *openCounter) closed() {
	c.mu.Lock()
	c.n--
	c.mu.Unlock()
}

// waitOthers blocks until want readers are open, or wait has passed (then no one waits again).
func (c *openCounter) waitOthers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cond == nil {
		c.cond = sync.NewCond(&c.mu)
	}
	timer := time.AfterFunc(c.wait, func() {
		c.mu.Lock()
		c.late = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer timer.Stop()
	for c.n < c.want && !c.late {
		c.cond.Wait()
	}
}

func (c *openCounter) peak() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.max
}

type countedDir struct {
	fs.Directory
	c *openCounter
}

func (d countedDir) Child(ctx context.Context, name string) (fs.Entry, error) {
	e, err := d.Directory.Child(ctx, name)
	return counted(e, d.c), err
}

func (d countedDir) Iterate(ctx context.Context) (fs.DirectoryIterator, error) {
	it, err := d.Directory.Iterate(ctx)
	if err != nil {
		return nil, err
	}
	return countedIter{it, d.c}, nil
}

type countedIter struct {
	fs.DirectoryIterator
	c *openCounter
}

func (i countedIter) Next(ctx context.Context) (fs.Entry, error) {
	e, err := i.DirectoryIterator.Next(ctx)
	return counted(e, i.c), err
}

func counted(e fs.Entry, c *openCounter) fs.Entry {
	switch e := e.(type) {
	case fs.Directory:
		return countedDir{e, c}
	case fs.File:
		return countedFile{e, c}
	}
	return e
}

type countedFile struct {
	fs.File
	c *openCounter
}

func (f countedFile) Open(ctx context.Context) (fs.Reader, error) {
	r, err := f.File.Open(ctx)
	if err != nil {
		return nil, err
	}
	f.c.opened()
	return &countedReader{Reader: r, c: f.c}, nil
}

type countedReader struct {
	fs.Reader
	c       *openCounter
	started bool
	once    sync.Once
}

func (r *countedReader) Read(p []byte) (int, error) {
	if !r.started {
		r.started = true
		r.c.waitOthers()
	}
	return r.Reader.Read(p)
}

func (r *countedReader) Close() error {
	r.once.Do(r.c.closed)
	return r.Reader.Close()
}
