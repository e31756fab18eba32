package repo

import (
	"context"
	"testing"
	"time"

	kblob "github.com/kopia/kopia/repo/blob"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

func TestClockFile(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	clockSuite(t, blob.PrefixedBucket(b, "kopia/ns/"), func(*Storage) {})
}

// clockSuite checks which timestamps Kopia sees through a Storage with a simulated Clock: the
// simulated time of the write for the blobs written through it (or through a storage Kopia
// rebuilt from its connection info), the bucket's time for every other blob. setup prepares each
// storage (e.g. direct S3 puts).
func clockSuite(t *testing.T, b *blob.Bucket, setup func(*Storage)) {
	ctx := context.Background()
	start := time.Now().Add(1000 * 24 * time.Hour).Truncate(time.Second)
	clock := NewClock(start)
	clock.Advance(30 * 24 * time.Hour)
	simulated := start.Add(30 * 24 * time.Hour)

	clocked, release := NewStorage(b, "sim")
	defer release()
	setup(clocked)
	clocked.SimulateTime(clock)
	plain, release2 := NewStorage(b, "sim") // the same repository, real clock
	defer release2()
	setup(plain)
	rebuilt, err := kblob.NewStorage(ctx, clocked.ConnectionInfo(), false)
	if err != nil {
		t.Fatal(err)
	}

	put := func(st kblob.Storage, id kblob.ID) time.Time {
		t.Helper()
		var mod time.Time
		if err := st.PutBlob(ctx, id, sliceBytes("data "+id), kblob.PutOptions{GetModTime: &mod}); err != nil {
			t.Fatal(err)
		}
		return mod
	}
	cases := []struct {
		name      string
		id        kblob.ID
		write     func(id kblob.ID) time.Time // returns the put's GetModTime
		simulated bool
	}{
		{"written through the clocked storage", "xn0_a", func(id kblob.ID) time.Time { return put(clocked, id) }, true},
		{"written through a storage Kopia rebuilt", "xn0_b", func(id kblob.ID) time.Time { return put(rebuilt, id) }, true},
		{"written without the clock", "xn0_c", func(id kblob.ID) time.Time { return put(plain, id) }, false},
		{"written with the clock, deleted, written again without", "xn0_d", func(id kblob.ID) time.Time {
			put(clocked, id)
			if err := clocked.DeleteBlob(ctx, id); err != nil {
				t.Fatal(err)
			}
			return put(plain, id)
		}, false},
		{"written without the clock, then again with it", "xn0_e", func(id kblob.ID) time.Time {
			put(plain, id)
			return put(clocked, id)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			mod := tc.write(tc.id)
			want := func(what string, got time.Time) {
				t.Helper()
				if tc.simulated {
					if got.Before(simulated) || got.After(clock.Now()) {
						t.Errorf("%s: %v, want the simulated time (%v .. %v)", what, got, simulated, clock.Now())
					}
				} else if got.After(time.Now().Add(time.Minute)) || got.Before(before.Add(-time.Minute)) {
					t.Errorf("%s: %v, want the bucket's real time (about %v)", what, got, before)
				}
			}
			want("PutBlob GetModTime", mod)
			for name, st := range map[string]kblob.Storage{"clocked": clocked, "rebuilt": rebuilt} {
				m, err := st.GetMetadata(ctx, tc.id)
				if err != nil {
					t.Fatal(err)
				}
				want(name+" GetMetadata", m.Timestamp)
				found := false
				err = st.ListBlobs(ctx, tc.id, func(m kblob.Metadata) error {
					found = m.BlobID == tc.id
					want(name+" ListBlobs", m.Timestamp)
					return nil
				})
				if err != nil || !found {
					t.Fatalf("%s ListBlobs %s: found %v, %v", name, tc.id, found, err)
				}
			}
			// A storage without the clock always reports the bucket's time.
			m, err := plain.GetMetadata(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if m.Timestamp.After(time.Now().Add(time.Minute)) {
				t.Errorf("storage without clock: %v, want the bucket's time", m.Timestamp)
			}
		})
	}
}

// A repository opened with a Clock runs on it: Kopia's own time is the simulated one.
func TestOpenWithClock(t *testing.T) {
	b, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	clock := NewClock(time.Now().Add(365 * 24 * time.Hour))
	for _, c := range []*Clock{clock, nil} { // the first creates the repository
		r, err := Open(ctx, b, "file:///clock", Config{Password: "pw", CacheDir: t.TempDir(), Create: true, Clock: c})
		if err != nil {
			t.Fatal(err)
		}
		got := r.Time()
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
		simulated := got.After(time.Now().Add(300 * 24 * time.Hour))
		if simulated != (c != nil) {
			t.Errorf("clock %v: repository time %v", c != nil, got)
		}
	}
	if clock.Written() == 0 {
		t.Error("the clock recorded no blob of the repository created with it")
	}
}
