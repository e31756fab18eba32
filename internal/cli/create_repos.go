package cli

import (
	"context"
	"sync"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// earlyRepos creates the repositories a backup's movers will write to once the preflight has
// passed, while the resources archive is written, instead of after it: creating a repository
// (Kopia's format blob, its key derivation, a few writes) took ~0.8 s of a loaded two-core machine,
// and until it is done no snapshot is requested (make bench-velero, docs/velero.md). The volume
// engine's EnsureRepository (Ensure) waits for its namespace's creation, or starts it when none
// was started early (--skip-preflight); each namespace's repository is created once.
type earlyRepos struct {
	create func(ctx context.Context, namespace string) error
	mu     sync.Mutex
	runs   map[string]*repoCreation
	wg     sync.WaitGroup
}

// repoCreation is one namespace's repository being created; err is set when done is closed.
type repoCreation struct {
	done chan struct{}
	err  error
}

func newEarlyRepos(create func(ctx context.Context, namespace string) error) *earlyRepos {
	return &earlyRepos{create: create, runs: map[string]*repoCreation{}}
}

// startFor starts creating the repositories of the planned volumes that movers will back up.
func (e *earlyRepos) startFor(ctx context.Context, planned []catalog.Volume) {
	for _, v := range planned {
		if m := volumes.Mode(v.Mode); v.Status == "" && (m == volumes.ModeSnapshotMove || m == volumes.ModeFS) {
			e.start(ctx, v.Namespace)
		}
	}
}

// start starts creating namespace's repository unless it was started before.
func (e *earlyRepos) start(ctx context.Context, namespace string) *repoCreation {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.runs[namespace]; ok {
		return r
	}
	r := &repoCreation{done: make(chan struct{})}
	e.runs[namespace] = r
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		r.err = e.create(ctx, namespace)
	}()
	return r
}

// Ensure is the volume engine's EnsureRepository: the outcome of namespace's creation.
func (e *earlyRepos) Ensure(ctx context.Context, namespace string) error {
	r := e.start(ctx, namespace)
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// wait returns once every creation started has ended: the command never exits while one of
// them is writing a repository's first blobs (a backup that fails in its resources archive).
func (e *earlyRepos) wait() { e.wg.Wait() }
