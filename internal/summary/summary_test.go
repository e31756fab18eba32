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

// TestAddOrder: entries come by name (catalog.Each), not by time; the newest start decides
// whatever the order, and the summarizer holds references, not the entries.
func TestAddOrder(t *testing.T) {
	now := time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)
	es := []catalog.Entry{
		entry("b-old-ok", catalog.Completed, now.Add(-3*time.Hour), nil),
		entry("a-new-failed", catalog.Failed, now.Add(-time.Hour), nil),
		entry("c-mid-ok", catalog.Completed, now.Add(-2*time.Hour), nil),
		{Name: "d-running", Status: catalog.Incomplete, Claim: &catalog.Claim{StartTime: now.Add(-time.Minute)}},
	}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}}
	for _, order := range orders {
		s := NewSummarizer("mem://", Options{Now: now, MaxAge: 26 * time.Hour})
		for _, i := range order {
			s.Add(es[i])
		}
		r := s.Report()
		if len(r.Groups) != 1 {
			t.Fatalf("%v: groups %+v", order, r.Groups)
		}
		g := r.Groups[0]
		if g.State != Failed || g.Backups != 4 || g.LastCompleted.Name != "c-mid-ok" || g.LastFailure.Name != "a-new-failed" || g.Newest.Name != "d-running" {
			t.Errorf("%v: %s, %d backups, completed %s, failure %s, newest %s", order, g.State, g.Backups, g.LastCompleted.Name, g.LastFailure.Name, g.Newest.Name)
		}
	}
}
