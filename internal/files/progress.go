package files

import "github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"

// copyEvent is Copy's progress as `-o json` prints it: one line per report.
type copyEvent struct {
	Event string `json:"event"`
	CopyProgress
}

// ShowProgress shows Copy's progress through rep: one bar, or JSON lines with -o json.
func ShowProgress(rep progress.Reporter) func(CopyProgress) {
	m, ok := rep.(progress.Meter)
	if !ok {
		return nil
	}
	return func(p CopyProgress) {
		t := progress.Transfer{Files: p.Files, Skipped: p.Skipped, Bytes: p.Bytes, TotalBytes: p.TotalBytes,
			Done: p.Final}
		m.Show(&t, copyEvent{"progress", p})
	}
}
