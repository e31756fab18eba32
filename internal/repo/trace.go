package repo

import (
	"context"
	"fmt"
	"net/http/httptrace"
	"sort"
	"strings"
	"sync"
	"time"

	kblob "github.com/kopia/kopia/repo/blob"
)

// Tracer records the storage calls of a repository with their HTTP-level timings (connection
// reused or new, connect, time to the first response byte, attempts), for the mover's opt-in
// debug output (`create --mover-debug`): how the open-time stall on the test cluster was found.
type Tracer struct {
	start time.Time
	mu    sync.Mutex
	calls []Call
}

// Call is one storage call.
type Call struct {
	Op       string        // get, stat, put, list, delete
	Blob     string        // blob ID or list prefix
	Start    time.Duration // since the tracer started
	Duration time.Duration
	Err      string
	// HTTP: one entry per request the call made (retries are separate attempts).
	Attempts []Attempt
}

// Attempt is one HTTP request of a call.
type Attempt struct {
	Reused    bool          // on a kept-alive connection
	IdleTime  time.Duration // how long that connection was idle
	Connect   time.Duration // TCP connect of a new connection
	Local     string        // local address of the connection
	FirstByte time.Duration // from asking for a connection to the response's first byte (0: none)
}

// NewTracer starts recording now.
func NewTracer() *Tracer { return &Tracer{start: time.Now()} }

// traced runs f with an HTTP client trace in its context and records the call.
func (t *Tracer) traced(ctx context.Context, op string, id kblob.ID, f func(context.Context) error) error {
	if t == nil {
		return f(ctx)
	}
	var (
		mu       sync.Mutex
		attempts []Attempt
		getConn  time.Time
		connect  time.Time
	)
	cur := func() *Attempt { return &attempts[len(attempts)-1] }
	trace := &httptrace.ClientTrace{
		GetConn: func(string) {
			mu.Lock()
			getConn = time.Now()
			attempts = append(attempts, Attempt{})
			mu.Unlock()
		},
		ConnectStart: func(string, string) { mu.Lock(); connect = time.Now(); mu.Unlock() },
		ConnectDone: func(string, string, error) {
			mu.Lock()
			if len(attempts) > 0 {
				cur().Connect = time.Since(connect)
			}
			mu.Unlock()
		},
		GotConn: func(i httptrace.GotConnInfo) {
			mu.Lock()
			if len(attempts) > 0 {
				a := cur()
				a.Reused, a.IdleTime = i.Reused, i.IdleTime
				if i.Conn != nil {
					a.Local = i.Conn.LocalAddr().String()
				}
			}
			mu.Unlock()
		},
		GotFirstResponseByte: func() {
			mu.Lock()
			if len(attempts) > 0 {
				cur().FirstByte = time.Since(getConn)
			}
			mu.Unlock()
		},
	}
	begin := time.Now()
	err := f(httptrace.WithClientTrace(ctx, trace))
	c := Call{Op: op, Blob: string(id), Start: begin.Sub(t.start), Duration: time.Since(begin)}
	if err != nil {
		c.Err = err.Error()
	}
	mu.Lock()
	c.Attempts = attempts
	mu.Unlock()
	t.mu.Lock()
	t.calls = append(t.calls, c)
	t.mu.Unlock()
	return err
}

// Calls returns the calls recorded so far, in start order.
func (t *Tracer) Calls() []Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]Call(nil), t.calls...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// String is one line per call: "+0.012s get kopia.blobcfg 26.812s [new 10.244.0.5:41234 connect 1ms, first byte 26.8s] not found".
func (c Call) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%.3fs %s %s %.3fs", c.Start.Seconds(), c.Op, c.Blob, c.Duration.Seconds())
	for _, a := range c.Attempts {
		var conn string
		if a.Reused {
			conn = fmt.Sprintf("reused idle %s", a.IdleTime.Round(time.Millisecond))
		} else {
			conn = fmt.Sprintf("new connect %s", a.Connect.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, " [%s %s, first byte %s]", conn, a.Local, a.FirstByte.Round(time.Millisecond))
	}
	if c.Err != "" {
		e := c.Err
		if strings.Contains(e, kblob.ErrBlobNotFound.Error()) {
			e = "not found"
		}
		b.WriteString(" " + e)
	}
	return b.String()
}
