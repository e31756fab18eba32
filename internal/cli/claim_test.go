package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// countingCluster is a kubeconfig whose API server only counts the requests it gets.
func countingCluster(t *testing.T) (kubeconfig string, requests *atomic.Int64) {
	requests = &atomic.Int64{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "not a real API server", http.StatusServiceUnavailable)
	}))
	t.Cleanup(api.Close)
	kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`, api.URL)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig, requests
}

// readOnlyS3 fronts gofakes3 with a proxy that refuses every write, as a bucket policy that
// grants s3:GetObject and s3:ListBucket only does.
func readOnlyS3(t *testing.T) *s3server.Server {
	srv := s3server.Fake(t)
	target, _ := url.Parse(srv.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	ro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ro.Close)
	ro2 := *srv
	ro2.Endpoint = ro.URL
	return &ro2
}

// TestCreateChecksTheLocationFirst: a location that cannot be written, or a name in use, fails
// before the cluster is asked anything.
func TestCreateChecksTheLocationFirst(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	t.Setenv("PVBACKUP_LOCATION", "")
	ro := readOnlyS3(t)
	ro.SetEnv(t)

	notDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(notDir, "backups"), []byte("a file where the backups directory goes"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken := t.TempDir()
	l, err := store.Open(context.Background(), "file://"+taken)
	if err != nil {
		t.Fatal(err)
	}
	// A location in use has its key (made by its first create), then the running create's claim.
	if _, err := keyring.Create(context.Background(), l, "pw"); err != nil {
		t.Fatal(err)
	}
	cl := catalog.NewClaim(time.Now(), "test")
	cl.Host = "laptop-of-alice"
	if err := catalog.New(l).Claim(context.Background(), "b1", cl); err != nil {
		t.Fatal(err)
	}
	_ = l.Close()

	for _, tc := range []struct{ name, url, want string }{
		{"read-only S3 bucket", ro.URL("p"), "write the key of s3://"},
		{"unwritable directory", "file://" + notDir, "cannot write to backup location file://"},
		{"name being written", "file://" + taken, `backup "b1" in file://` + taken + " is being written by a run on laptop-of-alice (pid "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kubeconfig, requests := countingCluster(t)
			_, errOut, code := run(t, "create", "b1", "--to", tc.url, "--volumes", "none", "--kubeconfig", kubeconfig)
			if code != ExitFailed || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr:\n%s\nwant %q", code, errOut, tc.want)
			}
			if n := requests.Load(); n != 0 {
				t.Errorf("the cluster got %d requests before the location was found unusable", n)
			}
		})
	}
	// A run that fails on the cluster gives the name back.
	free := t.TempDir()
	kubeconfig, requests := countingCluster(t)
	_, errOut, code := run(t, "create", "b2", "--to", "file://"+free, "--volumes", "none", "--kubeconfig", kubeconfig)
	if code != ExitFailed || requests.Load() == 0 || !strings.Contains(errOut, "reach the cluster") {
		t.Fatalf("exit %d, %d requests, stderr:\n%s", code, requests.Load(), errOut)
	}
	l, err = store.Open(context.Background(), "file://"+free)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if ok, err := catalog.New(l).Exists(context.Background(), "b2"); ok || err != nil {
		t.Fatalf("a run that wrote nothing kept the name: %v %v", ok, err)
	}
}
