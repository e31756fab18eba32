package velero

import (
	"errors"
	"fmt"
	"strings"
)

// Refusals: a backup that cannot be restored at all. Each is wrapped with one line that says
// which backup and why.
var (
	// ErrFormat: a format version whose major number is not FormatMajor.
	ErrFormat = errors.New("unknown Velero backup format")
	// ErrPhase: a backup that did not complete (Failed, InProgress, ...).
	ErrPhase = errors.New("backup did not complete")
	// ErrPartiallyFailed: a PartiallyFailed backup, restored only when allowed.
	ErrPartiallyFailed = errors.New("backup partially failed")
)

// Refusal is a refused backup: Error is one line for the user, Unwrap the sentinel above.
type Refusal struct {
	Msg  string
	Kind error
}

func (r *Refusal) Error() string { return r.Msg }

// Unwrap returns the sentinel (ErrFormat, ErrPhase, ErrPartiallyFailed).
func (r *Refusal) Unwrap() error { return r.Kind }

func refuse(kind error, format string, args ...any) error {
	return &Refusal{Msg: fmt.Sprintf(format, args...), Kind: kind}
}

// checkFormat refuses a format this build does not read.
func checkFormat(b *Backup) error {
	major, err := b.Major()
	if err != nil {
		return err
	}
	if major != FormatMajor {
		return refuse(ErrFormat, "backup %q has Velero format %s; this build reads format %d.x only", b.Name, b.FormatVersion, FormatMajor)
	}
	return nil
}

// checkTarballFormat refuses a tarball whose metadata/version has another major version.
func checkTarballFormat(b *Backup, v string) error {
	if v == "" {
		return nil
	}
	major, _, _ := strings.Cut(v, ".")
	if major != fmt.Sprint(FormatMajor) {
		return refuse(ErrFormat, "backup %q: its tarball has Velero format %s; this build reads format %d.x only", b.Name, v, FormatMajor)
	}
	return nil
}

// CheckRestorable refuses a backup that cannot be restored: an unknown format, a phase other
// than Completed, PartiallyFailed unless allowPartial.
func (b *Backup) CheckRestorable(allowPartial bool) error {
	if err := checkFormat(b); err != nil {
		return err
	}
	switch b.Phase {
	case PhaseCompleted:
		return nil
	case PhasePartiallyFailed:
		if allowPartial {
			return nil
		}
		return refuse(ErrPartiallyFailed, "backup %q is PartiallyFailed (%s; see `kubectl pvbackup velero describe %s`): pass --allow-partially-failed to restore what it holds", b.Name, countOf(b.Errors, "error"), b.Name)
	case "":
		return refuse(ErrPhase, "backup %q has no phase: Velero never finished it", b.Name)
	default:
		reason := ""
		if b.FailureReason != "" {
			reason = " (" + b.FailureReason + ")"
		}
		return refuse(ErrPhase, "backup %q is %s%s, not Completed: nothing to restore from it", b.Name, b.Phase, reason)
	}
}

func countOf(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
