package volumes

import (
	"context"
	"math"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// dataEvent is a mover's event as `-o json` prints it: one line per event.
type dataEvent struct {
	Volume         string  `json:"volume"`
	Event          string  `json:"event"`
	Op             string  `json:"op"`
	Files          int64   `json:"files"`
	Bytes          int64   `json:"bytes"`
	TotalBytes     int64   `json:"totalBytes"`
	BytesPerSecond float64 `json:"bytesPerSecond"`
}

// moverEnded is the event OnEvent gets when the plugin stops following a mover (it ended, or
// the run was interrupted): never in a mover's output, and not printed with -o json.
const moverEnded = "pvbackup:ended"

// DataProgress shows the movers' progress through rep (a bar per volume in flight, see
// progress.Text; every event with -o json); reporters that draw no copies get nothing.
func DataProgress(rep progress.Reporter) func(ns, pvc string, ev mover.Event) {
	m, ok := rep.(progress.Meter)
	if !ok {
		return func(string, string, mover.Event) {}
	}
	return func(ns, pvc string, ev mover.Event) {
		key := ns + "/" + pvc
		var t *progress.Transfer // events other than progress and result have no bar to draw
		switch ev.Event {
		case moverEnded:
			m.Show(&progress.Transfer{Name: key, Done: true}, nil)
			return
		case mover.EventProgress, mover.EventResult:
			t = &progress.Transfer{Name: key, Files: ev.Files, Bytes: ev.Bytes, TotalBytes: ev.TotalBytes,
				BytesPerSecond: ev.BytesPerSecond, Done: ev.Event == mover.EventResult}
		}
		m.Show(t, dataEvent{Volume: key, Event: ev.Event, Op: ev.Op, Files: ev.Files, Bytes: ev.Bytes,
			TotalBytes: ev.TotalBytes, BytesPerSecond: math.Round(ev.BytesPerSecond)})
	}
}

// explainErrors words the errors of volumes cut short by a signal as the signal ("interrupted
// (Ctrl-C)"), not as Go's "context canceled": the volume table, describe and the log show them.
func explainErrors(ctx context.Context, vols []catalog.Volume) {
	for i := range vols {
		vols[i].Error = progress.Reason(ctx, vols[i].Error)
	}
}
