package cleanup

import (
	"context"
	"testing"
	"time"
)

type key struct{}

// TestContext: a cleanup's context outlives its run's cancellation, keeps its values and ends at
// its own timeout.
func TestContext(t *testing.T) {
	run, stop := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	stop()
	ctx, cancel := Context(run, 50*time.Millisecond)
	defer cancel()
	if ctx.Err() != nil {
		t.Fatalf("the cleanup's context ended with its run's: %v", ctx.Err())
	}
	if ctx.Value(key{}) != "v" {
		t.Error("the cleanup's context lost its run's values")
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the cleanup's context did not end at its timeout")
	}
	if d, ok := ctx.Deadline(); !ok || d.IsZero() {
		t.Error("the cleanup's context has no deadline")
	}
}
