package catalog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// claimSuite checks, on one backend, that a name is claimed by one run only, even when many
// claim it at once, and that the manifest is written once.
func claimSuite(t *testing.T, loc *store.Location) {
	ctx := context.Background()
	c := New(loc)

	// Many runs claim one name at the same moment: exactly one wins, every other is told who.
	const runs = 8
	var wg sync.WaitGroup
	errs := make([]error, runs)
	claims := make([]*Claim, runs)
	start := make(chan struct{})
	for i := range runs {
		claims[i] = NewClaim(time.Now(), "test")
		claims[i].Host = fmt.Sprintf("host-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = c.Claim(ctx, "race", claims[i])
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two runs claimed the name: %s and %s", claims[winner].Host, claims[i].Host)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("claim %d: %v; want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no run claimed the name: %v", errs)
	}
	for i, err := range errs {
		if i != winner && !strings.Contains(err.Error(), "host-") {
			t.Errorf("the losing run is not told who has the name: %v", err)
		}
	}
	// The second run, arriving later, names the first.
	err := c.Claim(ctx, "race", NewClaim(time.Now(), "test"))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "is being written by a run on "+claims[winner].Host) {
		t.Fatalf("second claim: %v", err)
	}

	// Claimed but unfinished: Incomplete, with who and when.
	if _, err := c.Manifest(ctx, "race"); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), claims[winner].Host) {
		t.Fatalf("Manifest of a claimed backup: %v", err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status != Incomplete || list[0].Claim == nil || list[0].Claim.Host != claims[winner].Host || !strings.Contains(list[0].Error, "being written by") {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Only the run's own claim is released.
	if err := c.Release(ctx, "race", claims[(winner+1)%runs]); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, "race"); !ok {
		t.Fatal("another run's Release removed the claim")
	}
	if err := c.Release(ctx, "race", claims[winner]); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Exists(ctx, "race"); ok {
		t.Fatal("the claim is still there after Release")
	}

	// The manifest is written once.
	m := &Manifest{FormatVersion: FormatVersion, Name: "once", Status: Completed, Items: 1}
	if err := c.WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	m2 := *m
	m2.Items = 2
	if err := c.WriteManifest(ctx, &m2); !errors.Is(err, ErrExists) {
		t.Fatalf("second WriteManifest: %v; want ErrExists", err)
	}
	if got, err := c.Manifest(ctx, "once"); err != nil || got.Items != 1 {
		t.Fatalf("the manifest was written over: %+v, %v", got, err)
	}
	// A finished backup cannot be claimed.
	if err := c.Claim(ctx, "once", NewClaim(time.Now(), "test")); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("claim of a finished backup: %v", err)
	}
}

func TestClaimSuite(t *testing.T) { eachStore(t, "?prefix=team", claimSuite) }

// TestHugeFilesRefused: a 100 MB backup.json (or a log that expands without end) in a broken
// or hostile bucket fails clearly, without reading it into memory.
func TestHugeFilesRefused(t *testing.T) {
	ctx := context.Background()
	loc, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	c := New(loc)
	huge := make([]byte, 100<<20)
	copy(huge, `{"formatVersion": 1, "name": "huge", "errors": ["`)
	for i := 60; i < len(huge)-3; i++ {
		huge[i] = 'x'
	}
	copy(huge[len(huge)-3:], `"]}`)
	if err := loc.Bucket().WriteAll(ctx, Key("huge", ManifestFile), huge, nil); err != nil {
		t.Fatal(err)
	}
	huge = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = c.Manifest(ctx, "huge")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "backup.json is 104857600 bytes, more than the") {
		t.Fatalf("Manifest of a 100 MB backup.json: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("refusing it allocated %d MB", grew>>20)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 1 || list[0].Status != Unreadable || !strings.Contains(list[0].Error, "more than the") {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// A gzip bomb as log.jsonl.gz: small compressed, larger than MaxLogExpanded expanded.
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	chunk := bytes.Repeat([]byte(`{"msg":"`+strings.Repeat("a", 1000)+`"}`+"\n"), 1024)
	for n := 0; n <= MaxLogExpanded; n += len(chunk) {
		_, _ = zw.Write(chunk)
	}
	_ = zw.Close()
	if err := loc.Bucket().WriteAll(ctx, Key("huge", LogFile), gz.Bytes(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadLog(ctx, "huge"); !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("ReadLog of a gzip bomb: %v", err)
	}
}
