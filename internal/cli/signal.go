package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// SignalContext returns a context cancelled by the first SIGINT or SIGTERM, so that commands
// clean up what they created; its cause (context.Cause) says which signal, and what was cut
// short says so ("interrupted (Ctrl-C)") rather than "context canceled". A second signal exits
// at once.
func SignalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig, ok := <-ch
		if !ok {
			return
		}
		fmt.Fprintln(os.Stderr, "\ninterrupted: cleaning up (press Ctrl-C again to exit at once)")
		cancel(Interruption{Signal: sig})
		if _, ok := <-ch; ok {
			os.Exit(ExitInterrupted)
		}
	}()
	return ctx, func() { signal.Stop(ch); close(ch); cancel(nil) }
}

// Interruption is the cause of a run stopped by a signal. It matches context.Canceled, so that
// the exit code stays 130.
type Interruption struct{ Signal os.Signal }

func (i Interruption) Error() string {
	switch i.Signal {
	case os.Interrupt:
		return "interrupted (Ctrl-C)"
	case syscall.SIGTERM:
		return "interrupted by SIGTERM"
	}
	return fmt.Sprintf("interrupted by signal %v", i.Signal)
}

// Is makes errors.Is(i, context.Canceled) true.
func (i Interruption) Is(target error) bool { return target == context.Canceled }
