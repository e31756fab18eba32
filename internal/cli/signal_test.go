package cli

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// TestInterruption: a run stopped by a signal says which ("interrupted (Ctrl-C)") where Go says
// "context canceled", and still exits 130.
func TestInterruption(t *testing.T) {
	for sig, want := range map[os.Signal]string{os.Interrupt: "interrupted (Ctrl-C)", syscall.SIGTERM: "interrupted by SIGTERM"} {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(Interruption{Signal: sig})
		err := progress.Explain(ctx, errors.Join(errors.New(`backup "b" failed`), context.Canceled))
		if got := err.Error(); got != "backup \"b\" failed\n"+want {
			t.Errorf("%v: %q", sig, got)
		}
		if code := ExitCodeOf(err); code != ExitInterrupted {
			t.Errorf("%v: exit %d, want %d", sig, code, ExitInterrupted)
		}
		if !errors.Is(context.Cause(ctx), context.Canceled) {
			t.Errorf("%v: the cause is not context.Canceled", sig)
		}
	}
}
