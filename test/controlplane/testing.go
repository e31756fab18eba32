package controlplane

import (
	"context"
	"os"
	"testing"
)

// ForTest starts a control plane for one test (or TestMain) and stops it at cleanup.
// A missing binary fails the test with the command that builds it.
func ForTest(tb testing.TB) *ControlPlane {
	tb.Helper()
	dir, err := os.MkdirTemp("", "pvbackup-cp-")
	if err != nil {
		tb.Fatal(err)
	}
	cp, err := Start(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cp.Stop(); _ = os.RemoveAll(dir) })
	return cp
}
