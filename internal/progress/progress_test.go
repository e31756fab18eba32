package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestTextTerminal: on a terminal, a phase that found nothing is erased, not listed; a notice
// (an API warning) in the middle of a phase gets a line of its own and the phase is redrawn.
func TestTextTerminal(t *testing.T) {
	var b bytes.Buffer
	now := time.Unix(0, 0)
	tx := &Text{w: &b, tty: true, now: func() time.Time { return now }}
	tx.Start("v1/componentstatuses")(Zero, nil)
	done := tx.Start("v1/endpoints")
	tx.Notice("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
	done("3", nil)
	want := " • v1/componentstatuses ...\r\x1b[K" +
		" • v1/endpoints ...\r\x1b[KWarning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\n • v1/endpoints ...\r\x1b[K ✓ v1/endpoints (3)\n"
	if b.String() != want {
		t.Fatalf("got  %q\nwant %q", b.String(), want)
	}
}

// Off a terminal every phase keeps its line (logs of CI runs), zero included.
func TestTextPlain(t *testing.T) {
	var b bytes.Buffer
	tx := &Text{w: &b, now: time.Now}
	tx.Start("v1/componentstatuses")(Zero, nil)
	tx.Notice("Warning: x")
	if got := b.String(); got != " ✓ v1/componentstatuses (0)\nWarning: x\n" {
		t.Fatalf("got %q", got)
	}
	if !strings.Contains(b.String(), "(0)") {
		t.Fatal("zero phase dropped off a terminal")
	}
}
