package volumes

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// DataProgress prints the movers' progress: JSON events with -o json; on a terminal one status
// line, redrawn in place, with a bar per active volume; otherwise a line per volume every 5s.
func DataProgress(w io.Writer, jsonOut bool) func(ns, pvc string, ev mover.Event) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	active := map[string]mover.Event{}
	var drawn time.Time
	return func(ns, pvc string, ev mover.Event) {
		mu.Lock()
		defer mu.Unlock()
		key := ns + "/" + pvc
		if jsonOut {
			fmt.Fprintf(w, `{"volume":%q,"event":%q,"op":%q,"files":%d,"bytes":%d,"totalBytes":%d,"bytesPerSecond":%.0f}`+"\n", key, ev.Event, ev.Op, ev.Files, ev.Bytes, ev.TotalBytes, ev.BytesPerSecond)
			return
		}
		if tty && !jsonOut {
			switch ev.Event {
			case mover.EventProgress:
				active[key] = ev
			case mover.EventResult:
				delete(active, key)
			}
			if time.Since(drawn) < 250*time.Millisecond && ev.Event == mover.EventProgress {
				return
			}
			drawn = time.Now()
			keys := make([]string, 0, len(active))
			for k := range active {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, bar(k, active[k]))
			}
			fmt.Fprint(w, "\r\x1b[K"+strings.Join(parts, "  "))
			return
		}
		if ev.Event != mover.EventProgress || time.Since(last[key]) < 5*time.Second {
			return
		}
		last[key] = time.Now()
		line := fmt.Sprintf("   %s: %d files, %s", key, ev.Files, progress.Bytes(ev.Bytes))
		if ev.TotalBytes > 0 {
			line += " of " + progress.Bytes(ev.TotalBytes)
		}
		if ev.BytesPerSecond > 0 {
			line += fmt.Sprintf(", %s/s", progress.Bytes(int64(ev.BytesPerSecond)))
			if ev.TotalBytes > ev.Bytes {
				line += fmt.Sprintf(", ETA %s", (time.Duration(float64(ev.TotalBytes-ev.Bytes)/ev.BytesPerSecond) * time.Second).Round(time.Second))
			}
		}
		fmt.Fprintln(w, line)
	}
}

// bar is one volume's progress: name, a 10-cell bar, bytes, rate and ETA.
func bar(name string, ev mover.Event) string {
	frac := 0.0
	if ev.TotalBytes > 0 {
		frac = min(1, float64(ev.Bytes)/float64(ev.TotalBytes))
	}
	cells := int(frac * 10)
	s := fmt.Sprintf("%s [%s%s] %s", name, strings.Repeat("#", cells), strings.Repeat(".", 10-cells), progress.Bytes(ev.Bytes))
	if ev.BytesPerSecond > 0 {
		s += fmt.Sprintf(" %s/s", progress.Bytes(int64(ev.BytesPerSecond)))
		if ev.TotalBytes > ev.Bytes {
			s += fmt.Sprintf(" ETA %s", (time.Duration(float64(ev.TotalBytes-ev.Bytes)/ev.BytesPerSecond) * time.Second).Round(time.Second))
		}
	}
	return s
}
