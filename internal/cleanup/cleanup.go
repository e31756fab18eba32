// Package cleanup gives the work that undoes or finishes a run a context of its own: a Ctrl-C, a
// SIGTERM or a deadline that ended the run must not also stop the deletion of what the run
// created, the release of what it holds, or the record of what it did.
package cleanup

import (
	"context"
	"time"
)

// How long a cleanup may take, by what it does.
const (
	// Objects bounds deleting a run's temporary cluster objects (VolumeSnapshots, PVCs, Secrets,
	// Jobs) or starting again the workloads it stopped.
	Objects = 2 * time.Minute
	// Object bounds deleting one object that a failed step created.
	Object = time.Minute
	// Call bounds one request that finishes the run's work: a lease release, a manifest write,
	// a claim release, a repository close, a probe pod's deletion.
	Call = 30 * time.Second
)

// Context is ctx without its cancellation or deadline (its values kept), bounded by timeout: the
// context a cleanup runs in. Call cancel when the cleanup is done.
func Context(ctx context.Context, timeout time.Duration) (_ context.Context, cancel context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}
