package retention

import (
	"context"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC) // a Tuesday

type backupSpec struct {
	name   string
	ago    time.Duration
	ns     []string
	status catalog.Status
	ttl    time.Duration
	labels map[string]string
	raw    string // backup.json as written, instead of a manifest (damaged, newer format)
	copyTo string // the directory the manifest is also copied into
}

// memCatalog writes the backups into a catalog in a memory bucket and lists it back, as prune does.
func memCatalog(t *testing.T, now time.Time, specs []backupSpec, incomplete ...string) []catalog.Entry {
	t.Helper()
	ctx := context.Background()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://test"))
	for _, s := range specs {
		st := s.status
		if st == "" {
			st = catalog.Completed
		}
		ns := s.ns
		if ns == nil {
			ns = []string{"shop"}
		}
		m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: s.name, Status: st, Namespaces: ns, StartTime: now.Add(-s.ago), Labels: s.labels}
		if s.ttl > 0 {
			m.TTL, m.ExpiresAt = s.ttl.String(), m.StartTime.Add(s.ttl)
		}
		if s.raw != "" {
			if err := cat.Location().Bucket().WriteAll(ctx, catalog.Key(s.name, catalog.ManifestFile), []byte(s.raw), nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := cat.WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		if s.copyTo != "" {
			if err := cat.Location().Bucket().Copy(ctx, catalog.Key(s.copyTo, catalog.ManifestFile), catalog.Key(s.name, catalog.ManifestFile), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range incomplete {
		w, err := cat.NewWriter(ctx, name, catalog.ResourcesFile, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := cat.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestDecide(t *testing.T) {
	h := time.Hour
	day := 24 * h
	daily := []backupSpec{{name: "d0", ago: 0}, {name: "d1", ago: day}, {name: "d2", ago: 2 * day}, {name: "d3", ago: 3 * day}}
	for _, tc := range []struct {
		name       string
		specs      []backupSpec
		incomplete []string
		opts       Options
		now        time.Time         // default t0
		want       map[string]string // name -> "keep|reason substring" or "remove|..."
		ignored    int
	}{
		{name: "keep-last", specs: daily, opts: Options{Policy: Policy{Last: 2}},
			want: map[string]string{"d0": "keep|keep-last 2", "d1": "keep|keep-last 2", "d2": "remove|no rule keeps it (keep the last 2)", "d3": "remove|no rule"}},
		{name: "no rule keeps everything", specs: daily, opts: Options{},
			want: map[string]string{"d0": "keep|no keep rule", "d1": "keep|", "d2": "keep|", "d3": "keep|"}},
		{name: "groups per set of namespaces", specs: []backupSpec{
			{name: "a0", ago: 0, ns: []string{"a"}}, {name: "a1", ago: h, ns: []string{"a"}},
			{name: "ab0", ago: 2 * h, ns: []string{"b", "a"}}, {name: "ab1", ago: 3 * h, ns: []string{"a", "b"}},
		}, opts: Options{Policy: Policy{Last: 1}},
			want: map[string]string{"a0": "keep|keep-last 1", "a1": "remove|", "ab0": "keep|keep-last 1", "ab1": "remove|"}},
		{name: "group-by none", specs: []backupSpec{{name: "a0", ago: 0, ns: []string{"a"}}, {name: "b0", ago: h, ns: []string{"b"}}},
			opts: Options{Policy: Policy{Last: 1}, GroupBy: GroupByNone},
			want: map[string]string{"a0": "keep|keep-last 1", "b0": "remove|"}},
		{name: "daily keeps the newest of each day and the oldest while count is left", specs: []backupSpec{
			{name: "t10", ago: 0}, {name: "t09", ago: h}, {name: "y10", ago: day}, {name: "y09", ago: day + h},
		}, opts: Options{Policy: Policy{Daily: 3}},
			want: map[string]string{"t10": "keep|daily (keep-daily 3)", "t09": "remove|", "y10": "keep|daily", "y09": "keep|daily"}},
		{name: "weekly and monthly", specs: []backupSpec{
			{name: "now", ago: 0}, {name: "lastweek", ago: 7 * day}, {name: "twoweeks", ago: 14 * day}, {name: "lastmonth", ago: 40 * day}, {name: "older", ago: 45 * day},
		}, opts: Options{Policy: Policy{Weekly: 2, Monthly: 2}},
			want: map[string]string{"now": "keep|weekly (keep-weekly 2); monthly (keep-monthly 2)", "lastweek": "keep|weekly", "twoweeks": "keep|monthly", "lastmonth": "remove|", "older": "remove|"}},
		{name: "any rule keeps", specs: daily, opts: Options{Policy: Policy{Last: 1, Within: 36 * h}},
			want: map[string]string{"d0": "keep|keep-last 1", "d1": "keep|within 36h0m0s of the newest", "d2": "remove|", "d3": "remove|"}},
		{name: "keep-within counts from the newest backup, not from now", specs: daily, now: t0.Add(30 * day), opts: Options{Policy: Policy{Within: 25 * h}},
			want: map[string]string{"d0": "keep|within", "d1": "keep|within", "d2": "remove|", "d3": "remove|"}},
		{name: "expired ttl is removed even when a rule would keep it, and takes no slot", specs: []backupSpec{
			{name: "new", ago: 2 * time.Second, ttl: time.Second}, {name: "mid", ago: h}, {name: "old", ago: 2 * h},
		}, opts: Options{Policy: Policy{Last: 2}},
			want: map[string]string{"new": "remove|ttl 1s expired at 2026-03-10T11:59:59Z", "mid": "keep|keep-last 2", "old": "keep|keep-last 2"}},
		{name: "a running ttl keeps beyond the rules", specs: []backupSpec{
			{name: "new", ago: 0}, {name: "old", ago: 10 * day, ttl: 30 * day},
		}, opts: Options{Policy: Policy{Last: 1}},
			want: map[string]string{"new": "keep|keep-last 1", "old": "keep|ttl 720h0m0s: expires 2026-03-30T12:00:00Z"}},
		{name: "ttl only", specs: []backupSpec{{name: "gone", ago: 2 * day, ttl: day}, {name: "stays", ago: 0}},
			want: map[string]string{"gone": "remove|ttl 24h0m0s expired", "stays": "keep|no keep rule"}},
		{name: "failed backups take no slot", specs: []backupSpec{
			{name: "f", ago: 0, status: catalog.Failed}, {name: "p", ago: h, status: catalog.PartiallyFailed}, {name: "c", ago: 2 * h},
		}, opts: Options{Policy: Policy{Last: 2}},
			want: map[string]string{"f": "remove|failed backup", "p": "keep|keep-last 2", "c": "keep|keep-last 2"}},
		{name: "incomplete: safety window", specs: daily[:1], incomplete: []string{"running", "running2"},
			opts: Options{Policy: Policy{Last: 1}, IncompleteAfter: h}, now: time.Now().Add(30 * time.Minute),
			want: map[string]string{"d0": "keep|", "running": "keep|a create may still be running", "running2": "keep|less than 1h0m0s"}},
		{name: "incomplete: removed after the window", specs: nil, incomplete: []string{"stale"},
			opts: Options{IncompleteAfter: h}, now: time.Now().Add(2 * h),
			want: map[string]string{"stale": "remove|an interrupted create"}},
		{name: "namespace filter: every namespace must match", specs: []backupSpec{
			{name: "a", ns: []string{"team-a"}}, {name: "ab", ns: []string{"team-a", "other"}}, {name: "b", ns: []string{"team-b"}},
		}, incomplete: []string{"stale"}, opts: Options{Policy: Policy{Last: 5}, Namespaces: selection.NamespaceFilter{Include: []string{"team-*"}}, IncompleteAfter: time.Nanosecond},
			want: map[string]string{"a": "keep|", "b": "keep|"}, ignored: 2},
		{name: "unreadable, newer or copied backups are kept, never taken for interrupted creates", specs: []backupSpec{
			{name: "newest", ago: 0}, {name: "damaged", raw: "{not json"}, {name: "newer", raw: `{"formatVersion": 99, "name": "newer"}`},
			{name: "orig", ago: day, copyTo: "copy"},
		}, opts: Options{Policy: Policy{Last: 1}}, now: time.Now().Add(30 * day),
			want: map[string]string{"newest": "keep|keep-last 1", "orig": "remove|", "damaged": "keep|backup.json", "newer": "keep|format version 99",
				"copy": `keep|its backup.json names backup "orig"`}},
		{name: "selector on labels: only the matching backups, grouped among themselves", specs: []backupSpec{
			{name: "shop-new", ago: h, labels: map[string]string{"app": "shop"}}, {name: "shop-old", ago: 2 * h, labels: map[string]string{"app": "shop"}},
			{name: "cart", ago: 3 * h, labels: map[string]string{"app": "cart"}}, {name: "none", ago: 4 * h},
		}, opts: Options{Policy: Policy{Last: 1}, Selector: labels.SelectorFromSet(labels.Set{"app": "shop"})},
			want: map[string]string{"shop-new": "keep|keep-last 1", "shop-old": "remove|"}, ignored: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			// Manifests are written relative to t0; incomplete ones get the bucket's real time.
			entries := memCatalog(t, t0, tc.specs, tc.incomplete...)
			tc.opts.Now = now
			got, ignored := Decide(entries, tc.opts)
			if ignored != tc.ignored {
				t.Errorf("ignored %d; want %d", ignored, tc.ignored)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d decisions; want %d: %+v", len(got), len(tc.want), got)
			}
			for _, d := range got {
				w, ok := tc.want[d.Name]
				if !ok {
					t.Errorf("unexpected decision for %s: %s %v", d.Name, d.Action, d.Reasons)
					continue
				}
				action, reason, _ := strings.Cut(w, "|")
				all := strings.Join(d.Reasons, "; ")
				if string(d.Action) != action || !strings.Contains(all, reason) || len(d.Reasons) == 0 {
					t.Errorf("%s: %s (%s); want %s (%q)", d.Name, d.Action, all, action, reason)
				}
			}
		})
	}
}

func TestPolicyString(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{}, "no keep rule (TTLs and incomplete backups only)"},
		{Policy{Last: 3, Daily: 7, Yearly: -1, Within: 48 * time.Hour}, "keep the last 3, 7 daily, all yearly, all within 48h0m0s of the newest"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: %q; want %q", tc.p, got, tc.want)
		}
	}
}
