package progress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// clock is a fake time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{t: time.Unix(0, 0)} }
func mib(n float64) int64            { return int64(n * (1 << 20)) }
func interrupted() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	return ctx, func() { cancel(errors.New("interrupted (Ctrl-C)")) }
}

// session is what a `create` with one volume reports: resource types (most empty), an API
// warning, a volume whose mover reports progress, and Ctrl-C in the middle of a second volume.
func session(r *Text, c *clock, stop func()) {
	r.Start("discover API resources")("41 resource types, 1 namespace", nil)
	r.Start("configmaps")("2", nil)
	r.Start("componentstatuses")(Zero, nil)
	done := r.Start("endpoints")
	r.Notice("Warning: a webhook of the cluster warned")
	done(Zero, nil)
	r.Start("limitranges")(Zero, nil)
	r.Start("persistentvolumeclaims")("1", nil)
	done = r.Start("volume shop/data (fs)")
	for i := range 4 {
		c.add(2 * time.Second)
		r.Show(&Transfer{Name: "shop/data", Files: int64(i), Bytes: mib(25 * float64(i)), TotalBytes: mib(100), BytesPerSecond: float64(mib(12.5))}, nil)
	}
	r.Show(nil, "a mover's start event: nothing to draw")
	r.Show(&Transfer{Name: "shop/data", Files: 4, Bytes: mib(100), TotalBytes: mib(100), Done: true}, nil)
	done("4 files, 100.0 MiB, 100.0 MiB uploaded", nil)
	done = r.Start("volume shop/logs (fs)")
	c.add(time.Second)
	r.Show(&Transfer{Name: "shop/logs", Files: 1, Bytes: mib(1), TotalBytes: mib(3), BytesPerSecond: float64(mib(1))}, nil)
	r.Warn("volume shop/logs: 1 file could not be read")
	stop()
	r.Show(&Transfer{Name: "shop/logs", Done: true}, nil) // the plugin stops following the mover
	done("", errors.New("run mover: context canceled"))
}

// TestTextGolden: what a user reads, on a terminal and off it (a CI log). Empty resource types
// are left out either way (the summary counts them); bars are drawn in place on a terminal, a
// line every 5 seconds otherwise; an interrupted phase says why, not "context canceled".
func TestTextGolden(t *testing.T) {
	for _, tty := range []bool{true, false} {
		name := map[bool]string{true: "terminal", false: "plain"}[tty]
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			c := newClock()
			ctx, stop := interrupted()
			session(newText(ctx, &b, tty, c.now), c, stop)
			got := b.String()
			if tty { // one status line per redraw, so the golden file reads as a list of frames
				got = strings.ReplaceAll(got, "\r\x1b[K", "⟲")
			}
			golden.Assert(t, "progress/text-"+name+".golden", []byte(got))
			if strings.Contains(got, "(0)") || strings.Contains(got, "✓ componentstatuses") || strings.Contains(got, "context canceled") || !strings.HasSuffix(got, "1.0s\n") {
				t.Errorf("empty types listed or the interruption not worded:\n%s", got)
			}
		})
	}
}

// TestJSONEvents: -o json progress is one JSON object a line, through encoding/json, with the
// fields scripts read: phases (time, event, phase, detail, error) and the movers' records as given.
func TestJSONEvents(t *testing.T) {
	var b bytes.Buffer
	ctx, stop := interrupted()
	j := NewJSON(ctx, &b)
	j.Start("configmaps")(Zero, nil)
	j.Warn(`a "quoted" name`)
	j.Show(&Transfer{Name: "shop/data", Bytes: 5, TotalBytes: 10}, map[string]any{"volume": "shop/data", "event": "progress", "bytes": 5})
	j.Show(nil, nil)
	stop()
	j.Start("volume shop/data (fs)")("", errors.New("run mover: context canceled"))
	var events []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		delete(e, "time")
		events = append(events, e)
	}
	got, _ := json.Marshal(events)
	want := `[{"event":"start","phase":"configmaps"},{"detail":"0","event":"done","phase":"configmaps"},` +
		`{"detail":"a \"quoted\" name","event":"warning"},{"bytes":5,"event":"progress","volume":"shop/data"},` +
		`{"event":"start","phase":"volume shop/data (fs)"},{"error":"run mover: interrupted (Ctrl-C)","event":"failed","phase":"volume shop/data (fs)"}]`
	if string(got) != want {
		t.Errorf("events\n got %s\nwant %s", got, want)
	}
}

func TestWords(t *testing.T) {
	ctx, stop := interrupted()
	plain, cancel := context.WithCancel(context.Background())
	cancel()
	stop()
	for _, tc := range []struct{ got, want string }{
		{Plural(1, "volume", "volumes"), "1 volume"},
		{Plural(0, "volume", "volumes"), "0 volumes"},
		{Plural(2, "directory", "directories"), "2 directories"},
		{Bytes(1023), "1023 B"},
		{Bytes(9523), "9.3 KiB"},
		{Bytes(mib(2.3)), "2.3 MiB"},
		{Reason(ctx, "create snapshot: context canceled"), "create snapshot: interrupted (Ctrl-C)"},
		{Reason(plain, "create snapshot: context canceled"), "create snapshot: context canceled"},
		{Reason(context.Background(), "context canceled"), "context canceled"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestETA(t *testing.T) {
	for _, tc := range []struct {
		t    Transfer
		want string
	}{
		{Transfer{Name: "shop/data", Files: 3, Bytes: mib(50), TotalBytes: mib(100), BytesPerSecond: float64(mib(10))}, "shop/data [#####.....] 50.0 MiB/100.0 MiB 10.0 MiB/s ETA 5s"},
		{Transfer{Bytes: mib(100), TotalBytes: mib(100), BytesPerSecond: float64(mib(10))}, "[##########] 100.0 MiB/100.0 MiB 10.0 MiB/s"},
		{Transfer{Bytes: 10}, "[..........] 10 B"},
	} {
		if got := bar(tc.t); got != tc.want {
			t.Errorf("bar %q, want %q", got, tc.want)
		}
	}
}
