// Package registry serves OCI registries for tests and the local lab: go-containerregistry's
// pkg/registry (the distribution API, blobs on disk or in memory), optionally behind HTTP basic
// authentication, so that the path a user's cluster takes to pull the mover image — a registry,
// maybe with credentials — runs here too.
package registry

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// Options shape one registry.
type Options struct {
	// Dir keeps the blobs on disk; "" keeps them in memory.
	Dir string
	// User and Password, when set, are required from every request (HTTP basic auth).
	User, Password string
	// Log receives one line per request (nil: none).
	Log io.Writer
}

// Realm is the basic-auth realm of an authenticated registry.
const Realm = "pvbackup-lab"

// New returns the registry's handler.
func New(o Options) http.Handler {
	logger := log.New(io.Discard, "", 0)
	if o.Log != nil {
		logger = log.New(o.Log, "", log.LstdFlags)
	}
	opts := []ggcr.Option{ggcr.Logger(logger)}
	if o.Dir != "" {
		opts = append(opts, ggcr.WithBlobHandler(ggcr.NewDiskBlobHandler(o.Dir)))
	}
	h := ggcr.New(opts...)
	if o.User == "" {
		return h
	}
	return basicAuth(h, o.User, o.Password, logger)
}

// basicAuth answers 401 with a Basic challenge, as the distribution spec has it, to any request
// without the user's credentials: clients (containerd, go-containerregistry) then retry with them.
func basicAuth(next http.Handler, user, password string, logger *log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if ok && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(password)) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		why := "no credentials"
		if ok {
			why = fmt.Sprintf("wrong credentials for user %q", u)
		}
		logger.Printf("%s %s 401 UNAUTHORIZED %s", r.Method, r.URL, why)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", Realm))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required (%s)"}]}`, why)
	})
}

// Start serves a registry on loopback for the test and returns its host:port.
func Start(t testing.TB, o Options) string {
	t.Helper()
	s := httptest.NewServer(New(o))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}
