//go:build integration

package store

import (
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The real S3 server the tests use honours If-None-Match and If-Match.
func TestCheckConditionalSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	l, err := Open(context.Background(), srv.URL("probe"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := CheckConditional(context.Background(), l); err != nil {
		t.Fatal(err)
	}
}
