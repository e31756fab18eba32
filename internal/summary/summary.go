// Package summary tells, per schedule, whether backups keep happening: the backups of a location
// are grouped by the prefix of their generated name (create --generate-name) or by their label
// set, and each group reports its newest Completed backup and its age, its last failure and the
// reason, and whether it is stale (no Completed backup within a maximum age). It reads catalog
// entries only; `kubectl pvbackup status` prints it and turns it into an exit code.
package summary

import (
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

// GroupBy is how backups are grouped.
type GroupBy string

// Groupings (status --group-by).
const (
	// ByPrefix groups generated names by their prefix; backups named by hand by their labels.
	ByPrefix GroupBy = "prefix"
	// ByLabels groups every backup by its label set.
	ByLabels GroupBy = "labels"
)

// State is a group's verdict.
type State string

// States, from best to worst.
const (
	OK     State = "ok"     // the newest finished backup is Completed (and, with a max age, recent)
	Failed State = "failed" // the newest finished backup failed, but a Completed one is recent enough
	Stale  State = "stale"  // no Completed backup within the max age, or none at all
)

// Options choose the groups and how they are judged.
type Options struct {
	GroupBy GroupBy
	// Prefixes keep only the groups of these --generate-name prefixes (empty: all groups).
	Prefixes []string
	// MaxAge makes a group Stale when its newest Completed backup finished longer ago (0: never).
	MaxAge time.Duration
	Now    time.Time
}

// Ref is one backup of a group.
type Ref struct {
	Name   string         `json:"name"`
	Status catalog.Status `json:"status"`
	// Time is when it finished (Completed, Failed, PartiallyFailed), or when it started (Incomplete).
	Time       time.Time `json:"time"`
	AgeSeconds float64   `json:"ageSeconds"`
	// Reason is a failure's first error, or why a backup cannot be read.
	Reason string `json:"reason,omitempty"`
}

// Group is the summary of one schedule.
type Group struct {
	Group   string            `json:"group"`
	Prefix  string            `json:"prefix,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	State   State             `json:"state"`
	Backups int               `json:"backups"`
	// Statuses counts the backups by status.
	Statuses map[catalog.Status]int `json:"statuses"`
	// LastCompleted is the newest Completed backup; its age is what MaxAge judges.
	LastCompleted *Ref `json:"lastCompleted,omitempty"`
	// LastFailure is the newest Failed or PartiallyFailed backup.
	LastFailure *Ref `json:"lastFailure,omitempty"`
	// Newest is the newest backup of any status (an Incomplete one is running, or was killed).
	Newest *Ref `json:"newest"`
}

// Report is every group, by name.
type Report struct {
	Location      string        `json:"location"`
	Time          time.Time     `json:"time"`
	MaxAge        time.Duration `json:"-"`
	MaxAgeSeconds float64       `json:"maxAgeSeconds,omitempty"`
	Groups        []Group       `json:"groups"`
}

// Worst is the worst state of the groups; with a max age, no group at all is Stale.
func (r *Report) Worst() State {
	if len(r.Groups) == 0 && r.MaxAge > 0 {
		return Stale
	}
	worst := OK
	for _, g := range r.Groups {
		if rank(g.State) > rank(worst) {
			worst = g.State
		}
	}
	return worst
}

func rank(s State) int {
	switch s {
	case Failed:
		return 1
	case Stale:
		return 2
	}
	return 0
}

// Summarize groups the entries and judges each group.
func Summarize(location string, entries []catalog.Entry, o Options) *Report {
	s := NewSummarizer(location, o)
	for _, e := range entries {
		s.Add(e)
	}
	return s.Report()
}

// Summarizer builds a Report one entry at a time (catalog.Each): what it holds grows with the
// number of groups, not of backups or of their manifests' size.
type Summarizer struct {
	location string
	o        Options
	groups   map[string]*tally
}

// tally is a group as it is being built: the newest entry of each kind and when it started.
type tally struct {
	g                                    Group
	newest, completed, failure, finished mark
}

// mark is a reference and the start time that orders it among the group's backups.
type mark struct {
	ref     *Ref
	started time.Time
}

// later reports whether a backup started at t replaces m: the newest start wins, and of equal
// starts the one added last (Each adds them by name).
func (m mark) later(t time.Time) bool { return m.ref == nil || !t.Before(m.started) }

// NewSummarizer starts a report of location.
func NewSummarizer(location string, o Options) *Summarizer {
	if o.GroupBy == "" {
		o.GroupBy = ByPrefix
	}
	return &Summarizer{location: location, o: o, groups: map[string]*tally{}}
}

// Add counts e in its group (or leaves it out when its prefix is not asked for).
func (s *Summarizer) Add(e catalog.Entry) {
	g := groupOf(e, s.o.GroupBy)
	if len(s.o.Prefixes) > 0 && !contains(s.o.Prefixes, g.Prefix) {
		return
	}
	t := s.groups[g.Group]
	if t == nil {
		g.Statuses = map[catalog.Status]int{}
		t = &tally{g: g}
		s.groups[g.Group] = t
	}
	t.g.Backups++
	t.g.Statuses[e.Status]++
	at := started(e)
	if !t.newest.later(at) && !finished(e.Status) {
		return
	}
	ref := refOf(e, s.o.Now)
	for _, m := range t.marks(e.Status) {
		if m.later(at) {
			*m = mark{ref: ref, started: at}
		}
	}
}

// marks are the references an entry of status st may become.
func (t *tally) marks(st catalog.Status) []*mark {
	switch st {
	case catalog.Completed:
		return []*mark{&t.newest, &t.completed, &t.finished}
	case catalog.Failed, catalog.PartiallyFailed:
		return []*mark{&t.newest, &t.failure, &t.finished}
	}
	return []*mark{&t.newest}
}

func finished(st catalog.Status) bool {
	return st == catalog.Completed || st == catalog.Failed || st == catalog.PartiallyFailed
}

// Report judges each group, sorted by name.
func (s *Summarizer) Report() *Report {
	r := &Report{Location: s.location, Time: s.o.Now, MaxAge: s.o.MaxAge, MaxAgeSeconds: s.o.MaxAge.Seconds(), Groups: []Group{}}
	for _, t := range s.groups {
		r.Groups = append(r.Groups, t.judge(s.o))
	}
	sort.Slice(r.Groups, func(i, j int) bool { return r.Groups[i].Group < r.Groups[j].Group })
	return r
}

// judge is the group with its references and state.
func (t *tally) judge(o Options) Group {
	g := t.g
	g.Newest, g.LastCompleted, g.LastFailure = t.newest.ref, t.completed.ref, t.failure.ref
	g.State = OK
	if t.finished.ref != nil && t.finished.ref.Status != catalog.Completed {
		g.State = Failed
	}
	if o.MaxAge > 0 && (g.LastCompleted == nil || o.Now.Sub(g.LastCompleted.Time) > o.MaxAge) {
		g.State = Stale
	}
	return g
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// groupOf is the group an entry belongs to (its Group, Prefix and Labels set, nothing else).
func groupOf(e catalog.Entry, by GroupBy) Group {
	if by == ByPrefix {
		if prefix, _, ok := catalog.ParseGenerated(e.Name); ok {
			return Group{Group: prefix, Prefix: prefix}
		}
	}
	var l map[string]string
	if e.Manifest != nil {
		l = e.Manifest.Labels
	}
	if len(l) == 0 {
		return Group{Group: "labels -"}
	}
	return Group{Group: "labels " + labels.Set(l).String(), Labels: l}
}

// started orders a group's backups: the manifest's start, else the claim's, else the time in a
// generated name, else the newest file.
func started(e catalog.Entry) time.Time {
	switch {
	case e.Manifest != nil && !e.Manifest.StartTime.IsZero():
		return e.Manifest.StartTime
	case e.Claim != nil:
		return e.Claim.StartTime
	}
	if _, t, ok := catalog.ParseGenerated(e.Name); ok {
		return t
	}
	return e.Modified
}

func refOf(e catalog.Entry, now time.Time) *Ref {
	ref := &Ref{Name: e.Name, Status: e.Status, Time: started(e), Reason: oneLine(e.Error)}
	if m := e.Manifest; m != nil {
		if !m.CompletionTime.IsZero() {
			ref.Time = m.CompletionTime
		}
		if len(m.Errors) > 0 {
			ref.Reason = oneLine(m.Errors[0])
		}
	}
	ref.AgeSeconds = now.Sub(ref.Time).Round(time.Second).Seconds()
	return ref
}

// oneLine keeps a reason short enough for a monitor's message (a manifest is untrusted input).
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:300]) + "..."
	}
	return s
}
