package catalog

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// storageSuite is the one test suite every backend runs: the catalog's operations as the
// commands use them, through a store.Location.
func storageSuite(t *testing.T, loc *store.Location) {
	ctx := context.Background()
	c := New(loc)

	if ok, err := c.Exists(ctx, "b1"); err != nil || ok {
		t.Fatalf("Exists on an empty location = %v, %v", ok, err)
	}
	if _, err := c.Manifest(ctx, "b1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Manifest of a missing backup: want ErrNotFound, got %v", err)
	}

	// A streamed file, larger than one S3 part, appears only on Close.
	w, err := c.NewWriter(ctx, "b1", ResourcesFile, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	chunk := []byte(strings.Repeat("0123456789abcdef", 4096)) // 64 KiB
	for i := 0; i < 100; i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, "b1"); !ok {
		t.Fatal("Exists after a write = false")
	}
	// Without a manifest the backup is incomplete, and says so.
	if _, err := c.Manifest(ctx, "b1"); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Manifest without backup.json: want ErrIncomplete, got %v", err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status != Incomplete || list[0].Size != int64(100*len(chunk)) {
		t.Fatalf("List with an incomplete backup = %+v, %v", list, err)
	}

	r, err := c.NewReader(ctx, "b1", ResourcesFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || len(got) != 100*len(chunk) || string(got[len(got)-16:]) != "0123456789abcdef" {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}

	log := NewLog()
	log.Infof("backed up %d objects", 3)
	log.Add(LogEntry{Level: "warning", Resource: "pods", Namespace: "shop", Name: "x", Message: "gone"})
	if err := c.WriteLog(ctx, "b1", log); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{FormatVersion: FormatVersion, Name: "b1", Status: Completed, Items: 3, StartTime: time.Now().UTC().Truncate(time.Second)}
	if err := c.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	gotM, err := c.Manifest(ctx, "b1")
	if err != nil || gotM.Items != 3 || gotM.Status != Completed {
		t.Fatalf("Manifest = %+v, %v", gotM, err)
	}
	entries, err := c.ReadLog(ctx, "b1")
	if err != nil || len(entries) != 2 || entries[1].Namespace != "shop" || entries[0].Message != "backed up 3 objects" {
		t.Fatalf("ReadLog = %+v, %v", entries, err)
	}

	// A second backup whose name is a prefix of the first must not be confused with it.
	if err := c.WriteManifest(ctx, &Manifest{FormatVersion: FormatVersion, Name: "b", Status: PartiallyFailed}); err != nil {
		t.Fatal(err)
	}
	list, err = c.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "b" || list[0].Status != PartiallyFailed || list[1].Name != "b1" || list[1].Status != Completed {
		t.Fatalf("List = %+v, %v", list, err)
	}

	n, err := c.Delete(ctx, "b1")
	if err != nil || n != 3 {
		t.Fatalf("Delete = %d, %v; want 3 files", n, err)
	}
	if ok, _ := c.Exists(ctx, "b1"); ok {
		t.Fatal("b1 exists after Delete")
	}
	if ok, _ := c.Exists(ctx, "b"); !ok {
		t.Fatal("deleting b1 deleted b")
	}
	if _, err := c.Delete(ctx, "b1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: want ErrNotFound, got %v", err)
	}
}

func TestStorageSuite(t *testing.T) { eachStore(t, "/new/dir", storageSuite) }

// eachStore runs suite on a file:// location (fileTail added to a temporary directory), a memory
// bucket and the in-process S3 server.
func eachStore(t *testing.T, fileTail string, suite func(*testing.T, *store.Location)) {
	t.Run("file", func(t *testing.T) {
		loc, err := store.Open(context.Background(), "file://"+t.TempDir()+fileTail)
		if err != nil {
			t.Fatal(err)
		}
		defer loc.Close()
		suite(t, loc)
	})
	t.Run("mem", func(t *testing.T) {
		suite(t, store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	})
	t.Run("gofakes3", func(t *testing.T) {
		srv := s3server.Fake(t)
		srv.SetEnv(t)
		loc, err := store.Open(context.Background(), srv.URL("team/prod"))
		if err != nil {
			t.Fatal(err)
		}
		defer loc.Close()
		suite(t, loc)
	})
}

func TestFormatVersion(t *testing.T) {
	if _, err := ParseManifest("x", []byte(`{"formatVersion": 99, "name": "x"}`)); err == nil || !strings.Contains(err.Error(), `backup "x" has format version 99; this kubectl-pvbackup reads versions 1 to 2 (upgrade the plugin)`) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseManifest("x", []byte(`not json`)); err == nil || !strings.Contains(err.Error(), "is not valid JSON") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{"nightly-2026.11.25": true, "a": true, "Nightly": false, "../x": false, "a/b": false, "-a": false, "": false, strings.Repeat("a", 64): false} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
}
