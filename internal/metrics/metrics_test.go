package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func read(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fams, err := Parse(f)
	if err != nil {
		t.Fatalf("the textfile does not parse: %v", err)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
	if mf.GetType() != dto.MetricType_GAUGE || len(mf.Metric) != 1 || mf.GetHelp() == "" {
		t.Fatalf("%s: type %s, %d samples, help %q", name, mf.GetType(), len(mf.Metric), mf.GetHelp())
	}
	labels := map[string]string{}
	for _, l := range mf.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["command"] != "create" || labels["name"] != `nightly "a"\b` {
		t.Fatalf("%s: labels %v", name, labels)
	}
	return mf.Metric[0].Gauge.GetValue(), true
}

// TestWriteParse: the file parses with the Prometheus text parser; a failed run keeps the last
// success of the run before it; nothing but the target is left in the directory.
func TestWriteParse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pvbackup.prom")
	labels := map[string]string{"command": "create", "name": `nightly "a"\b`} // escaped on write
	ok := Run{Labels: labels, End: time.Unix(1_700_000_000, 0), Duration: 93500 * time.Millisecond, ExitCode: 0,
		Values: map[string]float64{Bytes: 123456789, UploadedBytes: 4096, Volumes: 4, VolumesFailed: 0}}
	if err := Write(path, ok); err != nil {
		t.Fatal(err)
	}
	fams := read(t, path)
	for name, want := range map[string]float64{LastRun: 1_700_000_000, LastSuccess: 1_700_000_000, RunSuccess: 1, ExitCode: 0,
		Duration: 93.5, Bytes: 123456789, UploadedBytes: 4096, Volumes: 4, VolumesFailed: 0} {
		if got, found := value(t, fams, name); !found || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, found, want)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", st.Mode(), err)
	}

	failed := Run{Labels: labels, End: time.Unix(1_700_086_400, 0), Duration: time.Second, ExitCode: 2, Values: map[string]float64{VolumesFailed: 1}}
	if err := Write(path, failed); err != nil {
		t.Fatal(err)
	}
	fams = read(t, path)
	for name, want := range map[string]float64{LastRun: 1_700_086_400, LastSuccess: 1_700_000_000, RunSuccess: 0, ExitCode: 2, VolumesFailed: 1} {
		if got, found := value(t, fams, name); !found || got != want {
			t.Errorf("after a failure: %s = %v (present %v), want %v", name, got, found, want)
		}
	}
	if _, found := fams[Bytes]; found {
		t.Errorf("a figure of the run before is still there")
	}

	// Another series in the same file (the labels differ): its success is not taken over.
	other := failed
	other.Labels = map[string]string{"command": "create", "name": "other"}
	if err := Write(path, other); err != nil {
		t.Fatal(err)
	}
	if _, found := read(t, path)[LastSuccess]; found {
		t.Errorf("the success of another series was carried over")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
}

// TestWriteRefusesUnknownAndBadPlaces: a typo in a metric name and a directory that does not
// exist fail with the file named; a garbage file in the way is replaced.
func TestWriteRefusesUnknownAndBadPlaces(t *testing.T) {
	dir := t.TempDir()
	r := Run{Labels: map[string]string{"command": "prune"}, End: time.Now(), Values: map[string]float64{"pvbackup_typo": 1}}
	if err := Write(filepath.Join(dir, "x.prom"), r); err == nil || !strings.Contains(err.Error(), "unknown metric pvbackup_typo") {
		t.Errorf("unknown metric: %v", err)
	}
	r.Values = nil
	if err := Write(filepath.Join(dir, "missing", "x.prom"), r); err == nil || !strings.Contains(err.Error(), "--prometheus "+filepath.Join(dir, "missing", "x.prom")) {
		t.Errorf("missing directory: %v", err)
	}
	garbage := filepath.Join(dir, "g.prom")
	if err := os.WriteFile(garbage, []byte("not { prometheus"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(garbage, r); err != nil {
		t.Fatal(err)
	}
	if fams := read(t, garbage); fams[LastSuccess] == nil || fams[RunSuccess].Metric[0].Gauge.GetValue() != 1 {
		t.Errorf("after garbage: %v", fams)
	}
}
