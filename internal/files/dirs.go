package files

import (
	"container/list"
	"os"
	"sync"
)

// maxIdleDirs is how many destination directories cp keeps open with no file queued in them.
// With the directories that have files queued or being written (at most the queue and the
// workers: 5 × --parallel), it bounds cp's open descriptors whatever the tree's shape: keeping
// every directory open until the end failed with "too many open files" past ~1,000 directories
// (macOS's default limit is 256).
const maxIdleDirs = 32

// dirCache holds open destination directories: a file is written with one-name operations on its
// directory, instead of os.Root walking every component of its path for each of its six
// operations (15 openat calls a file, a fifth of cp's CPU). A directory is open while files are
// queued in it, and for a while after, least recently used closed first.
type dirCache struct {
	root *os.Root // the destination, never closed here
	mu   sync.Mutex
	open map[string]*destDir
	idle *list.List // of *destDir with no file queued, least recently used first
}

func newDirCache(root *os.Root) *dirCache {
	top := &destDir{Root: root, rel: ".", refs: 1} // never released, never closed
	return &dirCache{root: root, open: map[string]*destDir{".": top}, idle: list.New()}
}

// acquire returns rel (a directory ensureDir made) opened, for one file; release it when the
// file is done.
func (d *dirCache) acquire(rel string) (*destDir, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dd := d.open[rel]; dd != nil {
		if dd.elem != nil {
			d.idle.Remove(dd.elem)
			dd.elem = nil
		}
		dd.refs++
		return dd, nil
	}
	r, err := d.root.OpenRoot(rel)
	if err != nil {
		return nil, err
	}
	dd := &destDir{Root: r, rel: rel, refs: 1}
	d.open[rel] = dd
	return dd, nil
}

// release says one file of dd is done; a directory without files queued becomes idle, and the
// least recently used idle ones past maxIdleDirs are closed.
func (d *dirCache) release(dd *destDir) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dd.refs--; dd.refs > 0 {
		return
	}
	dd.elem = d.idle.PushBack(dd)
	for d.idle.Len() > maxIdleDirs {
		old := d.idle.Remove(d.idle.Front()).(*destDir)
		old.elem = nil
		delete(d.open, old.rel)
		_ = old.Close()
	}
}

// close closes every directory still open but the destination itself.
func (d *dirCache) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for rel, dd := range d.open {
		if rel != "." {
			_ = dd.Close()
		}
		delete(d.open, rel)
	}
	d.idle.Init()
}

// opened is how many directories are open, the destination's included (tests).
func (d *dirCache) opened() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.open)
}
