// Package retention decides which backups of a location `prune` keeps and which it removes:
// restic's forget policy (keep-last/hourly/daily/weekly/monthly/yearly/within, a backup kept by
// any rule stays, one group per set of namespaces) plus each backup's own TTL, and a safety
// window for backups still being written. It only decides; package prune acts.
package retention

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// DefaultIncompleteAfter is how old a backup without backup.json must be before prune removes
// it: a create may still be writing it. Volume uploads of a large application can take hours.
const DefaultIncompleteAfter = 24 * time.Hour

// Grouping says which backups a policy counts together.
type Grouping string

// Groupings (--group-by).
const (
	GroupByNamespaces Grouping = "namespaces" // one group per set of namespaces (default)
	GroupByNone       Grouping = "none"       // the whole location is one group
)

// Policy is the keep rules. Zero values are rules not given; -1 keeps all of a kind, as restic.
type Policy struct {
	Last    int           `json:"keepLast,omitempty"`
	Hourly  int           `json:"keepHourly,omitempty"`
	Daily   int           `json:"keepDaily,omitempty"`
	Weekly  int           `json:"keepWeekly,omitempty"`
	Monthly int           `json:"keepMonthly,omitempty"`
	Yearly  int           `json:"keepYearly,omitempty"`
	Within  time.Duration `json:"keepWithin,omitempty"`
}

// Empty reports whether no rule was given: then only TTLs and incomplete backups are acted on.
func (p Policy) Empty() bool { return p == Policy{} }

// String describes the rules, for the summary line.
func (p Policy) String() string {
	var parts []string
	for _, r := range p.buckets() {
		switch {
		case r.count > 0 && r.name == "last":
			parts = append(parts, fmt.Sprintf("the last %d", r.count))
		case r.count > 0:
			parts = append(parts, fmt.Sprintf("%d %s", r.count, r.name))
		case r.count < 0:
			parts = append(parts, "all "+r.name)
		}
	}
	if p.Within > 0 {
		parts = append(parts, "all within "+p.Within.String()+" of the newest")
	}
	if len(parts) == 0 {
		return "no keep rule (TTLs and incomplete backups only)"
	}
	return "keep " + strings.Join(parts, ", ")
}

// Options are the policy and what it applies to.
type Options struct {
	Policy
	// Selector selects backups by their labels (nil or empty: all).
	Selector labels.Selector
	// Namespaces selects backups whose every namespace matches (zero value: all). Incomplete
	// backups, whose namespaces are unknown, are only considered when no filter is given.
	Namespaces selection.NamespaceFilter
	GroupBy    Grouping
	// IncompleteAfter is the safety window for backups without backup.json (0: the default).
	IncompleteAfter time.Duration
	Now             time.Time
}

// Action is what prune does with a backup.
type Action string

// Actions.
const (
	Keep   Action = "keep"
	Remove Action = "remove"
)

// Decision is the fate of one backup and the rules behind it.
type Decision struct {
	Name       string            `json:"name"`
	Group      string            `json:"group"`
	Status     catalog.Status    `json:"status"`
	Time       time.Time         `json:"time"`
	Action     Action            `json:"action"`
	Reasons    []string          `json:"reasons"`
	Namespaces []string          `json:"namespaces,omitempty"`
	Manifest   *catalog.Manifest `json:"-"`
}

// Decide applies o to the entries of a location's catalog. Entries not selected by o get no
// decision; their number is returned as ignored. Decisions come per group, newest first.
func Decide(entries []catalog.Entry, o Options) (decisions []Decision, ignored int) {
	if o.IncompleteAfter <= 0 {
		o.IncompleteAfter = DefaultIncompleteAfter
	}
	if o.GroupBy == "" {
		o.GroupBy = GroupByNamespaces
	}
	filtered := (o.Selector != nil && !o.Selector.Empty()) || !o.Namespaces.All()
	groups := map[string][]*Decision{}
	for _, e := range entries {
		if e.Manifest == nil || e.Manifest.Name != e.Name {
			if filtered {
				ignored++
				continue
			}
			decisions = append(decisions, unjudged(e, o))
			continue
		}
		if !selected(e.Manifest, o) {
			ignored++
			continue
		}
		d := &Decision{Name: e.Name, Status: e.Status, Time: e.Manifest.StartTime, Namespaces: e.Manifest.Namespaces, Manifest: e.Manifest}
		d.Group = groupKey(e.Manifest, o.GroupBy)
		groups[d.Group] = append(groups[d.Group], d)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range applyGroup(groups[k], o) {
			decisions = append(decisions, *d)
		}
	}
	return decisions, ignored
}

// unjudged decides on a backup no keep rule can judge: an incomplete one goes once it is older
// than the safety window; one whose backup.json cannot be read (damaged, written by a newer
// plugin, a failed read) or names another backup (a copied directory, whose Kopia snapshots the
// original still uses) stays: removing it could lose data only its manifest knows about.
func unjudged(e catalog.Entry, o Options) Decision {
	switch {
	case e.Status == catalog.Incomplete:
		return incomplete(e, o)
	case e.Manifest != nil:
		return Decision{Name: e.Name, Group: "(unjudged)", Status: e.Status, Time: e.Manifest.StartTime, Action: Keep,
			Reasons: []string{fmt.Sprintf("its backup.json names backup %q: a copied or moved directory; prune leaves it (kubectl pvbackup delete --force)", e.Manifest.Name)}}
	}
	return Decision{Name: e.Name, Group: "(unjudged)", Status: e.Status, Time: e.Modified, Action: Keep,
		Reasons: []string{fmt.Sprintf("%s; prune leaves it (kubectl pvbackup delete --force removes it)", e.Error)}}
}

func incomplete(e catalog.Entry, o Options) Decision {
	d := Decision{Name: e.Name, Group: "(incomplete)", Status: e.Status, Time: e.Modified}
	since := o.Now.Sub(e.Modified)
	if since < o.IncompleteAfter {
		d.Action = Keep
		d.Reasons = []string{fmt.Sprintf("incomplete, last written %s ago (less than %s): a create may still be running", since.Round(time.Minute), o.IncompleteAfter)}
		return d
	}
	d.Action = Remove
	d.Reasons = []string{fmt.Sprintf("incomplete, last written %s ago (more than %s): an interrupted create", since.Round(time.Minute), o.IncompleteAfter)}
	return d
}

func selected(m *catalog.Manifest, o Options) bool {
	if o.Selector != nil && !o.Selector.Empty() && !o.Selector.Matches(labels.Set(m.Labels)) {
		return false
	}
	if o.Namespaces.All() {
		return true
	}
	if len(m.Namespaces) == 0 {
		return false
	}
	for _, ns := range m.Namespaces {
		if !o.Namespaces.Match(ns) {
			return false // pruning it would remove data of a namespace not asked for
		}
	}
	return true
}

func groupKey(m *catalog.Manifest, g Grouping) string {
	if g == GroupByNone {
		return "(all)"
	}
	ns := append([]string(nil), m.Namespaces...)
	sort.Strings(ns)
	if len(ns) == 0 {
		return "(no namespace)"
	}
	return strings.Join(ns, ",")
}

type bucket struct {
	name  string
	count int
	key   func(t time.Time, nr int) int
}

func (p Policy) buckets() []bucket {
	return []bucket{
		{"last", p.Last, func(_ time.Time, nr int) int { return nr }},
		{"hourly", p.Hourly, func(t time.Time, _ int) int { return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour() }},
		{"daily", p.Daily, func(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }},
		{"weekly", p.Weekly, func(t time.Time, _ int) int { y, w := t.ISOWeek(); return y*100 + w }},
		{"monthly", p.Monthly, func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }},
		{"yearly", p.Yearly, func(t time.Time, _ int) int { return t.Year() }},
	}
}

// applyGroup decides one group. Expired TTLs are removed first and take no slot; Failed backups
// take no keep-* slot either (keep-last 3 must mean three backups that hold data), but stay
// within --keep-within. Then restic's rules run over the rest, newest first.
func applyGroup(group []*Decision, o Options) []*Decision {
	sort.SliceStable(group, func(i, j int) bool { return group[i].Time.After(group[j].Time) })
	var counted []*Decision
	latest := time.Time{}
	for _, d := range group {
		m := d.Manifest
		if m.Expired(o.Now) {
			d.Action = Remove
			d.Reasons = []string{fmt.Sprintf("ttl %s expired at %s", m.TTL, m.ExpiresAt.UTC().Format(time.RFC3339))}
			continue
		}
		if d.Time.After(latest) && !d.Time.After(o.Now) {
			latest = d.Time
		}
		if !m.ExpiresAt.IsZero() {
			d.Reasons = append(d.Reasons, fmt.Sprintf("ttl %s: expires %s", m.TTL, m.ExpiresAt.UTC().Format(time.RFC3339)))
		}
		if o.Policy.Empty() {
			d.Reasons = append(d.Reasons, "no keep rule given")
		}
		if d.Status != catalog.Failed {
			counted = append(counted, d)
		}
	}
	if !o.Policy.Empty() {
		applyBuckets(counted, o.Policy)
		for _, d := range group {
			if d.Action == "" && o.Within > 0 && d.Time.After(latest.Add(-o.Within)) {
				d.Reasons = append(d.Reasons, "within "+o.Within.String()+" of the newest")
			}
		}
	}
	for _, d := range group {
		if d.Action != "" {
			continue
		}
		if len(d.Reasons) > 0 {
			d.Action = Keep
			continue
		}
		d.Action = Remove
		if d.Status == catalog.Failed {
			d.Reasons = []string{"failed backup: takes no keep slot and no rule keeps it"}
		} else {
			d.Reasons = []string{"no rule keeps it (" + o.Policy.String() + ")"}
		}
	}
	return group
}

// applyBuckets is restic's ApplyPolicy for the counted rules: in each, a backup is kept when its
// period differs from the last kept one's and the rule has count left; the oldest backup is kept
// too while a rule has count left, which keeps the longest history.
func applyBuckets(list []*Decision, p Policy) {
	bs := p.buckets()
	last := make([]int, len(bs))
	for i := range last {
		last[i] = -1
	}
	for nr, d := range list {
		for i, b := range bs {
			if bs[i].count == 0 {
				continue
			}
			val := b.key(d.Time, nr)
			if val != last[i] || nr == len(list)-1 {
				last[i] = val
				if bs[i].count > 0 {
					bs[i].count--
				}
				d.Reasons = append(d.Reasons, b.name)
			}
		}
	}
	for _, d := range list {
		for i, r := range d.Reasons {
			switch r {
			case "last":
				d.Reasons[i] = fmt.Sprintf("keep-last %d", p.Last)
			case "hourly", "daily", "weekly", "monthly", "yearly":
				d.Reasons[i] = fmt.Sprintf("%s (keep-%s %d)", r, r, countOf(p, r))
			}
		}
	}
}

func countOf(p Policy, name string) int {
	for _, b := range p.buckets() {
		if b.name == name {
			return b.count
		}
	}
	return 0
}
