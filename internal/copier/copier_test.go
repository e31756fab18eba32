package copier

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// Packs go before the indexes that name them, and Kopia's format and maintenance blobs last.
func TestPhaseOrder(t *testing.T) {
	for k, want := range map[string]int{"p0a1-s2": 0, "q7f": 0, "s3c": 0, "xn0_1": 1, "xe1": 1, "kopia.repository": 2, "kopia.maintenance": 2} {
		if got := phase(k); got != want {
			t.Errorf("phase(%s) = %d; want %d", k, got, want)
		}
	}
}

// Only locations locked the same way (or neither) are copied between.
func TestCheckLocks(t *testing.T) {
	loc := func(l *store.Lock) *store.Location {
		x := store.FromBucket(memblob.OpenBucket(nil), "mem://")
		x.SetLock(l)
		return x
	}
	a := &store.Lock{Mode: store.Compliance, Period: 72 * time.Hour}
	b := &store.Lock{Mode: store.Governance, Period: 72 * time.Hour}
	for _, tc := range []struct {
		from, to *store.Lock
		ok       bool
	}{{nil, nil, true}, {a, a, true}, {a, nil, false}, {nil, a, false}, {a, b, false}} {
		err := checkLocks(loc(tc.from), loc(tc.to))
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "locked the same way")) {
			t.Errorf("checkLocks(%v, %v) = %v; want ok %v", tc.from, tc.to, err, tc.ok)
		}
	}
}

// --selector copies the backups whose labels match; --all every backup with a manifest; names
// those named (a missing one is an error).
func TestChoose(t *testing.T) {
	ctx := context.Background()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	for name, env := range map[string]string{"a-1": "prod", "a-2": "test", "a-3": "prod"} {
		m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: name, Status: catalog.Completed, Labels: map[string]string{"env": env}}
		if err := cat.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	names := func(cfg Config) string {
		ms, err := choose(ctx, cat, cfg)
		if err != nil {
			return "error: " + err.Error()
		}
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	prod, _ := labels.Parse("env=prod")
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Selector: prod}, "a-1,a-3"},
		{Config{All: true}, "a-1,a-2,a-3"},
		{Config{Names: []string{"a-2"}}, "a-2"},
	} {
		if got := names(tc.cfg); got != tc.want {
			t.Errorf("choose(%+v) = %s; want %s", tc.cfg, got, tc.want)
		}
	}
	if got := names(Config{Names: []string{"missing"}}); !strings.HasPrefix(got, "error: ") {
		t.Errorf("choose of a missing name = %s; want an error", got)
	}
}

// A manifest larger than any this tool writes is refused, not read into memory and copied.
func TestCopyFilesBoundsManifest(t *testing.T) {
	ctx := context.Background()
	from := store.FromBucket(memblob.OpenBucket(nil), "mem://from")
	to := store.FromBucket(memblob.OpenBucket(nil), "mem://to")
	big := make([]byte, catalog.MaxManifestSize+1)
	if err := from.Bucket().WriteAll(ctx, catalog.Key("b", catalog.ManifestFile), big, nil); err != nil {
		t.Fatal(err)
	}
	var it Item
	err := Deps{From: from, To: to}.copyFilesErr(ctx, "b", &it)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("copy of a %d-byte manifest = %v; want it refused as too large", len(big), err)
	}
	if ok, _ := to.Bucket().Exists(ctx, catalog.Key("b", catalog.ManifestFile)); ok {
		t.Fatal("the oversized manifest was copied")
	}
}
