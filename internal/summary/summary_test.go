package summary

import (
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

func entry(name string, status catalog.Status, start time.Time, labels map[string]string) catalog.Entry {
	return catalog.Entry{Name: name, Status: status, Manifest: &catalog.Manifest{Name: name, Status: status, StartTime: start, CompletionTime: start.Add(time.Minute), Labels: labels}}
}

// TestGroups: generated names by prefix, the others by label set (or all by label set), and
// the worst state decides: stale over failed over ok; nothing at all is stale with a max age.
func TestGroups(t *testing.T) {
	now := time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)
	prod := map[string]string{"env": "prod"}
	es := []catalog.Entry{
		entry(catalog.GenerateName("nightly", now.Add(-30*time.Hour), 1), catalog.Completed, now.Add(-30*time.Hour), prod),
		entry(catalog.GenerateName("hourly", now.Add(-time.Hour), 1), catalog.Completed, now.Add(-time.Hour), prod),
		entry("manual", catalog.Failed, now.Add(-30*time.Minute), prod),
		entry("other", catalog.Completed, now.Add(-2*time.Hour), nil),
	}
	r := Summarize("mem://", es, Options{Now: now, MaxAge: 26 * time.Hour})
	got := map[string]State{}
	for _, g := range r.Groups {
		got[g.Group] = g.State
	}
	want := map[string]State{"nightly": Stale, "hourly": OK, "labels env=prod": Stale, "labels -": OK}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s, want %s (%v)", k, got[k], v, got)
		}
	}
	if r.Worst() != Stale {
		t.Errorf("worst: %s", r.Worst())
	}
	r = Summarize("mem://", es, Options{Now: now, GroupBy: ByLabels})
	if len(r.Groups) != 2 || r.Groups[1].Group != "labels env=prod" || r.Groups[1].Backups != 3 || r.Groups[1].State != Failed || r.Worst() != Failed {
		t.Errorf("by labels: %+v", r.Groups)
	}
	if (&Report{MaxAge: time.Hour}).Worst() != Stale || (&Report{}).Worst() != OK {
		t.Error("an empty report: stale with a max age, ok without")
	}
}
