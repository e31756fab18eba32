package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// file://, mem:// and an S3 server honour conditional writes; the same server behind a proxy that
// drops If-None-Match and If-Match (as S3-compatible stores without conditional writes do) does
// not: the probe tells them apart, naming the store.
func TestCheckConditional(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{"file://" + t.TempDir(), "mem://"} {
		l, err := Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckConditional(ctx, l); err != nil {
			t.Errorf("%s: %v", url, err)
		}
		_ = l.Close()
	}
	srv := s3server.Fake(t)
	srv.SetEnv(t)
	l, err := Open(ctx, srv.URL("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := CheckConditional(ctx, l); err != nil {
		t.Errorf("S3: %v", err)
	}
	ignoring := s3server.IgnoringConditional(t, srv)
	l, err = Open(ctx, ignoring.URL("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = CheckConditional(ctx, l)
	if !errors.Is(err, ErrNoConditionalWrites) || !strings.Contains(err.Error(), "s3://"+srv.Bucket) {
		t.Fatalf("gofakes3: %v; want ErrNoConditionalWrites naming the store", err)
	}
	t.Log(err)
}
