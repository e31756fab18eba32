package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// The waits of the project, in one place: Until waits for a state of the objects a ListWatch
// (one Selector) keeps, Follow reports their changes from now on, NoProgress bounds either by
// how long nothing new was seen.

// ErrNoProgress is wrapped by a wait that saw no progress for its deadline (NoProgress).
var ErrNoProgress = errors.New("no progress")

// Stall is a no-progress deadline: every change of what was last seen restarts it.
type Stall struct {
	mu    sync.Mutex
	timer *time.Timer
	d     time.Duration
	last  string
}

// NoProgress returns ctx ended once d passes with no progress (Stall.See), its cause then naming
// what and the last thing seen; stop releases it.
func NoProgress(ctx context.Context, d time.Duration, what string) (context.Context, *Stall, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &Stall{d: d, last: "nothing yet"}
	s.timer = time.AfterFunc(d, func() {
		s.mu.Lock()
		last := s.last
		s.mu.Unlock()
		cancel(fmt.Errorf("%s: %w for %s; last seen: %s (raise --timeout if this step is just slow)", what, ErrNoProgress, d, last))
	})
	return ctx, s, func() { s.timer.Stop(); cancel(nil) }
}

// See records what was last seen: a new msg, or progress, restarts the deadline.
func (s *Stall) See(msg string, progress bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg != "" && msg != s.last {
		s.last = msg
		progress = true
	}
	if progress {
		s.timer.Reset(s.d)
	}
}

// Last is what was seen last.
func (s *Stall) Last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Cause returns why ctx ended: its cause (a no-progress deadline, a failure), or ctx.Err() when
// it was only cancelled.
func Cause(ctx context.Context) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return ctx.Err()
}

// Until lists the objects of lw (of obj's type), then watches them from the list's
// resourceVersion, listing and watching again when the apiserver closes the watch, until ctx
// ends, synced (optional, called on the listed objects) or cond (each change) says done, or
// either fails. Once ctx has ended it returns ctx's Cause.
func Until(ctx context.Context, lw cache.ListerWatcher, obj runtime.Object, synced func(cache.Store) (bool, error), cond func(watch.Event) (bool, error)) error {
	_, err := watchtools.UntilWithSync(ctx, lw, obj, synced, cond)
	if err != nil && ctx.Err() != nil {
		return Cause(ctx)
	}
	return err
}

// Follow calls fn with every change of lw's objects made from now on, until ctx ends: it lists
// once for the resourceVersion (the objects listed are history and not reported), watches from
// there, watches again (a second later) from the last version seen when the apiserver closes the
// watch, and lists again when that version is too old (410 Gone). It returns when ctx ends.
func Follow(ctx context.Context, lw cache.ListerWatcher, fn func(watch.Event)) {
	lwc := cache.ToListerWatcherWithContext(lw)
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			rv = listVersion(ctx, lwc)
			if rv == "" {
				pause(ctx)
				continue
			}
		}
		var gone bool
		if rv, gone = followOnce(ctx, lwc, rv, fn); gone {
			rv = ""
			continue
		}
		pause(ctx)
	}
}

// listVersion is the resourceVersion of a list of lw, "" when the list failed.
func listVersion(ctx context.Context, lw cache.ListerWatcherWithContext) string {
	// The most recent version (a consistent read; one object is enough to learn it).
	l, err := lw.ListWithContext(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return ""
	}
	m, err := meta.ListAccessor(l)
	if err != nil {
		return ""
	}
	return m.GetResourceVersion()
}

// followOnce watches lw from rv until the watch closes or ctx ends, calling fn with each change;
// it returns the last version seen, and gone when rv has expired.
func followOnce(ctx context.Context, lw cache.ListerWatcherWithContext, rv string, fn func(watch.Event)) (string, bool) {
	w, err := lw.WatchWithContext(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	if err != nil {
		return rv, apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return rv, false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return rv, false
			}
			if ev.Type == watch.Error {
				err := apierrors.FromObject(ev.Object)
				return rv, apierrors.IsGone(err) || apierrors.IsResourceExpired(err)
			}
			if m, err := meta.Accessor(ev.Object); err == nil && m.GetResourceVersion() != "" {
				rv = m.GetResourceVersion()
			}
			if ev.Type != watch.Bookmark {
				fn(ev)
			}
		}
	}
}

// pause waits a second before a retry, or until ctx ends.
func pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}
