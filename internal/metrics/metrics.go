// Package metrics writes the metrics of one run of create or prune as a node-exporter textfile
// (Prometheus text format): the file is written whole beside its target and renamed over it, so
// the collector never reads half of one. A failed run keeps the last success time of the run
// before it, read back from the file it replaces: "no success for 26 h" stays an alert that
// needs no memory in the monitor.
package metrics

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// Metric names. Every sample carries the labels of its Run (command, name).
const (
	LastRun       = "pvbackup_last_run_timestamp_seconds"
	LastSuccess   = "pvbackup_last_success_timestamp_seconds"
	RunSuccess    = "pvbackup_last_run_success"
	ExitCode      = "pvbackup_last_run_exit_code"
	Duration      = "pvbackup_last_run_duration_seconds"
	Bytes         = "pvbackup_last_run_bytes"
	UploadedBytes = "pvbackup_last_run_uploaded_bytes"
	Volumes       = "pvbackup_last_run_volumes"
	VolumesFailed = "pvbackup_last_run_volumes_failed"
	Kept          = "pvbackup_last_run_backups_kept"
	Removed       = "pvbackup_last_run_backups_removed"
	RemoveFailed  = "pvbackup_last_run_backups_failed"
)

var help = map[string]string{
	LastRun:       "When the last run ended (Unix seconds).",
	LastSuccess:   "When the last run that exited 0 ended (Unix seconds); kept from the file before when this run failed, absent if none succeeded yet.",
	RunSuccess:    "1 if the last run exited 0, else 0.",
	ExitCode:      "Exit code of the last run: 0 done, 1 failed, 2 partially failed, 130 interrupted.",
	Duration:      "How long the last run took (seconds).",
	Bytes:         "create: bytes the backup holds (resources archive and volume data).",
	UploadedBytes: "create: bytes written to the location by the last run (the archive and new volume data).",
	Volumes:       "create: volumes in the last backup.",
	VolumesFailed: "create: volumes of the last backup that failed.",
	Kept:          "prune: backups kept by the last run.",
	Removed:       "prune: backups removed by the last run.",
	RemoveFailed:  "prune: backups the last run failed to remove.",
}

// maxFile bounds the read of the file being replaced: ours are a few kilobytes.
const maxFile = 1 << 20

// Run is what one run reports.
type Run struct {
	// Labels identify the series: command ("create", "prune") and name (--generate-name's
	// prefix, the backup's name, or the location for prune).
	Labels   map[string]string
	End      time.Time
	Duration time.Duration
	ExitCode int
	// Values are the command's own figures, by metric name (Bytes, VolumesFailed, ...).
	Values map[string]float64
}

// Write replaces path with the metrics of r: a temporary file in the same directory, synced,
// then renamed over path.
func Write(path string, r Run) error {
	lastSuccess, err := previousSuccess(path, r.Labels)
	if err != nil {
		return err
	}
	if r.ExitCode == 0 {
		lastSuccess = float64(r.End.Unix())
	}
	values := map[string]float64{LastRun: float64(r.End.Unix()), Duration: r.Duration.Seconds(), ExitCode: float64(r.ExitCode), RunSuccess: 0}
	if r.ExitCode == 0 {
		values[RunSuccess] = 1
	}
	if lastSuccess > 0 {
		values[LastSuccess] = lastSuccess
	}
	for k, v := range r.Values {
		if _, ok := help[k]; !ok {
			return fmt.Errorf("metrics: unknown metric %s", k)
		}
		values[k] = v
	}
	return writeAtomic(path, families(values, r.Labels))
}

func families(values map[string]float64, labels map[string]string) []*dto.MetricFamily {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []*dto.LabelPair
	for _, k := range keys {
		pairs = append(pairs, &dto.LabelPair{Name: proto.String(k), Value: proto.String(labels[k])})
	}
	out := make([]*dto.MetricFamily, 0, len(names))
	for _, n := range names {
		out = append(out, &dto.MetricFamily{Name: proto.String(n), Help: proto.String(help[n]), Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Label: pairs, Gauge: &dto.Gauge{Value: proto.Float64(values[n])}}}})
	}
	return out
}

func writeAtomic(path string, fams []*dto.MetricFamily) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// Not *.prom: the textfile collector reads only those, and must not read this one half-written.
	f, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	for _, mf := range fams {
		if _, err := expfmt.MetricFamilyToText(f, mf); err != nil {
			return fmt.Errorf("--prometheus %s: %w", path, err)
		}
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("--prometheus %s: %w", path, err)
	}
	return nil
}

// previousSuccess is the last success time the file at path holds for these labels (0: none,
// no file, or a file that is not ours: it is replaced, not trusted).
func previousSuccess(path string, labels map[string]string) (float64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("--prometheus %s: %w", path, err)
	}
	defer f.Close()
	fams, err := Parse(io.LimitReader(f, maxFile))
	if err != nil {
		return 0, nil
	}
	mf := fams[LastSuccess]
	if mf == nil {
		return 0, nil
	}
	for _, m := range mf.Metric {
		if sameLabels(m.Label, labels) && m.Gauge != nil {
			return m.Gauge.GetValue(), nil
		}
	}
	return 0, nil
}

func sameLabels(pairs []*dto.LabelPair, labels map[string]string) bool {
	if len(pairs) != len(labels) {
		return false
	}
	for _, p := range pairs {
		if v, ok := labels[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}

// Parse reads Prometheus text format, as node-exporter's textfile collector does.
func Parse(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}
