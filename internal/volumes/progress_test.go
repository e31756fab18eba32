package volumes

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

func TestDataProgress(t *testing.T) {
	var b bytes.Buffer
	p := DataProgress(&b, false)
	ev := mover.Event{Event: mover.EventProgress, Op: "backup", Files: 3, Bytes: 50 << 20, TotalBytes: 100 << 20, BytesPerSecond: 10 << 20}
	p("shop", "data", ev)
	p("shop", "data", ev) // within 5s: not repeated
	p("shop", "data", mover.Event{Event: mover.EventStart})
	if got, want := b.String(), "   shop/data: 3 files, 50.0 MiB of 100.0 MiB, 10.0 MiB/s, ETA 5s\n"; got != want {
		t.Errorf("text progress %q, want %q", got, want)
	}
	b.Reset()
	DataProgress(&b, true)("shop", "data", ev)
	if !strings.HasPrefix(b.String(), `{"volume":"shop/data","event":"progress","op":"backup","files":3,"bytes":52428800`) {
		t.Errorf("json progress %q", b.String())
	}
	if got := bar("shop/data", ev); got != "shop/data [#####.....] 50.0 MiB 10.0 MiB/s ETA 5s" {
		t.Errorf("bar %q", got)
	}
}
