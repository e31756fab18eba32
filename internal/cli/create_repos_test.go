package cli

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// fakeCreations records the namespaces whose repository was created and holds each creation
// until release is closed.
type fakeCreations struct {
	mu      sync.Mutex
	created []string
	started chan string
	release chan struct{}
	fail    map[string]error
}

func newFakeCreations() *fakeCreations {
	return &fakeCreations{started: make(chan string, 16), release: make(chan struct{}), fail: map[string]error{}}
}

func (f *fakeCreations) create(ctx context.Context, ns string) error {
	f.started <- ns
	select {
	case <-f.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, ns)
	return f.fail[ns]
}

func (f *fakeCreations) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created)
}

// The preflight's plan starts the repositories of the volumes movers will back up — one
// creation per namespace, none for snapshot mode, none for a volume already decided — and the
// engine's Ensure then waits for that creation instead of making another.
func TestEarlyReposStartFromThePlan(t *testing.T) {
	f := newFakeCreations()
	f.fail["b"] = errors.New("no write permission")
	e := newEarlyRepos(f.create)
	ctx := context.Background()
	e.startFor(ctx, []catalog.Volume{
		{Namespace: "a", PVC: "one", Mode: "snapshot-move"},
		{Namespace: "a", PVC: "two", Mode: "fs"},
		{Namespace: "b", PVC: "one", Mode: "fs"},
		{Namespace: "c", PVC: "kept", Mode: "snapshot"},
		{Namespace: "d", PVC: "skipped", Mode: "snapshot-move", Status: catalog.VolumeSkipped},
		{Namespace: "e", PVC: "none", Mode: "none"},
	})
	started := map[string]bool{<-f.started: true, <-f.started: true}
	if !started["a"] || !started["b"] {
		t.Fatalf("creations started for %v, want a and b", started)
	}
	// Ensure waits for the creation under way.
	got := make(chan error, 1)
	go func() { got <- e.Ensure(ctx, "a") }()
	select {
	case err := <-got:
		t.Fatalf("Ensure returned %v before the creation ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	if err := <-got; err != nil {
		t.Fatalf("Ensure(a): %v", err)
	}
	if err := e.Ensure(ctx, "b"); err == nil || err.Error() != "no write permission" {
		t.Fatalf("Ensure(b) = %v, want the creation's error", err)
	}
	e.wait()
	if n := f.count(); n != 2 {
		t.Fatalf("%d creations, want 2 (one per namespace): %v", n, f.created)
	}
	select {
	case ns := <-f.started:
		t.Fatalf("a creation for %s was started: snapshot mode, decided and data-less volumes have no repository to create", ns)
	default:
	}
}

// Without a preflight (--skip-preflight) Ensure creates the repository itself, once.
func TestEarlyReposEnsureWithoutStart(t *testing.T) {
	f := newFakeCreations()
	close(f.release)
	e := newEarlyRepos(f.create)
	for range 2 {
		if err := e.Ensure(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d creations, want 1", n)
	}
}

// wait returns only once a creation started early has ended (the command must not exit while
// a repository's first blobs are written), and an interrupted Ensure does not wait for it.
func TestEarlyReposWaitAndCancel(t *testing.T) {
	f := newFakeCreations()
	e := newEarlyRepos(f.create)
	e.startFor(context.Background(), []catalog.Volume{{Namespace: "a", PVC: "one", Mode: "fs"}})
	<-f.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Ensure(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure with a cancelled context = %v, want context.Canceled", err)
	}
	waited := make(chan struct{})
	go func() { e.wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned while a creation was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(f.release)
	<-waited
	if n := f.count(); n != 1 {
		t.Fatalf("%d creations, want 1", n)
	}
}
