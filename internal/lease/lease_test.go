package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
	dead := Record{ID: "dead", Owner: "ci@runner pid 1", Purpose: "prune", Acquired: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}
	if err := loc.Write(ctx, Key, (dead).json(), ""); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatalf("take over an expired lease: %v", err)
	}
	defer l.Release(ctx)
	cur, _, err := read(ctx, loc)
	if err != nil || cur.ID != l.Record().ID {
		t.Fatalf("lease now %+v (%v); want ours", cur, err)
	}
}

func TestRenewalAndLoss(t *testing.T) {
	ctx := context.Background()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer loc.Close()
	l, err := Acquire(ctx, loc, "prune", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	first := l.Record().Expires
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cur, _, err := read(ctx, loc)
		if err == nil && cur.Expires.After(first) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the bucket: there is nothing to watch
	}
	if cur, _, _ := read(ctx, loc); !cur.Expires.After(first) {
		t.Fatal("the lease was not renewed")
	}
	// Someone else overwrites it: the holder notices at its next renewal and does not release theirs.
	if err := loc.Write(ctx, Key, (Record{ID: "other", Owner: "x", Expires: time.Now().Add(time.Hour)}).json(), ""); err != nil {
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
	if cur, _, _ := read(ctx, loc); cur.ID != "other" {
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

// concurrentTakeover has n runs take over one expired lease at once: exactly one may hold it, the
// others fail naming a holder (the old code deleted the expired lease unconditionally, so a run
// could delete another's fresh lease and both held it).
func concurrentTakeover(t *testing.T, loc *store.Location, n int) {
	t.Helper()
	ctx := context.Background()
	dead := Record{ID: "dead", Owner: "ci@runner pid 1", Purpose: "prune", Acquired: time.Now().Add(-time.Hour), Expires: time.Now().Add(-time.Minute)}
	if err := loc.Write(ctx, Key, dead.json(), ""); err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		won   []*Lease
		lost  []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			l, err := Acquire(ctx, loc, "prune", time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				lost = append(lost, err)
				return
			}
			won = append(won, l)
		}()
	}
	close(start)
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d of %d concurrent takers hold the lease; errors: %v", len(won), n, lost)
	}
	for _, err := range lost {
		if !errors.Is(err, ErrHeld) {
			t.Errorf("a taker failed otherwise than ErrHeld: %v", err)
		}
	}
	cur, _, err := read(ctx, loc)
	if err != nil || cur.ID != won[0].Record().ID {
		t.Fatalf("the lease is %+v (%v), not the winner's", cur, err)
	}
	if err := won[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	// The store refuses a replace of a version that is not current any more.
	if _, _, err := loc.ReadVersion(ctx, store.MarkerPrefix+"version-check", 1<<10); err == nil {
		t.Fatal("a missing object has a version")
	}
	if err := loc.Write(ctx, Key, dead.json(), ""); err != nil {
		t.Fatal(err)
	}
	_, v, err := loc.ReadVersion(ctx, Key, maxRecord)
	if err != nil {
		t.Fatal(err)
	}
	if err := loc.Write(ctx, Key, won[0].Record().json(), ""); err != nil {
		t.Fatal(err)
	}
	if err := loc.ReplaceIf(ctx, Key, dead.json(), v); !errors.Is(err, store.ErrChanged) {
		t.Fatalf("replace of a stale version: %v; want ErrChanged (does %s honour conditional writes?)", err, loc)
	}
	_ = loc.Bucket().Delete(ctx, Key)
}

// Many rounds: the old code let two takers hold the lease in about one round in 16.
func TestConcurrentTakeover(t *testing.T) {
	mem := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer mem.Close()
	for range 100 {
		concurrentTakeover(t, mem, 20)
	}
	file, err := store.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for range 20 {
		concurrentTakeover(t, file, 20)
	}
}

// A lease of a process of this user on this machine that is gone (a run killed, then started
// again) is taken over without waiting for it to expire; one of another machine is not.
func TestLeaseOfADeadLocalProcess(t *testing.T) {
	ctx := context.Background()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://loc")
	defer loc.Close()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no `true` command to leave a finished process behind: %v", err)
	}
	me := Owner()
	deadPID := cmd.Process.Pid
	here := me[:strings.LastIndex(me, " pid ")]
	for _, tc := range []struct {
		owner string
		taken bool
	}{
		{fmt.Sprintf("%s pid %d", here, deadPID), true},
		{fmt.Sprintf("%s pid %d", here, os.Getppid()), false}, // alive
		{fmt.Sprintf("someone@elsewhere pid %d", deadPID), false},
	} {
		rec := Record{ID: "old", Owner: tc.owner, Purpose: "repo change-password", Acquired: time.Now(), Expires: time.Now().Add(time.Hour)}
		if err := loc.Write(ctx, Key, rec.json(), ""); err != nil {
			t.Fatal(err)
		}
		l, err := Acquire(ctx, loc, "prune", time.Minute)
		if (err == nil) != tc.taken || (err != nil && !strings.Contains(err.Error(), tc.owner)) {
			t.Errorf("lease of %q: %v; want taken over %v", tc.owner, err, tc.taken)
		}
		if l != nil {
			_ = l.Release(ctx)
		}
	}
}

// TestReleaseErrorSaysWhatToDo: a lease that cannot be released (the store fails at the end of a
// run) is an error naming the location and when the lease expires by itself; callers join it to
// their own instead of dropping it.
func TestReleaseErrorSaysWhatToDo(t *testing.T) {
	ctx := context.Background()
	b := memblob.OpenBucket(nil)
	loc := store.FromBucket(b, "mem://loc")
	l, err := Acquire(ctx, loc, "prune", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close() // the store fails from now on
	err = l.Release(ctx)
	if err == nil {
		t.Fatal("release on a failing store: no error")
	}
	want := l.Record().Expires.Format(time.RFC3339)
	for _, part := range []string{"release the maintenance lease in mem://loc", "it expires by itself at " + want, "delete " + Key} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
}
