package mover

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// TestMoverStaysInItsPrefix records every S3 request of a backup and a restore: each names an
// object or a listing under <prefix>/kopia/<ns>/, so a bucket policy limited to that prefix
// (docs/security.md) is all a mover needs.
func TestMoverStaysInItsPrefix(t *testing.T) {
	backend := s3mem.New()
	const bucket = "scope-test"
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	fake := gofakes3.New(backend).Server()
	var mu sync.Mutex
	var outside []string
	n := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/"+bucket), "/")
		if key == "" { // a bucket-level request: a listing, by prefix
			key = r.URL.Query().Get("prefix")
		}
		mu.Lock()
		n++
		if !strings.HasPrefix(key, "prod/kopia/team-a/") {
			outside = append(outside, r.Method+" "+r.URL.String())
		}
		mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	defer ts.Close()
	srv := &s3server.Server{Endpoint: ts.URL, Bucket: bucket, AccessKey: "fake", SecretKey: "fakefakefake"}
	srv.SetEnv(t)
	s := Settings{Location: srv.URL("prod"), Namespace: "team-a", Password: "repo-key-of-team-a", CacheDir: t.TempDir()}
	src := t.TempDir()
	makeTree(t, src, treeSpec{smallFiles: 20})
	ctx := context.Background()
	res, err := RunBackup(ctx, s, BackupConfig{Source: src, PVC: "data"}, func(Event) {})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunRestore(ctx, s, RestoreConfig{SnapshotID: res.SnapshotID, Target: t.TempDir(), SkipOwners: true}, func(Event) {}); err != nil {
		t.Fatal(err)
	}
	if n == 0 || len(outside) > 0 {
		t.Fatalf("%d requests, %d outside prod/kopia/team-a/: %v", n, len(outside), outside)
	}
}
