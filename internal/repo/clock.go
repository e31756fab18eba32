package repo

import (
	"sync"
	"time"

	kblob "github.com/kopia/kopia/repo/blob"
)

// Clock is a simulated clock, for simulations only (hack/bench-repo): it lets a run of minutes
// leave a repository as years of daily backups would. Kopia decides on time twice: its own clock
// (rep.Time(): maintenance schedules, safety margins, index timestamps) and the storage's
// timestamps of blobs (when to close an index epoch, which superseded indexes and unreferenced
// packs are old enough to delete). With a Clock in Config, the repository's clock is the Clock,
// and the Storage reports each blob this process wrote with the simulated time of its write
// instead of the bucket's; blobs written by others keep the bucket's time.
//
// Simulated time is real time plus an offset that Advance grows, so it keeps flowing between
// Advances as the real clock does (writes a second apart stay a second apart). A nil *Clock is
// no simulation: every method of the repository layer then uses the real clock.
type Clock struct {
	mu      sync.Mutex
	offset  time.Duration
	written map[string]time.Time // display+"/"+blob ID → simulated time of the write
}

// NewClock returns a clock that starts at start and then flows with real time.
func NewClock(start time.Time) *Clock {
	return &Clock{offset: time.Until(start), written: map[string]time.Time{}}
}

// Now is the simulated time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the simulated time forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Written is the number of blobs whose simulated write time the clock keeps.
func (c *Clock) Written() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.written)
}

// wrote records that the storage named display wrote blob id now, and returns the time.
func (c *Clock) wrote(display string, id kblob.ID) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := time.Now().Add(c.offset)
	c.written[display+"/"+string(id)] = t
	return t
}

// deleted forgets blob id of the storage named display.
func (c *Clock) deleted(display string, id kblob.ID) {
	c.mu.Lock()
	delete(c.written, display+"/"+string(id))
	c.mu.Unlock()
}

// timestamp is the simulated write time of the blob, or real when this process did not write it.
func (c *Clock) timestamp(display string, id kblob.ID, real time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.written[display+"/"+string(id)]; ok {
		return t
	}
	return real
}
