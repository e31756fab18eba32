package kube

import (
	"fmt"
	"io"
	"sync"

	"k8s.io/client-go/rest"
)

// Warnings handles the apiserver's Warning headers ("v1 Endpoints is deprecated in v1.33+...")
// the way kubectl does: each distinct message once, as "Warning: ..." on stderr, instead of
// client-go's default of a klog line each time, which breaks into the progress output.
type Warnings struct {
	mu   sync.Mutex
	seen map[string]bool
	sink func(string)
}

var installed *Warnings

// InstallWarnings makes a deduplicating handler writing to w the default of every client of the
// process (rest.SetDefaultWarningHandler) and returns it.
func InstallWarnings(w io.Writer) *Warnings {
	h := &Warnings{seen: map[string]bool{}, sink: func(msg string) { fmt.Fprintf(w, "Warning: %s\n", msg) }}
	installed = h
	rest.SetDefaultWarningHandler(h)
	return h
}

// HandleWarningHeader implements rest.WarningHandler. Only code 299 carries warnings.
func (h *Warnings) HandleWarningHeader(code int, _ string, message string) {
	if code != 299 || message == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen[message] {
		return
	}
	h.seen[message] = true
	h.sink(message)
}

// RouteWarnings sends the installed handler's messages to sink (a progress reporter that keeps
// its status line whole) until the returned function restores the previous sink.
func RouteWarnings(sink func(string)) (restore func()) {
	h := installed
	if h == nil {
		return func() {}
	}
	h.mu.Lock()
	prev := h.sink
	h.sink = sink
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		h.sink = prev
		h.mu.Unlock()
	}
}
