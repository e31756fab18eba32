package copier

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

// --upload-limit and --download-limit hold for a copy's blobs, whichever is set, shared by the
// blobs copied at once; every blob arrives whole. Without a limit the same copy is quick.
func TestCopyLimits(t *testing.T) {
	ctx := context.Background()
	const limit = 2 << 20
	blobs := map[string][]byte{}
	for i := range 6 { // 6 MiB: three seconds at the limit
		b := make([]byte, 1<<20)
		_, _ = rand.Read(b)
		blobs[fmt.Sprintf("p%02d", i)] = b
	}
	for _, tc := range []struct {
		name   string
		limits repo.Limits
	}{
		{"upload", repo.Limits{UploadBytesPerSecond: limit}},
		{"download", repo.Limits{DownloadBytesPerSecond: limit}},
		{"none", repo.Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := memblob.OpenBucket(nil), memblob.OpenBucket(nil)
			defer from.Close()
			defer to.Close()
			var keys []string
			for k, b := range blobs {
				if err := from.WriteAll(ctx, k, b, nil); err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
			thr, err := repo.NewThrottle(tc.limits)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			n, moved, err := blobTarget{from: from, to: to, throttle: thr}.copyAll(ctx, keys)
			d := time.Since(start)
			if err != nil || n != len(blobs) || moved != 6<<20 {
				t.Fatalf("copied %d blobs, %d bytes (%v); want %d, %d", n, moved, err, len(blobs), 6<<20)
			}
			for k, b := range blobs {
				if got, err := to.ReadAll(ctx, k); err != nil || !bytes.Equal(got, b) {
					t.Errorf("%s differs in the second location (%v)", k, err)
				}
			}
			rate := float64(moved) / d.Seconds()
			t.Logf("%d bytes in %v: %.2f MiB/s", moved, d.Round(time.Millisecond), rate/(1<<20))
			if tc.limits == (repo.Limits{}) {
				if d > 2*time.Second {
					t.Errorf("with no limit the copy took %v", d)
				}
				return
			}
			if rate > 1.1*limit || rate < 0.5*limit {
				t.Errorf("copied at %.2f MiB/s; want the limit of %.2f MiB/s (at most 10%% over)", rate/(1<<20), float64(limit)/(1<<20))
			}
		})
	}
}
