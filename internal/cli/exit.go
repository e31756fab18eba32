package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/printable"
)

// Exit codes, documented in the README and in `kubectl pvbackup --help`.
const (
	ExitOK          = 0   // everything done
	ExitFailed      = 1   // nothing or not enough done: bad input, unreachable storage, a failed backup
	ExitPartial     = 2   // done, but some items failed (doctor: warnings only): each is named in the output
	ExitInterrupted = 130 // stopped by Ctrl-C after cleaning up
)

// ErrPartial marks a run that finished with some failed items; the items were already printed.
var ErrPartial = errors.New("some items failed")

// ErrStale marks a status run that found no Completed backup within --max-age in a group (or no
// group at all): exit 1, the alert "backups stopped happening".
var ErrStale = errors.New("backups are stale")

// ErrWarnings marks a doctor run whose checks warned but none failed: exit 2, so CI can tell it
// from a failure (1).
var ErrWarnings = errors.New("warnings only")

// ExitCode maps the error a command returned to the process exit code and prints it to stderr.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	// An error may quote a name from the bucket or the cluster: escape sequences are shown, not run.
	if errors.Is(err, ErrWarnings) {
		fmt.Fprintln(os.Stderr, "warning:", printable.Lines(err.Error()))
	} else {
		fmt.Fprintln(os.Stderr, "error:", printable.Lines(err.Error()))
	}
	return ExitCodeOf(err)
}

// ExitCodeOf maps an error to its exit code without printing it.
func ExitCodeOf(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	case errors.Is(err, ErrPartial), errors.Is(err, ErrWarnings):
		return ExitPartial
	default:
		return ExitFailed
	}
}
