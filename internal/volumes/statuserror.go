package volumes

import (
	"strings"
	"sync"
	"time"
)

// A snapshot's status.error is not final by itself. The snapshot controller and the csi-snapshotter
// write the error of each failed attempt into status.error (with a Warning event), requeue the
// object with a rate-limited back-off and clear the error once the snapshot becomes ready
// (external-snapshotter, pkg/common-controller updateGroupSnapshotStatus and the sidecar's
// updateGroupSnapshotContentStatus: "if readyToUse && newStatus.Error != nil { newStatus.Error =
// nil }"). An attempt that lost an update race to another writer ("the object has been modified")
// shows up there too, and the retry a second later usually succeeds. So a wait fails on a status
// error only when it stands: an API conflict never by itself, any other error once it has stood
// for the grace without being cleared or the object moving on; a wait that times out names the
// last error seen.

// DefaultErrorGrace is how long a snapshot's status.error may stand before it fails the wait:
// the controllers retry after 1 s, doubling (--retry-interval-start), so a transient error is
// gone after two or three attempts, while a driver that refuses the snapshot (a broken class)
// still fails it in seconds.
const DefaultErrorGrace = 10 * time.Second

// transientStatusError says whether a status.error message is never final by itself: an API
// conflict (an update that lost a race with another writer), which the controller retries.
func transientStatusError(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "the object has been modified") || strings.Contains(msg, "please apply your changes to the latest version")
}

// statusReport is what a wait reads from a watched object's status.
type statusReport struct {
	// Msg is status.error.message, "" when none.
	Msg string
	// Failed is the wait's error should Msg stand.
	Failed error
	// Progress is the rest of the status: a change is progress and restarts the grace.
	Progress string
}

// errorGate decides when a watched object's status.error is final: fail is called (once) with
// the report's Failed when a non-transient error has stood for grace with no progress of the
// object meanwhile.
type errorGate struct {
	grace time.Duration
	fail  func(error)

	mu       sync.Mutex
	timer    *time.Timer
	progress string // the object's status when the standing error's grace started
	pending  error  // the error that fails the wait should the standing error's grace pass
	last     string // the last error seen, even a cleared one
	final    error
}

func newErrorGate(grace time.Duration, fail func(error)) *errorGate {
	if grace <= 0 {
		grace = DefaultErrorGrace
	}
	return &errorGate{grace: grace, fail: fail}
}

// see records the object's status as watched now.
func (g *errorGate) see(r statusReport) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r.Msg != "" {
		g.last = r.Msg
	}
	if r.Msg == "" || transientStatusError(r.Msg) {
		g.disarm()
		return
	}
	g.pending = r.Failed
	if g.timer != nil && g.progress == r.Progress {
		return // an error still stands: its grace runs on
	}
	g.disarm()
	g.progress = r.Progress
	var t *time.Timer
	t = time.AfterFunc(g.grace, func() {
		g.mu.Lock()
		if g.timer != t {
			g.mu.Unlock()
			return // cleared meanwhile
		}
		g.final = g.pending
		failed := g.final
		g.mu.Unlock()
		g.fail(failed)
	})
	g.timer = t
}

func (g *errorGate) disarm() {
	if g.timer != nil {
		g.timer.Stop()
		g.timer = nil
	}
}

// stop ends the gate: no failure after it.
func (g *errorGate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.disarm()
}

// failed is the error that ended the wait, nil when none did.
func (g *errorGate) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.final
}

// lastError is the last status.error seen ("" when none was).
func (g *errorGate) lastError() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.last
}
