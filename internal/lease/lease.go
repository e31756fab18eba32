// Package lease keeps two maintenance runs (prune, repo maintain) off one location at once: a
// small object in the bucket, created only if absent, that names its holder and when it expires.
// The holder renews it while it works; a lease whose holder died expires and can be taken over.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Key is where the maintenance lease of a location lives, beside backups/ and kopia/.
const Key = "maintenance.lease"

// DefaultTTL is how long a lease lasts without renewal; the holder renews it every TTL/3.
const DefaultTTL = 10 * time.Minute

// ErrHeld is returned (wrapped, naming the holder) when another run holds the lease.
var ErrHeld = errors.New("another maintenance run holds the location")

// Record is the lease object's content.
type Record struct {
	ID       string    `json:"id"`
	Owner    string    `json:"owner"`   // user@host pid N
	Purpose  string    `json:"purpose"` // "prune", "repo maintain"
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// Lease is a held lease. Release it when done.
type Lease struct {
	loc     *store.Location
	b       *blob.Bucket
	display string
	ttl     time.Duration
	mu      sync.Mutex
	rec     Record
	stop    context.CancelFunc
	done    chan struct{}
	lost    error
}

// Owner describes this process for the lease: user@host pid N.
func Owner() string {
	u := "unknown"
	if cu, err := user.Current(); err == nil {
		u = cu.Username
	}
	h, _ := os.Hostname()
	return fmt.Sprintf("%s@%s pid %d", u, h, os.Getpid())
}

// Acquire takes the lease of the location for purpose, or fails at once with ErrHeld naming the
// holder. A lease whose holder died is taken over: one that expired, or one held by a process of
// this user on this machine that is gone (a run killed and started again). The takeover replaces
// the lease only if it is still the version read (store.ReplaceIf): of many runs taking over at
// once, one wins and the others fail naming it.
func Acquire(ctx context.Context, loc *store.Location, purpose string, ttl time.Duration) (*Lease, error) {
	display := loc.String()
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	now := time.Now().UTC()
	rec := Record{ID: hex.EncodeToString(id), Owner: Owner(), Purpose: purpose, Acquired: now, Expires: now.Add(ttl)}
	for attempt := 0; attempt < 3; attempt++ {
		// WriteNew, not the bucket's IfNotExist: on file:// that is a check then a rename, which
		// two runs can both pass.
		err := loc.WriteNew(ctx, Key, rec.json(), "application/json")
		if err == nil {
			return hold(ctx, loc, ttl, rec), nil
		}
		if !errors.Is(err, store.ErrExists) {
			return nil, fmt.Errorf("take the maintenance lease %s in %s: %w", Key, display, err)
		}
		cur, version, rerr := read(ctx, loc)
		if rerr != nil {
			if store.IsNotFound(rerr) {
				continue // released between our write and read
			}
			return nil, fmt.Errorf("read the maintenance lease %s in %s: %w", Key, display, rerr)
		}
		if time.Now().Before(cur.Expires) && !deadHere(cur.Owner) {
			return nil, held(cur, display)
		}
		err = loc.ReplaceIf(ctx, Key, rec.json(), version)
		if err == nil {
			return hold(ctx, loc, ttl, rec), nil
		}
		if !errors.Is(err, store.ErrChanged) {
			return nil, fmt.Errorf("take over the maintenance lease of %s in %s: %w", cur.Owner, display, err)
		}
		// Another run took it over (or released it) first: look again.
	}
	return nil, fmt.Errorf("%w: the lease %s in %s changed hands while it was being taken; try again", ErrHeld, Key, display)
}

func held(cur Record, display string) error {
	return fmt.Errorf("%w: %s is running %s there since %s (lease %s until %s; if that run died, wait for the lease to expire): %s",
		ErrHeld, cur.Owner, cur.Purpose, cur.Acquired.Format(time.RFC3339), Key, cur.Expires.Format(time.RFC3339), display)
}

func hold(ctx context.Context, loc *store.Location, ttl time.Duration, rec Record) *Lease {
	l := &Lease{loc: loc, b: loc.Bucket(), display: loc.String(), ttl: ttl, rec: rec, done: make(chan struct{})}
	l.start(ctx)
	return l
}

// deadHere reports whether owner is a process of this user on this machine that is no longer
// running.
func deadHere(owner string) bool {
	me := Owner()
	prefix := me[:strings.LastIndex(me, " pid ")+len(" pid ")]
	rest, ok := strings.CutPrefix(owner, prefix)
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(rest)
	return err == nil && pid > 0 && pid != os.Getpid() && !alive(pid)
}

func (r Record) json() []byte {
	data, _ := json.MarshalIndent(r, "", "  ")
	return data
}

// maxRecord bounds what is read of the lease object (a real one is ~200 bytes).
const maxRecord = 16 << 10

// read reads the lease and the version a conditional replace compares.
func read(ctx context.Context, loc *store.Location) (Record, store.Version, error) {
	var rec Record
	data, version, err := loc.ReadVersion(ctx, Key, maxRecord)
	if err != nil {
		return rec, "", err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, "", fmt.Errorf("lease %s is not valid JSON: %w", Key, err)
	}
	return rec, version, nil
}

// start renews the lease every ttl/3 until Release.
func (l *Lease) start(ctx context.Context) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = cancel
	go func() {
		defer close(l.done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := l.renew(rctx); err != nil {
					l.mu.Lock()
					l.lost = err
					l.mu.Unlock()
					return
				}
			}
		}
	}()
}

// renew extends the lease, if it is still this run's and nobody took it over meanwhile.
func (l *Lease) renew(ctx context.Context) error {
	cur, version, err := read(ctx, l.loc)
	if err != nil {
		return fmt.Errorf("renew the maintenance lease in %s: %w", l.display, err)
	}
	if cur.ID != l.rec.ID {
		return fmt.Errorf("the maintenance lease in %s was taken over by %s", l.display, cur.Owner)
	}
	l.mu.Lock()
	l.rec.Expires = time.Now().UTC().Add(l.ttl)
	rec := l.rec
	l.mu.Unlock()
	if err := l.loc.ReplaceIf(ctx, Key, rec.json(), version); err != nil {
		return fmt.Errorf("renew the maintenance lease in %s: %w", l.display, err)
	}
	return nil
}

// Err reports a lost lease (renewal failed or another run took it over); callers check it
// before each destructive step.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Record returns the lease as written.
func (l *Lease) Record() Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// Release stops renewal and removes the lease if it is still this run's. Its error says when the
// lease expires by itself: until then other runs' maintenance, prune and copy of the location wait.
func (l *Lease) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	ctx, cancel := cleanup.Context(ctx, cleanup.Call)
	defer cancel()
	cur, _, err := read(ctx, l.loc)
	if err != nil {
		if store.IsNotFound(err) {
			return nil
		}
		return l.releaseError(err)
	}
	if cur.ID != l.rec.ID {
		return nil
	}
	if err := l.b.Delete(ctx, Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return l.releaseError(err)
	}
	return nil
}

func (l *Lease) releaseError(err error) error {
	return fmt.Errorf("release the maintenance lease in %s: %w (it expires by itself at %s; until then maintenance, prune and copy of the location wait, or delete %s once no run uses it)",
		l.display, err, l.Record().Expires.Format(time.RFC3339), Key)
}
