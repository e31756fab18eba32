// Package progress owns what long commands write to the terminal: one status line per phase
// that ends with ✓ or ✗, and the bars of the copies in flight (redrawn in place on a terminal,
// plain lines otherwise), or JSON events for scripts; and the words those lines share (byte
// counts, plurals, why a run stopped).
package progress

// Reporter receives the phases of an engine's work.
type Reporter interface {
	// Start begins a phase; the returned func ends it with a detail and an error (nil: done).
	Start(phase string) func(detail string, err error)
	// Warn reports a problem that does not stop the work.
	Warn(msg string)
}

// Meter is a Reporter that also shows copies in flight (Text and JSON are).
type Meter interface {
	Reporter
	// Show draws t (nil: an event with nothing to draw); record is what a JSON reporter writes
	// for it (nil: nothing).
	Show(t *Transfer, record any)
}

// Discard reports nothing.
type Discard struct{}

// Start implements Reporter.
func (Discard) Start(string) func(string, error) { return func(string, error) {} }

// Warn implements Reporter.
func (Discard) Warn(string) {}

// Show implements Meter.
func (Discard) Show(*Transfer, any) {}

// Zero is the detail of a phase that found nothing (a resource type with no objects): the text
// reporter leaves such phases out, on a terminal or not, and the caller's summary counts them
// ("28 resource types with no objects"); JSON events keep them.
const Zero = "0"
