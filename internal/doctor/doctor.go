// Package doctor checks, before the first backup, that backups and restores can work on a
// cluster: the snapshot API and controller, a VolumeSnapshotClass per CSI driver, the caller's
// rights, the backup location (reachable, writable, the password opens its repositories), Pod
// Security and quotas against the mover pod the plugin would create, and, in a live probe, a
// snapshot and a restore per StorageClass with a real mover. Each check is a named Step that
// returns results (check, ok/warn/fail, detail, what to do); create and restore run a subset as
// their preflight.
package doctor

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// Status is a check's verdict.
type Status string

// Verdicts, from best to worst.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

func (s Status) rank() int {
	switch s {
	case Warn:
		return 1
	case Fail:
		return 2
	}
	return 0
}

// Result is one line of the report.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	// Fix says what to do when Status is not OK.
	Fix string `json:"fix,omitempty"`
	// Grant is the RBAC manifest that gives the rights a rights check found missing, ready for
	// kubectl apply -f.
	Grant   string  `json:"grant,omitempty"`
	Seconds float64 `json:"seconds"`
}

func ok(check, detail string) Result { return Result{Check: check, Status: OK, Detail: detail} }
func warn(check, detail, fix string) Result {
	return Result{Check: check, Status: Warn, Detail: detail, Fix: fix}
}
func fail(check, detail, fix string) Result {
	return Result{Check: check, Status: Fail, Detail: detail, Fix: fix}
}

// Report is every result, in the order of the steps, and the worst verdict.
type Report struct {
	Status  Status   `json:"status"`
	Checks  []Result `json:"checks"`
	Seconds float64  `json:"seconds"`
}

// Problems are the results that are not OK, failures first.
func (r *Report) Problems() []Result {
	var out []Result
	for _, s := range []Status{Fail, Warn} {
		for _, c := range r.Checks {
			if c.Status == s {
				out = append(out, c)
			}
		}
	}
	return out
}

// Summary names the failed checks (or, without failures, the warned ones) in one line.
func (r *Report) Summary() string {
	var parts []string
	for _, c := range r.Problems() {
		if c.Status != r.Status {
			continue
		}
		s := c.Check + ": " + c.Detail
		if c.Fix != "" {
			s += " (" + c.Fix + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// Deps are the doctor's connections to the cluster and the location.
type Deps struct {
	Kube      kubernetes.Interface
	Snap      snapclient.Interface
	Discovery discovery.DiscoveryInterface
	// Dynamic reads VolumeGroupSnapshotClasses (nil: not read).
	Dynamic dynamic.Interface
	// OpenLocation opens the backup location as the plugin reaches it (store.Open by default).
	OpenLocation func(ctx context.Context, url string) (*store.Location, error)
	// Keys unwraps the location's key with the user's password (the CLI's locationKeys, which
	// loads the password only when asked) and returns the key of a namespace's repository. Its
	// errors: password.ErrMissing, keyring.ErrNoKey, ErrWrongPassword, ErrOldFormat (wrapped).
	// nil: the key and the repositories are not checked.
	Keys func(ctx context.Context, loc *store.Location) (repoKey func(namespace string) (string, error), err error)
	// OpenRepository opens a namespace's existing repository with its key and closes it: the
	// error says why it cannot be opened (repo.Service.Check in the plugin).
	OpenRepository func(ctx context.Context, location, namespace, key string) error
	// Progress receives a line per probe step as it starts (may be nil).
	Progress func(msg string)
	Now      func() time.Time
}

// Config is what to check.
type Config struct {
	// Namespaces are those in scope: rights, Pod Security and quotas are checked in each.
	Namespaces []string
	// AllNamespaces checks rights at cluster scope (a backup of every namespace).
	AllNamespaces bool
	// ListNamespaces: the namespaces are chosen by pattern, which needs the right to list them.
	ListNamespaces bool
	// StorageClasses to check (and probe); empty: the classes of the PVCs in scope and the default.
	StorageClasses  []string
	SnapshotClasses []string // --snapshot-class
	Mode            volumes.Mode
	// Location is the backup location as the plugin reaches it ("" skips the location checks).
	Location string
	// Mover is the mover configuration create would use (its Location as pods reach it). The
	// probe's movers get the probe namespace's key (from Deps.Keys, once the location check opened
	// it) in their Secret, like a backup's movers; never the password.
	Mover volumes.MoverConfig
	// MoverErr is why no mover can be configured (a file:// location, say): reported, not fatal.
	MoverErr error
	// MoverOp is the mover checked against admission: "backup" (default) or "restore".
	MoverOp string
	// Commands whose rights are checked: "create", "restore" (default both).
	Commands []string
	// Resources, when not nil, are the namespaced resource types a backup lists ("secrets",
	// "deployments.apps"): the list rights of Rights are checked for these only (create's plan).
	Resources []string
	// Probe runs the live probe per StorageClass.
	Probe bool
	// Timeout bounds each probe step.
	Timeout time.Duration
	// ProbeSize is the size of the probe's PVC.
	ProbeSize string

	// repoKey is set by the location check once Deps.Keys opened the location's key.
	repoKey func(namespace string) (string, error)
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = volumes.ModeAuto
	}
	if len(c.Commands) == 0 {
		c.Commands = []string{"create", "restore"}
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.MoverOp == "" {
		c.MoverOp = "backup"
	}
	if c.ProbeSize == "" {
		c.ProbeSize = "1Gi"
	}
	c.Mover.Defaults()
}

// Step is one named check; it returns one result or more (per namespace, per class...).
type Step struct {
	Name string
	Run  func(ctx context.Context, d *Deps, cfg *Config) []Result
}

// StaticSteps are the checks that create nothing in the cluster.
func StaticSteps() []Step {
	return []Step{
		{"snapshot API", checkSnapshotAPI},
		{"snapshot controller", checkSnapshotController},
		{"storage", checkStorage},
		{"rights", checkRights},
		{"location", checkLocation},
		{"mover service account", checkServiceAccount},
		{"mover admission", checkAdmission},
		{"mover scheduling", checkScheduling},
		{"volume topology", checkTopology},
		{"schedules", checkSchedules},
	}
}

// Run runs the steps at the same time (each result timed by its step), then, when cfg.Probe and
// no static check failed for a class, the live probe of each StorageClass.
func Run(ctx context.Context, d Deps, cfg Config, steps []Step) *Report {
	cfg.defaults()
	if d.OpenLocation == nil {
		d.OpenLocation = store.Open
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	start := time.Now()
	out := make([][]Result, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			res := s.Run(ctx, &d, &cfg)
			took := time.Since(t0).Seconds()
			for j := range res {
				if res[j].Seconds == 0 {
					res[j].Seconds = took
				}
			}
			out[i] = res
		}()
	}
	wg.Wait()
	r := &Report{Status: OK}
	for _, res := range out {
		r.Checks = append(r.Checks, res...)
	}
	if cfg.Probe && ctx.Err() == nil {
		r.Checks = append(r.Checks, probe(ctx, &d, &cfg, failedClasses(r.Checks))...)
	}
	for _, c := range r.Checks {
		if c.Status.rank() > r.Status.rank() {
			r.Status = c.Status
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r
}

// failedClasses are the StorageClasses whose static check failed: probing them would only wait
// for a timeout to say the same.
func failedClasses(rs []Result) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		if r.Status == Fail && strings.HasPrefix(r.Check, storageClassCheck) {
			out[strings.TrimPrefix(r.Check, storageClassCheck)] = r.Detail
		}
	}
	return out
}

// forEach runs fn for every item, n at a time, and returns the results in the items' order.
func forEach[T any](items []T, n int, fn func(T) []Result) []Result {
	out := make([][]Result, len(items))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = fn(it)
		}()
	}
	wg.Wait()
	var all []Result
	for _, r := range out {
		all = append(all, r...)
	}
	return all
}

func namespaceScope(cfg *Config) string {
	if cfg.AllNamespaces {
		return "all namespaces"
	}
	return fmt.Sprintf("namespaces %s", strings.Join(cfg.Namespaces, ", "))
}
