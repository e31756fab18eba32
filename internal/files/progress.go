package files

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// ProgressPrinter draws Copy's progress on w: JSON lines with jsonOut; on a terminal one line
// redrawn in place with a bar; otherwise a line every 5 seconds and the last one.
func ProgressPrinter(w io.Writer, jsonOut bool) func(CopyProgress) {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	start := time.Now()
	var printed time.Time
	var lastBytes int64
	return func(p CopyProgress) {
		now := time.Now()
		final := p.TotalBytes > 0 && p.Bytes >= p.TotalBytes
		if jsonOut {
			b, _ := json.Marshal(struct {
				Event string `json:"event"`
				CopyProgress
			}{"progress", p})
			fmt.Fprintf(w, "%s\n", b)
			return
		}
		if !tty && now.Sub(printed) < 5*time.Second && !(final && lastBytes != p.Bytes) {
			return
		}
		printed, lastBytes = now, p.Bytes
		line := copyLine(p, now.Sub(start))
		if tty {
			fmt.Fprint(w, "\r\x1b[K"+line)
			if final {
				fmt.Fprintln(w)
			}
			return
		}
		fmt.Fprintln(w, line)
	}
}

func copyLine(p CopyProgress, elapsed time.Duration) string {
	frac := 0.0
	if p.TotalBytes > 0 {
		frac = min(1, float64(p.Bytes)/float64(p.TotalBytes))
	}
	cells := int(frac * 20)
	bar := ""
	for i := range 20 {
		if i < cells {
			bar += "#"
		} else {
			bar += "."
		}
	}
	s := fmt.Sprintf("[%s] %s of %s, %d files", bar, progress.Bytes(p.Bytes), progress.Bytes(p.TotalBytes), p.Files)
	if p.Skipped > 0 {
		s += fmt.Sprintf(" (%d complete already)", p.Skipped)
	}
	if secs := elapsed.Seconds(); secs >= 1 {
		s += fmt.Sprintf(", %s/s", progress.Bytes(int64(float64(p.Bytes)/secs)))
	}
	return s
}
