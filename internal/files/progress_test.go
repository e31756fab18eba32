package files

import (
	"bytes"
	"context"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// TestShowProgress: cp's -o json progress keeps its fields (the last report's mark is not one of
// them); text off a terminal is a line, the one bar's, and nothing for the last report.
func TestShowProgress(t *testing.T) {
	var b bytes.Buffer
	show := ShowProgress(progress.NewJSON(context.Background(), &b))
	show(CopyProgress{Files: 2, Skipped: 1, Bytes: 300, TotalBytes: 1000})
	show(CopyProgress{Files: 3, Skipped: 1, Bytes: 1000, TotalBytes: 1000, Final: true})
	want := `{"event":"progress","files":2,"skipped":1,"bytes":300,"totalBytes":1000}` + "\n" +
		`{"event":"progress","files":3,"skipped":1,"bytes":1000,"totalBytes":1000}` + "\n"
	if b.String() != want {
		t.Errorf("json\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	show = ShowProgress(progress.NewText(context.Background(), &b))
	show(CopyProgress{Files: 2, Skipped: 1, Bytes: 300, TotalBytes: 1000})
	show(CopyProgress{Files: 3, Skipped: 1, Bytes: 1000, TotalBytes: 1000, Final: true})
	if got, want := b.String(), "   2 files (1 complete already), 300 B of 1000 B\n"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
	if ShowProgress(progress.Discard{}) == nil {
		t.Error("Discard is a Meter")
	}
}
