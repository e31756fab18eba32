package cli

import (
	"fmt"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/metrics"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/prune"
)

// writeMetrics writes create's --prometheus file. A file that cannot be written is a warning:
// the backup is done, and the monitor sees its last success age.
func (o *CreateOptions) writeMetrics(start time.Time, runErr error) {
	name := o.GenerateName
	if name == "" {
		name = o.Name
	}
	r := metrics.Run{Labels: map[string]string{"command": "create", "name": name}, End: time.Now(),
		Duration: time.Since(start), ExitCode: ExitCodeOf(runErr), Values: manifestFigures(o.result)}
	if err := metrics.Write(o.Prometheus, r); err != nil {
		fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", err)
	}
}

// manifestFigures are a backup's sizes and volume counts (none when it wrote no manifest).
func manifestFigures(m *catalog.Manifest) map[string]float64 {
	if m == nil {
		return nil
	}
	bytes, uploaded, failed := m.Archive.Size, m.Archive.Size, 0
	for _, v := range m.Volumes {
		bytes += v.Bytes
		uploaded += v.UploadedBytes
		if v.Status == catalog.VolumeFailed {
			failed++
		}
	}
	return map[string]float64{metrics.Bytes: float64(bytes), metrics.UploadedBytes: float64(uploaded),
		metrics.Volumes: float64(len(m.Volumes)), metrics.VolumesFailed: float64(failed)}
}

// writeMetrics writes prune's --prometheus file, named by its backup selector.
func (o *PruneOptions) writeMetrics(start time.Time, res *prune.Result, runErr error) {
	name := o.Selector
	if name == "" {
		name = "all"
	}
	r := metrics.Run{Labels: map[string]string{"command": "prune", "name": name}, End: time.Now(),
		Duration: time.Since(start), ExitCode: ExitCodeOf(runErr)}
	if res != nil {
		kept, removed, failed := res.Counts()
		r.Values = map[string]float64{metrics.Kept: float64(kept), metrics.Removed: float64(removed), metrics.RemoveFailed: float64(failed)}
	}
	if err := metrics.Write(o.Prometheus, r); err != nil {
		fmt.Fprintf(o.streams.ErrOut, "warning: %v\n", err)
	}
}
