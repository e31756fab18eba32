package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kopia/kopia/fs/localfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/upload"
	gblob "gocloud.dev/blob"
)

// buf is a blob.OutputBuffer over a bytes.Buffer (Kopia's gather package is internal to Kopia).
type buf struct{ bytes.Buffer }

func (b *buf) Length() int { return b.Buffer.Len() }

// sliceBytes is a blob.Bytes over a byte slice.
type sliceBytes []byte

func (s sliceBytes) Length() int                        { return len(s) }
func (s sliceBytes) WriteTo(w io.Writer) (int64, error) { n, err := w.Write(s); return int64(n), err }
func (s sliceBytes) Reader() io.ReadSeekCloser          { return nopCloser{bytes.NewReader(s)} }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// storageSuite checks the behaviours Kopia relies on (what its internal blobtesting.VerifyStorage
// checks): not-found, full and ranged reads, invalid ranges, overwrite, listing by prefix,
// metadata, deletes and concurrent puts. st must be empty.
func storageSuite(t *testing.T, st blob.Storage) {
	ctx := context.Background()
	blobs := []struct {
		id   blob.ID
		data []byte
	}{
		{"abcdbbf4f0507d054ed5a80a5b65086f602b", []byte{}},
		{"zxce0e35630770c54668a8cfb4e414c6bf8f", []byte{1}},
		{"abff4585856ebf0748fd989e1dd623a8963d", bytes.Repeat([]byte{1}, 1000)},
		{"abgc3dca496d510f492c858a2df1eb824e62", bytes.Repeat([]byte{1, 2, 3}, 10000)},
		{"kopia.repository", bytes.Repeat([]byte{2}, 100)},
	}
	start := time.Now()

	t.Run("NotFound", func(t *testing.T) {
		for _, b := range blobs {
			var out buf
			if err := st.GetBlob(ctx, b.id, 0, -1, &out); !errors.Is(err, blob.ErrBlobNotFound) || out.Len() != 0 {
				t.Errorf("GetBlob(%s) of a missing blob = %d bytes, %v; want ErrBlobNotFound", b.id, out.Len(), err)
			}
			if err := st.GetBlob(ctx, b.id, 0, 0, &out); !errors.Is(err, blob.ErrBlobNotFound) {
				t.Errorf("GetBlob(%s, 0, 0) of a missing blob = %v; want ErrBlobNotFound", b.id, err)
			}
			if _, err := st.GetMetadata(ctx, b.id); !errors.Is(err, blob.ErrBlobNotFound) {
				t.Errorf("GetMetadata(%s) of a missing blob = %v; want ErrBlobNotFound", b.id, err)
			}
		}
		if err := st.DeleteBlob(ctx, "no-such-blob"); err != nil {
			t.Errorf("DeleteBlob of a missing blob = %v; want nil", err)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, len(blobs)*4)
		for _, b := range blobs {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := st.PutBlob(ctx, b.id, sliceBytesOf(b.data), blob.PutOptions{}); err != nil {
						errs <- fmt.Errorf("PutBlob(%s): %w", b.id, err)
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Reads", func(t *testing.T) {
		for _, b := range blobs {
			assertGet(t, st, b.id, 0, -1, b.data)
			n := int64(len(b.data))
			half := n / 2
			if half == 0 {
				continue
			}
			assertGet(t, st, b.id, 0, 0, nil)
			assertGet(t, st, b.id, 0, half, b.data[:half])
			assertGet(t, st, b.id, half, n-half, b.data[half:])
			assertGet(t, st, b.id, 1, n-2, b.data[1:n-1])
			for _, r := range [][2]int64{{-3, 1}, {n, 3}, {n - 1, 3}, {n + 1, 3}, {0, n + 1}} {
				var out buf
				err := st.GetBlob(ctx, b.id, r[0], r[1], &out)
				if !errors.Is(err, blob.ErrInvalidRange) {
					t.Errorf("GetBlob(%s, %d, %d) of a %d-byte blob = %v; want ErrInvalidRange", b.id, r[0], r[1], n, err)
				}
			}
		}
	})

	t.Run("Metadata", func(t *testing.T) {
		for _, b := range blobs {
			m, err := st.GetMetadata(ctx, b.id)
			if err != nil {
				t.Fatalf("GetMetadata(%s): %v", b.id, err)
			}
			if m.BlobID != b.id || m.Length != int64(len(b.data)) {
				t.Errorf("GetMetadata(%s) = %s; want length %d", b.id, m.String(), len(b.data))
			}
			if d := m.Timestamp.Sub(start); d < -2*time.Minute || d > 2*time.Minute {
				t.Errorf("GetMetadata(%s) timestamp %v is not close to the put time %v", b.id, m.Timestamp, start)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		assertList(t, st, "", "abcdbbf4f0507d054ed5a80a5b65086f602b", "abff4585856ebf0748fd989e1dd623a8963d", "abgc3dca496d510f492c858a2df1eb824e62", "kopia.repository", "zxce0e35630770c54668a8cfb4e414c6bf8f")
		assertList(t, st, "ab", "abcdbbf4f0507d054ed5a80a5b65086f602b", "abff4585856ebf0748fd989e1dd623a8963d", "abgc3dca496d510f492c858a2df1eb824e62")
		assertList(t, st, "abf", "abff4585856ebf0748fd989e1dd623a8963d")
		assertList(t, st, "q")
		stop := errors.New("stop")
		calls := 0
		err := st.ListBlobs(ctx, "", func(blob.Metadata) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("ListBlobs whose callback fails = %v after %d calls; want the callback's error after 1", err, calls)
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		for _, b := range blobs {
			if err := st.PutBlob(ctx, b.id, sliceBytesOf([]byte{99}), blob.PutOptions{}); err != nil {
				t.Fatalf("overwrite %s: %v", b.id, err)
			}
			assertGet(t, st, b.id, 0, -1, []byte{99})
		}
	})

	t.Run("PutOptions", func(t *testing.T) {
		var mt time.Time
		if err := st.PutBlob(ctx, "pkmodtime", sliceBytesOf([]byte("x")), blob.PutOptions{GetModTime: &mt}); err != nil {
			t.Fatal(err)
		}
		m, err := st.GetMetadata(ctx, "pkmodtime")
		if err != nil || mt.IsZero() || !m.Timestamp.Equal(mt) {
			t.Errorf("GetModTime = %v; metadata = %v, %v; want the same non-zero time", mt, m.Timestamp, err)
		}
		err = st.PutBlob(ctx, "pksettime", sliceBytesOf([]byte("x")), blob.PutOptions{SetModTime: time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)})
		if !errors.Is(err, blob.ErrSetTimeUnsupported) {
			t.Errorf("PutBlob with SetModTime = %v; want ErrSetTimeUnsupported", err)
		}
		// A store (or bucket) that cannot lock must refuse a put with retention, never store the
		// blob unlocked.
		err = st.PutBlob(ctx, "pkretention", sliceBytesOf([]byte("x")), blob.PutOptions{RetentionMode: blob.Governance, RetentionPeriod: time.Hour})
		if err == nil {
			t.Errorf("PutBlob with retention into a bucket without object lock succeeded: the blob was stored unlocked")
		}
		if _, err := st.GetMetadata(ctx, "pkretention"); !errors.Is(err, blob.ErrBlobNotFound) {
			t.Errorf("after a refused PutBlob with retention, GetMetadata = %v; want ErrBlobNotFound", err)
		}
		for _, id := range []blob.ID{"pkmodtime", "pksettime", "pkretention"} {
			if err := st.DeleteBlob(ctx, id); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		for _, id := range []blob.ID{"abcdbbf4f0507d054ed5a80a5b65086f602b", "abcdbbf4f0507d054ed5a80a5b65086f602b", "kopia.repository"} {
			if err := st.DeleteBlob(ctx, id); err != nil {
				t.Fatalf("DeleteBlob(%s): %v", id, err)
			}
		}
		assertList(t, st, "ab", "abff4585856ebf0748fd989e1dd623a8963d", "abgc3dca496d510f492c858a2df1eb824e62")
		assertList(t, st, "", "abff4585856ebf0748fd989e1dd623a8963d", "abgc3dca496d510f492c858a2df1eb824e62", "zxce0e35630770c54668a8cfb4e414c6bf8f")
		var out buf
		if err := st.GetBlob(ctx, "kopia.repository", 0, -1, &out); !errors.Is(err, blob.ErrBlobNotFound) {
			t.Errorf("GetBlob after delete = %v; want ErrBlobNotFound", err)
		}
	})

	t.Run("BigBlob", func(t *testing.T) {
		// A pack-sized blob crosses the S3 writer's part size: it must come back whole.
		big := make([]byte, 21<<20)
		for i := range big {
			big[i] = byte(i*7 + i>>13)
		}
		if err := st.PutBlob(ctx, "pbig", sliceBytesOf(big), blob.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		assertGet(t, st, "pbig", 0, -1, big)
		assertGet(t, st, "pbig", 20<<20, 1<<20, big[20<<20:])
		if err := st.DeleteBlob(ctx, "pbig"); err != nil {
			t.Fatal(err)
		}
	})
}

func sliceBytesOf(b []byte) blob.Bytes { return sliceBytes(b) }

func assertGet(t *testing.T, st blob.Storage, id blob.ID, offset, length int64, want []byte) {
	t.Helper()
	var out buf
	out.WriteString("garbage that GetBlob must reset")
	if err := st.GetBlob(context.Background(), id, offset, length, &out); err != nil {
		t.Errorf("GetBlob(%s, %d, %d): %v", id, offset, length, err)
		return
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("GetBlob(%s, %d, %d) = %d bytes; want %d bytes %x...", id, offset, length, out.Len(), len(want), want[:min(len(want), 8)])
	}
}

func assertList(t *testing.T, st blob.Storage, prefix blob.ID, want ...blob.ID) {
	t.Helper()
	var got []blob.ID
	err := st.ListBlobs(context.Background(), prefix, func(m blob.Metadata) error {
		got = append(got, m.BlobID)
		md, err := st.GetMetadata(context.Background(), m.BlobID)
		if err != nil || md.Length != m.Length {
			t.Errorf("listed %s with length %d, GetMetadata = %v, %v", m.BlobID, m.Length, md.Length, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ListBlobs(%q): %v", prefix, err)
	}
	slices.Sort(got)
	if want == nil {
		want = []blob.ID{}
	}
	if got == nil {
		got = []blob.ID{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListBlobs(%q) = %v; want %v", prefix, got, want)
	}
}

// kopiaRoundTrip proves the adapter end to end: a real Kopia repository created on the bucket,
// a snapshot of a small tree, reopened with the same and a wrong password, verified.
func kopiaRoundTrip(t *testing.T, bucket *gblob.Bucket, display string, s3Bucket, s3Prefix string) {
	ctx := context.Background()
	src := t.TempDir()
	for i := range 50 {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte(fmt.Sprintf("file %d ", i)), 1000*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Password: "correct horse", CacheDir: t.TempDir(), Create: true, S3Bucket: s3Bucket, S3KeyPrefix: s3Prefix}
	r, err := Open(ctx, bucket, display, cfg)
	if err != nil {
		t.Fatalf("create repository: %v", err)
	}
	si := snapshot.SourceInfo{Host: "ns", UserName: ClientUser, Path: "/pvc"}
	var id string
	err = repo.WriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "test"}, func(ctx context.Context, w repo.RepositoryWriter) error {
		tree, err := policy.TreeForSource(ctx, w, si)
		if err != nil {
			return err
		}
		entry, err := localfs.NewEntry(src)
		if err != nil {
			return err
		}
		man, err := upload.NewUploader(w).Upload(ctx, entry, tree, si)
		if err != nil {
			return err
		}
		mid, err := snapshot.SaveSnapshot(ctx, w, man)
		id = string(mid)
		return err
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(ctx, bucket, display, Config{Password: "wrong", CacheDir: t.TempDir(), Create: true}); !errors.Is(err, ErrWrongPassword) ||
		!bytes.Contains([]byte(err.Error()), []byte("wrong repository password for "+display)) {
		t.Fatalf("open with a wrong password = %v; want %q", err, "wrong repository password for "+display)
	}

	r, err = Open(ctx, bucket, display, Config{Password: "correct horse", CacheDir: t.TempDir()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer r.Close(ctx) //nolint:errcheck
	man, err := snapshot.LoadSnapshot(ctx, r, manifest.ID(id))
	if err != nil {
		t.Fatalf("load snapshot %s: %v", id, err)
	}
	if got := man.Stats.TotalFileCount; got != 50 {
		t.Errorf("snapshot has %d files; want 50", got)
	}
	if err := Verify(ctx, r, 100); err != nil {
		t.Fatalf("verify: %v", err)
	}
}
