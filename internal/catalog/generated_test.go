package catalog

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

func TestGenerateName(t *testing.T) {
	at := time.Date(2026, 3, 4, 1, 2, 3, 999, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		attempt int
		want    string
	}{{1, "nightly-20260304-000203"}, {2, "nightly-20260304-000203-2"}, {9, "nightly-20260304-000203-9"}} {
		got := GenerateName("nightly", at, tc.attempt)
		if got != tc.want {
			t.Errorf("attempt %d: %q, want %q (UTC)", tc.attempt, got, tc.want)
		}
		if err := ValidateName(got); err != nil {
			t.Error(err)
		}
		prefix, when, ok := ParseGenerated(got)
		if !ok || prefix != "nightly" || !when.Equal(at.Truncate(time.Second)) {
			t.Errorf("ParseGenerated(%q) = %q %s %v", got, prefix, when, ok)
		}
	}
	// Sorted by name is sorted by time, retries included.
	names := []string{
		GenerateName("n", at.Add(time.Second), 1), GenerateName("n", at, 3), GenerateName("n", at, 1),
		GenerateName("n", at.Add(-24*time.Hour), 2), GenerateName("n", at, 2),
	}
	sort.Strings(names)
	want := []string{"n-20260303-000203-2", "n-20260304-000203", "n-20260304-000203-2", "n-20260304-000203-3", "n-20260304-000204"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted: %v\nwant    %v", names, want)
	}
	for _, name := range []string{"nightly", "nightly-2026-03-04", "a-20260304-000203-1", "a-20260304-000203-10", "-20260304-000203"} {
		if p, _, ok := ParseGenerated(name); ok {
			t.Errorf("ParseGenerated(%q) took a hand-chosen name for prefix %q", name, p)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, ok := range []string{"nightly", "shop.prod", "a", strings.Repeat("a", 45)} {
		if err := ValidatePrefix(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "Nightly", "nightly-", "-n", "a..b", "a/b", strings.Repeat("a", 46)} {
		if err := ValidatePrefix(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// generatedSuite: runs of one prefix started in the same second each get their own name, and a
// name in use is never written over.
func generatedSuite(t *testing.T, loc *store.Location) {
	ctx := context.Background()
	c := New(loc)
	start := time.Date(2026, 3, 4, 2, 0, 0, 0, time.UTC)
	// A finished backup holds the first name.
	if err := c.WriteManifest(ctx, &Manifest{FormatVersion: FormatVersion, Name: GenerateName("nightly", start, 1), Status: Completed, Items: 7}); err != nil {
		t.Fatal(err)
	}
	const runs = 4
	names := make([]string, runs)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := NewClaim(start, "test")
			names[i], errs[i] = c.ClaimGenerated(ctx, "nightly", cl)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(names)
	want := []string{"nightly-20260304-020000-2", "nightly-20260304-020000-3", "nightly-20260304-020000-4", "nightly-20260304-020000-5"}
	if !slices.Equal(names, want) {
		t.Fatalf("names: %v, want %v", names, want)
	}
	if m, err := c.Manifest(ctx, GenerateName("nightly", start, 1)); err != nil || m.Items != 7 {
		t.Fatalf("the finished backup was touched: %+v %v", m, err)
	}
	// Every name of the second taken: the run gives up, naming why.
	for i := 6; i <= MaxGenerateAttempts; i++ {
		if err := c.Claim(ctx, GenerateName("nightly", start, i), NewClaim(start, "test")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.ClaimGenerated(ctx, "nightly", NewClaim(start, "test"))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "9 names of the second 2026-03-04T02:00:00Z are taken") {
		t.Fatalf("all taken: %v", err)
	}
}

func TestGeneratedSuite(t *testing.T) { eachStore(t, "", generatedSuite) }
