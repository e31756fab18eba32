package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/summary"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// statusLocation writes manifests (and claims, for runs without one) into a file:// location.
func statusLocation(t *testing.T, ms []*catalog.Manifest, running []string, at time.Time) string {
	t.Helper()
	loc := "file://" + t.TempDir()
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cat := catalog.New(l)
	for _, m := range ms {
		m.FormatVersion = catalog.FormatVersion
		if err := cat.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range running {
		cl := catalog.NewClaim(at, "test")
		cl.Host = "runner-1"
		if err := cat.Claim(ctx, name, cl); err != nil {
			t.Fatal(err)
		}
	}
	return loc
}

func finished(prefix string, start time.Time, took time.Duration, status catalog.Status, errs ...string) *catalog.Manifest {
	return &catalog.Manifest{Name: catalog.GenerateName(prefix, start, 1), Status: status, StartTime: start, CompletionTime: start.Add(took), Errors: errs, Namespaces: []string{"shop"}}
}

// TestStatus: groups by generated prefix and label set, the newest Completed backup and the last
// failure with its reason, and the exit codes a monitor acts on: 0 fresh, 2 the newest run
// failed, 1 stale (--max-age) or nothing matched.
func TestStatus(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	now := time.Now().UTC().Truncate(time.Second)
	day := 24 * time.Hour
	manual := &catalog.Manifest{Name: "before-upgrade", Status: catalog.Completed, StartTime: now.Add(-time.Hour), CompletionTime: now.Add(-time.Hour + time.Minute), Labels: map[string]string{"env": "prod"}}
	loc := statusLocation(t, []*catalog.Manifest{
		finished("nightly", now.Add(-3*day), 5*time.Minute, catalog.Completed),
		finished("nightly", now.Add(-2*day), 5*time.Minute, catalog.Completed),
		finished("nightly", now.Add(-day), 7*time.Minute, catalog.PartiallyFailed, "volume shop/data (fs): mover pod\nOOMKilled", "second error"),
		finished("weekly", now.Add(-10*day), time.Hour, catalog.Completed),
		manual,
	}, []string{catalog.GenerateName("nightly", now.Add(-time.Minute), 1)}, now.Add(-time.Minute))

	out, errOut, code := run(t, "status", "--from", loc)
	if code != ExitPartial || !strings.Contains(errOut, "the newest backup failed in nightly (see lastFailure)") {
		t.Fatalf("status: exit %d\n%s", code, errOut)
	}
	names := strings.NewReplacer(catalog.GenerateName("nightly", now.Add(-2*day), 1), "nightly-NOW-2d", catalog.GenerateName("nightly", now.Add(-day), 1), "nightly-NOW-1d",
		catalog.GenerateName("weekly", now.Add(-10*day), 1), "weekly-NOW-10d")
	golden.Assert(t, "cli/status.golden", []byte(names.Replace(out)))

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"--prefix", "nightly", "--max-age", "26h"}, ExitFailed, "no Completed backup within 26h0m0s in nightly: backups are stale"},
		{[]string{"--prefix", "nightly", "--max-age", "72h"}, ExitPartial, "the newest backup failed in nightly"},
		{[]string{"--prefix", "weekly", "--max-age", "216h"}, ExitFailed, "in weekly: backups are stale"},
		{[]string{"--prefix", "weekly", "--max-age", "240h"}, ExitOK, ""},
		{[]string{"-l", "env=prod", "--max-age", "2h"}, ExitOK, ""},
		{[]string{"-l", "env=test", "--max-age", "2h"}, ExitFailed, "no backup in " + loc + " matches: backups are stale"},
		{[]string{"--prefix", "hourly"}, ExitOK, ""},
		{[]string{"--group-by", "namespace"}, ExitFailed, `--group-by="namespace": use prefix or labels`},
		{[]string{"--max-age", "-1h"}, ExitFailed, "--max-age -1h0m0s: must be positive"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, errOut, code := run(t, append([]string{"status", "--from", loc, "-o", "json"}, tc.args...)...)
			if code != tc.code || (tc.err != "" && !strings.Contains(errOut, tc.err)) {
				t.Fatalf("exit %d, want %d with %q:\n%s", code, tc.code, tc.err, errOut)
			}
		})
	}

	// The JSON a monitor reads.
	out, _, _ = run(t, "status", "--from", loc, "--prefix", "nightly", "--max-age", "26h", "-o", "json")
	var rep summary.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Groups) != 1 {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	g := rep.Groups[0]
	if g.Prefix != "nightly" || g.State != summary.Stale || g.Backups != 4 || rep.MaxAgeSeconds != 26*3600 ||
		g.Statuses[catalog.Completed] != 2 || g.Statuses[catalog.PartiallyFailed] != 1 || g.Statuses[catalog.Incomplete] != 1 {
		t.Errorf("group: %+v", g)
	}
	if c := g.LastCompleted; c == nil || c.Name != catalog.GenerateName("nightly", now.Add(-2*day), 1) || !c.Time.Equal(now.Add(-2*day+5*time.Minute)) || c.AgeSeconds < (2*day-5*time.Minute).Seconds() {
		t.Errorf("lastCompleted: %+v", c)
	}
	if f := g.LastFailure; f == nil || f.Status != catalog.PartiallyFailed || f.Reason != "volume shop/data (fs): mover pod OOMKilled" {
		t.Errorf("lastFailure: %+v", f)
	}
	if n := g.Newest; n == nil || n.Status != catalog.Incomplete || !strings.Contains(n.Reason, "being written by a run on runner-1") {
		t.Errorf("newest: %+v", n)
	}

	// A fresh location: exit 0 with the same --max-age.
	fresh := statusLocation(t, []*catalog.Manifest{finished("nightly", now.Add(-2*time.Hour), 5*time.Minute, catalog.Completed)}, nil, now)
	if _, errOut, code := run(t, "status", "--from", fresh, "--prefix", "nightly", "--max-age", "26h"); code != ExitOK {
		t.Fatalf("fresh location: exit %d\n%s", code, errOut)
	}
	// An empty one is stale: backups that never started did stop.
	empty := statusLocation(t, nil, nil, now)
	if _, errOut, code := run(t, "status", "--from", empty, "--max-age", "26h"); code != ExitFailed || !strings.Contains(errOut, "matches: backups are stale") {
		t.Fatalf("empty location: exit %d\n%s", code, errOut)
	}
}

// TestStatusQuotes: labels and a failure's reason come from a backup.json anyone with write
// access to the bucket may have written: the table and the exit message show them quoted, never
// as escape sequences a terminal would act on.
func TestStatusQuotes(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	t.Setenv("PVBACKUP_LOCATION", "")
	now := time.Now().UTC().Truncate(time.Second)
	hostile := &catalog.Manifest{Name: "by-hand", Status: catalog.Failed, StartTime: now.Add(-time.Hour), CompletionTime: now.Add(-time.Hour + time.Minute),
		Labels: map[string]string{"team": "a\x1b[2Jb"}, Errors: []string{"mover \x1b]0;pwned\x07 failed"}}
	loc := statusLocation(t, []*catalog.Manifest{hostile}, nil, now)
	out, errOut, code := run(t, "status", "--from", loc)
	if code != ExitPartial {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if strings.ContainsAny(out+errOut, "\x1b\x07") {
		t.Fatalf("escape sequences printed as they are:\n%q\n%q", out, errOut)
	}
	if !strings.Contains(out, `"labels team=a\x1b[2Jb"`) || !strings.Contains(out, `"mover \x1b]0;pwned\a failed"`) || !strings.Contains(errOut, `"labels team=a\x1b[2Jb"`) {
		t.Errorf("the label and the reason are not shown quoted:\n%s\n%s", out, errOut)
	}
}
