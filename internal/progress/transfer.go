package progress

import (
	"fmt"
	"strings"
	"time"
)

// Transfer is one copy in flight: a volume's mover, or `cp` (Name "").
type Transfer struct {
	Name       string
	Files      int64
	Skipped    int64 // complete from an earlier run
	Bytes      int64
	TotalBytes int64
	// BytesPerSecond is the current rate; 0: the reporter derives it from the time since the
	// copy's first report.
	BytesPerSecond float64
	Done           bool // the copy's last report
}

// barCells is the width of a bar; several volumes' bars share one line.
const barCells = 10

// bar is t drawn on the status line: "shop/data [#####.....] 50.0 MiB/100.0 MiB 10.0 MiB/s ETA 5s".
func bar(t Transfer) string {
	frac := 0.0
	if t.TotalBytes > 0 {
		frac = min(1, float64(t.Bytes)/float64(t.TotalBytes))
	}
	cells := int(frac * barCells)
	s := "[" + strings.Repeat("#", cells) + strings.Repeat(".", barCells-cells) + "] " + Bytes(t.Bytes)
	if t.Name != "" {
		s = t.Name + " " + s
	}
	if t.TotalBytes > 0 {
		s += "/" + Bytes(t.TotalBytes)
	}
	if t.BytesPerSecond > 0 {
		s += " " + Bytes(int64(t.BytesPerSecond)) + "/s"
	}
	if d, ok := eta(t); ok {
		s += " ETA " + d.String()
	}
	return s
}

// line is t as a line of its own, off a terminal: "   shop/data: 3 files, 50.0 MiB of 100.0 MiB,
// 10.0 MiB/s, ETA 5s".
func line(t Transfer) string {
	s := "   "
	if t.Name != "" {
		s += t.Name + ": "
	}
	s += Plural(int(t.Files), "file", "files")
	if t.Skipped > 0 {
		s += fmt.Sprintf(" (%d complete already)", t.Skipped)
	}
	s += ", " + Bytes(t.Bytes)
	if t.TotalBytes > 0 {
		s += " of " + Bytes(t.TotalBytes)
	}
	if t.BytesPerSecond > 0 {
		s += ", " + Bytes(int64(t.BytesPerSecond)) + "/s"
	}
	if d, ok := eta(t); ok {
		s += ", ETA " + d.String()
	}
	return s
}

// eta is the time left at the current rate, to the second.
func eta(t Transfer) (time.Duration, bool) {
	if t.BytesPerSecond <= 0 || t.TotalBytes <= t.Bytes {
		return 0, false
	}
	secs := float64(t.TotalBytes-t.Bytes) / t.BytesPerSecond
	return time.Duration(secs * float64(time.Second)).Round(time.Second), true
}
