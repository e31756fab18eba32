package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

func event(name, reason string) *corev1.Event {
	return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name}, Reason: reason, Type: corev1.EventTypeWarning}
}

// Follow reports what changes after it began, not the objects that were there: against a fake
// clientset, which (like the apiserver) replays every object to a watch without a version.
func TestFollowSkipsHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := fake.NewClientset(event("old", "ProvisioningFailed"))
	got := make(chan string, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, ListWatch(c.CoreV1().Events("app"), c, nil), func(ev watch.Event) { got <- ev.Object.(*corev1.Event).Name })
	}()
	// Until the new event arrives, create it again under new names: Follow may start after any.
	deadline := time.After(5 * time.Second)
	for i := 0; ; i++ {
		_, _ = c.CoreV1().Events("app").Create(ctx, event("new"+strings.Repeat("x", i), "Scheduled"), metav1.CreateOptions{})
		select {
		case name := <-got:
			if name == "old" {
				t.Fatal("Follow reported the event from before it began")
			}
			cancel()
			<-done // returns once ctx ends
			return
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("Follow reported no new event")
		}
	}
}

// scripted is a ListerWatcher whose list has version 10 and whose watches play the scripts in
// turn, recording the version each began at.
type scripted struct {
	mu      sync.Mutex
	lists   int
	from    []string
	scripts [][]watch.Event
}

func (s *scripted) List(metav1.ListOptions) (runtime.Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	return &corev1.EventList{ListMeta: metav1.ListMeta{ResourceVersion: "10"}}, nil
}

func (s *scripted) Watch(o metav1.ListOptions) (watch.Interface, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = append(s.from, o.ResourceVersion)
	if len(s.scripts) == 0 {
		return watch.NewFake(), nil // open, silent
	}
	evs := s.scripts[0]
	s.scripts = s.scripts[1:]
	ch := make(chan watch.Event, len(evs))
	for _, ev := range evs {
		ch <- ev
	}
	close(ch) // the apiserver ends the watch
	return watch.NewProxyWatcher(ch), nil
}

func versioned(name, rv string) *corev1.Event {
	e := event(name, "x")
	e.ResourceVersion = rv
	return e
}

// When the apiserver closes the watch Follow watches again from the last version it saw; when
// that version is too old (410 Gone) it lists again for a new one.
func TestFollowRewatches(t *testing.T) {
	gone := apierrors.NewResourceExpired("too old resource version: 11 (15)").ErrStatus
	s := &scripted{scripts: [][]watch.Event{
		{{Type: watch.Added, Object: versioned("a", "11")}},
		{{Type: watch.Bookmark, Object: versioned("", "12")}, {Type: watch.Error, Object: &gone}},
		{{Type: watch.Modified, Object: versioned("a", "13")}},
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seen []string
	Follow(ctx, s, func(ev watch.Event) {
		seen = append(seen, string(ev.Type)+" "+ev.Object.(*corev1.Event).ResourceVersion)
		if len(seen) == 2 {
			cancel()
		}
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Join(seen, ",") != "ADDED 11,MODIFIED 13" {
		t.Errorf("reported %v, want the two changes (no bookmark, no error)", seen)
	}
	if strings.Join(s.from, ",") != "10,11,10" || s.lists != 2 {
		t.Errorf("watched from %v after %d lists, want 10 (the list's), 11 (the last seen), 10 (listed again after 410)", s.from, s.lists)
	}
}

// A wait that ends with its context returns the context's cause: the no-progress deadline names
// what it waited for and the last thing seen.
func TestUntilNoProgress(t *testing.T) {
	c := fake.NewClientset()
	ctx, st, stop := NoProgress(context.Background(), 200*time.Millisecond, "pod app/x")
	defer stop()
	st.See("pod app/x Pending", false)
	start := time.Now()
	err := Until(ctx, ListWatch(c.CoreV1().Pods("app"), c, Named("x")), &corev1.Pod{}, nil, func(watch.Event) (bool, error) { return false, nil })
	if !errors.Is(err, ErrNoProgress) || err.Error() != "pod app/x: no progress for 200ms; last seen: pod app/x Pending (raise --timeout if this step is just slow)" {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s", d)
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Until(cctx, ListWatch(c.CoreV1().Pods("app"), c, nil), &corev1.Pod{}, nil, func(watch.Event) (bool, error) { return false, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

var _ cache.ListerWatcher = &scripted{}
