package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/lease"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/metrics"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// textfile parses a --prometheus file with the Prometheus text parser and returns each gauge
// with its labels.
func textfile(t *testing.T, path string) map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams, err := metrics.Parse(f)
	if err != nil {
		t.Fatalf("%s does not parse: %v", path, err)
	}
	out := map[string]float64{}
	for name, mf := range fams {
		if mf.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %s", name, mf.GetType())
		}
		for _, m := range mf.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[name+"{"+strings.Join(labels, ",")+"}"] = m.Gauge.GetValue()
		}
	}
	return out
}

// TestPrunePrometheus: prune --prometheus writes the run's figures; a failed run (another holds
// the lease) keeps the last success time and says exit 1.
func TestPrunePrometheus(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	loc := "file://" + t.TempDir()
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Now().UTC().Truncate(time.Second)
	for _, m := range []*catalog.Manifest{
		{FormatVersion: 1, Name: "old", Status: catalog.Completed, Namespaces: []string{"shop"}, StartTime: now.Add(-2 * time.Hour), TTL: "1h0m0s", ExpiresAt: now.Add(-time.Hour)},
		{FormatVersion: 1, Name: "new", Status: catalog.Completed, Namespaces: []string{"shop"}, StartTime: now.Add(-time.Hour)},
	} {
		if err := catalog.New(l).WriteManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	prom := filepath.Join(t.TempDir(), "pvbackup-prune.prom")
	before := time.Now().Unix()
	if _, errOut, code := run(t, "prune", "--from", loc, "--prometheus", prom); code != 0 {
		t.Fatalf("prune: exit %d\n%s", code, errOut)
	}
	got := textfile(t, prom)
	const labels = "{command=prune,name=all}"
	success := got[metrics.LastSuccess+labels]
	for name, want := range map[string]float64{metrics.RunSuccess: 1, metrics.ExitCode: 0, metrics.Kept: 1, metrics.Removed: 1, metrics.RemoveFailed: 0} {
		if v, ok := got[name+labels]; !ok || v != want {
			t.Errorf("%s%s = %v (present %v), want %v\n%v", name, labels, v, ok, want, got)
		}
	}
	if success < float64(before) || got[metrics.LastRun+labels] != success {
		t.Errorf("last success %v, last run %v, want both >= %d", success, got[metrics.LastRun+labels], before)
	}

	held, err := lease.Acquire(ctx, l, "repo maintain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(ctx)
	time.Sleep(1100 * time.Millisecond) // a later second for the failed run's timestamp
	if _, _, code := run(t, "prune", "--from", loc, "--prometheus", prom); code != ExitFailed {
		t.Fatalf("prune while the lease is held: exit %d", code)
	}
	got = textfile(t, prom)
	if got[metrics.RunSuccess+labels] != 0 || got[metrics.ExitCode+labels] != 1 || got[metrics.LastSuccess+labels] != success || got[metrics.LastRun+labels] <= success {
		t.Errorf("after a failed run: %v", got)
	}
}

// TestCreatePrometheusOnFailure: create --prometheus writes its metrics when it fails too (here
// the cluster cannot be reached), named by the --generate-name prefix, with the exit code.
func TestCreatePrometheusOnFailure(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	kubeconfig, _ := countingCluster(t)
	prom := filepath.Join(t.TempDir(), "pvbackup.prom")
	_, errOut, code := run(t, "create", "--generate-name", "nightly", "--to", "file://"+t.TempDir(), "--volumes", "none", "--kubeconfig", kubeconfig, "--prometheus", prom)
	if code != ExitFailed || !strings.Contains(errOut, "reach the cluster") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	got := textfile(t, prom)
	const labels = "{command=create,name=nightly}"
	if got[metrics.RunSuccess+labels] != 0 || got[metrics.ExitCode+labels] != 1 || got[metrics.Duration+labels] <= 0 {
		t.Errorf("metrics: %v", got)
	}
	if _, ok := got[metrics.LastSuccess+labels]; ok {
		t.Errorf("a last success without any success: %v", got)
	}
}
