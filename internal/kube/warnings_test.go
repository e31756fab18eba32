package kube

import (
	"bytes"
	"testing"
)

func TestWarnings(t *testing.T) {
	var b bytes.Buffer
	h := InstallWarnings(&b)
	h.HandleWarningHeader(299, "", "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
	h.HandleWarningHeader(299, "", "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
	h.HandleWarningHeader(299, "", "v1 ComponentStatus is deprecated in v1.19+")
	h.HandleWarningHeader(199, "", "not a warning code")
	h.HandleWarningHeader(299, "", "")
	want := "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\nWarning: v1 ComponentStatus is deprecated in v1.19+\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	var routed []string
	restore := RouteWarnings(func(m string) { routed = append(routed, m) })
	h.HandleWarningHeader(299, "", "new one")
	h.HandleWarningHeader(299, "", "v1 ComponentStatus is deprecated in v1.19+") // already shown
	restore()
	h.HandleWarningHeader(299, "", "after")
	if len(routed) != 1 || routed[0] != "new one" || b.String() != want+"Warning: after\n" {
		t.Fatalf("routed %q, written %q", routed, b.String())
	}
}
