package progress

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
)

// Text writes human-readable phases and copies to w. On a terminal one status line, redrawn in
// place, shows the phase under way or the bars of the copies in flight; otherwise each phase gets
// its line when it ends and each copy a line every 5 seconds.
type Text struct {
	mu     sync.Mutex
	ctx    context.Context // its cause words an interrupted phase's error
	w      io.Writer
	tty    bool
	now    func() time.Time
	active string              // the phase drawn on the status line (terminal only)
	flows  map[string]Transfer // copies in flight, by name (terminal only)
	drawn  time.Time           // when the bars were last drawn
	first  map[string]time.Time
	last   map[string]time.Time // a copy's last line (off a terminal)
}

const (
	redrawEvery = 250 * time.Millisecond // bars on a terminal
	lineEvery   = 5 * time.Second        // a copy's lines off a terminal
)

// NewText reports to w, in place when w is a terminal; ctx is the run's: an error of a phase
// that ctx's cancelling ended says why (Reason).
func NewText(ctx context.Context, w io.Writer) *Text {
	return newText(ctx, w, IsTerminal(w), time.Now)
}

func newText(ctx context.Context, w io.Writer, tty bool, now func() time.Time) *Text {
	return &Text{ctx: ctx, w: w, tty: tty, now: now, flows: map[string]Transfer{}, first: map[string]time.Time{}, last: map[string]time.Time{}}
}

// Start implements Reporter.
func (t *Text) Start(phase string) func(string, error) {
	phase = printable.Name(phase)
	t.mu.Lock()
	if t.tty {
		t.active = phase
		t.redraw()
	}
	t.mu.Unlock()
	begin := t.now()
	return func(detail string, err error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.active == phase {
			t.active = ""
		}
		if err == nil && detail == Zero {
			t.redraw()
			return
		}
		t.println(t.phaseLine(phase, detail, err, t.now().Sub(begin)))
	}
}

// phaseLine is " ✓ phase (detail) 1.2s", or " ✗ phase (detail: error)".
func (t *Text) phaseLine(phase, detail string, err error, took time.Duration) string {
	mark := "✓"
	if err != nil {
		mark = "✗"
		msg := Reason(t.ctx, err.Error())
		if detail == "" {
			detail = msg
		} else {
			detail += ": " + msg
		}
	}
	s := " " + mark + " " + phase
	if detail != "" {
		s += " (" + printable.Lines(detail) + ")"
	}
	if took >= time.Second {
		s += fmt.Sprintf(" %.1fs", took.Seconds())
	}
	return s
}

// Warn implements Reporter.
func (t *Text) Warn(msg string) { t.Notice(" ! " + msg) }

// Notice prints a line of its own; on a terminal the status line is erased first and drawn again
// after, so the line never lands in the middle of it.
func (t *Text) Notice(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.println(printable.Lines(line))
}

// Show implements Meter.
func (t *Text) Show(p *Transfer, _ any) {
	if p == nil {
		return
	}
	tr := *p
	tr.Name = printable.Name(tr.Name)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if _, ok := t.first[tr.Name]; !ok {
		t.first[tr.Name] = now
	}
	if tr.BytesPerSecond == 0 {
		if secs := now.Sub(t.first[tr.Name]).Seconds(); secs >= 1 {
			tr.BytesPerSecond = float64(tr.Bytes) / secs
		}
	}
	if tr.Done {
		delete(t.first, tr.Name)
		delete(t.last, tr.Name)
		delete(t.flows, tr.Name)
	}
	if t.tty {
		if !tr.Done {
			t.flows[tr.Name] = tr
		}
		if tr.Done || now.Sub(t.drawn) >= redrawEvery {
			t.drawn = now
			t.redraw()
		}
		return
	}
	if !tr.Done && now.Sub(t.last[tr.Name]) >= lineEvery {
		t.last[tr.Name] = now
		fmt.Fprintln(t.w, line(tr))
	}
}

// println writes s on a line of its own and, on a terminal, the status line again under it.
func (t *Text) println(s string) {
	if !t.tty {
		fmt.Fprintln(t.w, s)
		return
	}
	fmt.Fprint(t.w, "\r\x1b[K"+s+"\n"+t.status())
}

// redraw draws the status line again (terminal only).
func (t *Text) redraw() {
	if t.tty {
		fmt.Fprint(t.w, "\r\x1b[K"+t.status())
	}
}

// status is the status line: the copies' bars, or the phase under way.
func (t *Text) status() string {
	if len(t.flows) > 0 {
		names := make([]string, 0, len(t.flows))
		for n := range t.flows {
			names = append(names, n)
		}
		sort.Strings(names)
		bars := make([]string, len(names))
		for i, n := range names {
			bars[i] = bar(t.flows[n])
		}
		return strings.Join(bars, "  ")
	}
	if t.active != "" {
		return " • " + t.active + " ..."
	}
	return ""
}
