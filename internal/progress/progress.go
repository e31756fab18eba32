// Package progress reports long work on stderr: one status line per phase that ends with ✓ or
// ✗ (redrawn in place on a terminal, plain lines otherwise), or JSON events for scripts.
package progress

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
)

// Reporter receives the phases of an engine's work.
type Reporter interface {
	// Start begins a phase; the returned func ends it with a detail and an error (nil: done).
	Start(phase string) func(detail string, err error)
	// Warn reports a problem that does not stop the work.
	Warn(msg string)
}

// Discard reports nothing.
type Discard struct{}

// Start implements Reporter.
func (Discard) Start(string) func(string, error) { return func(string, error) {} }

// Warn implements Reporter.
func (Discard) Warn(string) {}

// Text writes human-readable phases to w.
type Text struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	now    func() time.Time
	active string // the phase drawn on the status line (terminal only)
}

// Zero is the detail of a phase that found nothing (a resource type with no objects): on a
// terminal such phases are erased rather than listed one per line; the caller's summary counts them.
const Zero = "0"

// NewText reports to w; status lines are redrawn in place when w is a terminal.
func NewText(w io.Writer) *Text {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Text{w: w, tty: tty, now: time.Now}
}

// Start implements Reporter.
func (t *Text) Start(phase string) func(string, error) {
	phase = printable.Name(phase)
	t.mu.Lock()
	if t.tty {
		fmt.Fprintf(t.w, " • %s ...", phase)
		t.active = phase
	}
	t.mu.Unlock()
	begin := t.now()
	return func(detail string, err error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.tty {
			fmt.Fprint(t.w, "\r\x1b[K")
			t.active = ""
			if err == nil && detail == Zero {
				return
			}
		}
		mark := "✓"
		if err != nil {
			mark = "✗"
			if detail == "" {
				detail = err.Error()
			} else {
				detail += ": " + err.Error()
			}
		}
		line := " " + mark + " " + phase
		if detail != "" {
			line += " (" + printable.Lines(detail) + ")"
		}
		if d := t.now().Sub(begin); d >= time.Second {
			line += fmt.Sprintf(" %.1fs", d.Seconds())
		}
		fmt.Fprintln(t.w, line)
	}
}

// Warn implements Reporter.
func (t *Text) Warn(msg string) { t.Notice(" ! " + msg) }

// Notice prints a line of its own; on a terminal the status line is erased first and redrawn
// after, so the line never lands in the middle of it.
func (t *Text) Notice(line string) {
	line = printable.Lines(line)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tty && t.active != "" {
		fmt.Fprintf(t.w, "\r\x1b[K%s\n • %s ...", line, t.active)
		return
	}
	fmt.Fprintln(t.w, line)
}

// JSON writes one JSON object per event to w, for `-o json` runs that still want progress.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON reports to w as JSON lines.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

type event struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	Phase  string    `json:"phase,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Error  string    `json:"error,omitempty"`
}

func (j *JSON) emit(e event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e.Time = time.Now().UTC()
	_ = j.enc.Encode(e)
}

// Start implements Reporter.
func (j *JSON) Start(phase string) func(string, error) {
	j.emit(event{Event: "start", Phase: phase})
	return func(detail string, err error) {
		e := event{Event: "done", Phase: phase, Detail: detail}
		if err != nil {
			e.Event, e.Error = "failed", err.Error()
		}
		j.emit(e)
	}
}

// Warn implements Reporter.
func (j *JSON) Warn(msg string) { j.emit(event{Event: "warning", Detail: msg}) }

// Bytes formats a byte count for people: "12.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
