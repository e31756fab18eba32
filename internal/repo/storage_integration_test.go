//go:build integration

package repo

import (
	"context"
	"testing"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// The same suite and Kopia round trip against a real S3 server (SeaweedFS) on loopback, through
// the same store.Open the mover uses.
func TestSeaweedFS(t *testing.T) {
	srv := s3server.SeaweedFS(t)
	srv.SetEnv(t)
	ctx := context.Background()

	t.Run("Storage", func(t *testing.T) {
		loc, err := store.Open(ctx, srv.URL("suite"))
		if err != nil {
			t.Fatal(err)
		}
		defer loc.Close()
		b := sub(t, loc)
		st, release := NewStorage(b, loc.String())
		defer release()
		if !st.UseS3PutObject(srv.Bucket, "suite/kopia/ns/") {
			t.Fatal("an s3:// bucket did not give its S3 client")
		}
		storageSuite(t, st)
		t.Run("ThroughGocloudWriter", func(t *testing.T) {
			b2 := loc2(t, srv.URL("suite2"))
			st2, release2 := NewStorage(b2, "gocloud writer")
			defer release2()
			storageSuite(t, st2)
		})
	})
	t.Run("Clock", func(t *testing.T) {
		for name, direct := range map[string]bool{"PutObject": true, "GocloudWriter": false} {
			t.Run(name, func(t *testing.T) {
				loc, err := store.Open(ctx, srv.URL("clock-"+name))
				if err != nil {
					t.Fatal(err)
				}
				defer loc.Close()
				clockSuite(t, sub(t, loc), func(st *Storage) {
					if direct && !st.UseS3PutObject(srv.Bucket, "clock-"+name+"/kopia/ns/") {
						t.Fatal("an s3:// bucket did not give its S3 client")
					}
				})
			})
		}
	})
	t.Run("Kopia", func(t *testing.T) {
		loc, err := store.Open(ctx, srv.URL("kopia-e2e"))
		if err != nil {
			t.Fatal(err)
		}
		defer loc.Close()
		b := sub(t, loc)
		kopiaRoundTrip(t, b, loc.String(), srv.Bucket, "kopia-e2e/kopia/ns/")
	})
}

func loc2(t *testing.T, url string) *blob.Bucket {
	loc, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	return sub(t, loc)
}

func sub(t *testing.T, loc *store.Location) *blob.Bucket {
	b, err := loc.Sub(context.Background(), "kopia/ns/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
