package volumes

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// TestDataProgress: the movers' events reach the reporter: a line per volume off a terminal
// (progress.Text draws it), every event but the plugin's own as a JSON line with -o json.
func TestDataProgress(t *testing.T) {
	var b bytes.Buffer
	p := DataProgress(progress.NewText(context.Background(), &b))
	ev := mover.Event{Event: mover.EventProgress, Op: "backup", Files: 3, Bytes: 50 << 20, TotalBytes: 100 << 20, BytesPerSecond: 10 << 20}
	p("shop", "data", mover.Event{Event: mover.EventStart, Op: "backup"})
	p("shop", "data", ev)
	p("shop", "data", ev) // within 5s: not repeated
	p("shop", "data", mover.Event{Event: moverEnded})
	if got, want := b.String(), "   shop/data: 3 files, 50.0 MiB of 100.0 MiB, 10.0 MiB/s, ETA 5s\n"; got != want {
		t.Errorf("text progress %q, want %q", got, want)
	}
	b.Reset()
	p = DataProgress(progress.NewJSON(context.Background(), &b))
	p("shop", "data", mover.Event{Event: mover.EventStart, Op: "backup"})
	p("shop", "data", ev)
	p("shop", "data", mover.Event{Event: moverEnded})
	want := `{"volume":"shop/data","event":"start","op":"backup","files":0,"bytes":0,"totalBytes":0,"bytesPerSecond":0}` + "\n" +
		`{"volume":"shop/data","event":"progress","op":"backup","files":3,"bytes":52428800,"totalBytes":104857600,"bytesPerSecond":10485760}` + "\n"
	if b.String() != want {
		t.Errorf("json progress\n%s\nwant\n%s", b.String(), want)
	}
	DataProgress(progress.Discard{})("shop", "data", ev)
	if strings.Contains(b.String(), "pvbackup:") {
		t.Error("the plugin's own event printed")
	}
}
