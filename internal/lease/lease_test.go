package lease

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

func TestLease(t *testing.T) {
	ctx := context.Background()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer loc.Close()
	b := loc.Bucket()

	first, err := Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(ctx, loc, "repo maintain", time.Minute)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), first.Record().Owner) || !strings.Contains(err.Error(), "running prune") {
		t.Fatalf("second acquire: %v; want ErrHeld naming %q running prune", err, first.Record().Owner)
	}
	if err := first.Release(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := Acquire(ctx, loc, "repo maintain", time.Minute)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Exists(ctx, Key); ok {
		t.Fatal("the lease object is still there after release")
	}
}

func TestExpiredLeaseIsTakenOver(t *testing.T) {
	ctx := context.Background()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer loc.Close()
	b := loc.Bucket()
	dead := Record{ID: "dead", Owner: "ci@runner pid 1", Purpose: "prune", Acquired: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}
	if err := write(ctx, b, dead); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatalf("take over an expired lease: %v", err)
	}
	defer l.Release(ctx)
	cur, err := read(ctx, b)
	if err != nil || cur.ID != l.Record().ID {
		t.Fatalf("lease now %+v (%v); want ours", cur, err)
	}
}

func TestRenewalAndLoss(t *testing.T) {
	ctx := context.Background()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer loc.Close()
	b := loc.Bucket()
	l, err := Acquire(ctx, loc, "prune", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	first := l.Record().Expires
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cur, err := read(ctx, b)
		if err == nil && cur.Expires.After(first) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the bucket: there is nothing to watch
	}
	if cur, _ := read(ctx, b); !cur.Expires.After(first) {
		t.Fatal("the lease was not renewed")
	}
	// Someone else overwrites it: the holder notices at its next renewal and does not release theirs.
	if err := write(ctx, b, Record{ID: "other", Owner: "x", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	for time.Now().Before(deadline) && l.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if l.Err() == nil || !strings.Contains(l.Err().Error(), "taken over by x") {
		t.Fatalf("Err() = %v; want a lost lease", l.Err())
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, _ := read(ctx, b); cur.ID != "other" {
		t.Fatal("release removed another run's lease")
	}
}

// Runs racing for the lease of a file:// location: exactly one holds it.
func TestLeaseRaceFile(t *testing.T) {
	ctx := context.Background()
	for round := range 20 {
		loc, err := store.Open(ctx, "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		const runs = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			holders []*Lease
		)
		start := make(chan struct{})
		for range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := Acquire(ctx, loc, "prune", time.Minute)
				if err != nil && !errors.Is(err, ErrHeld) {
					t.Errorf("acquire: %v; want ErrHeld", err)
				}
				if err == nil {
					mu.Lock()
					holders = append(holders, l)
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("round %d: %d runs hold the lease; want 1", round, len(holders))
		}
		_ = holders[0].Release(ctx)
		_ = loc.Close()
	}
}
