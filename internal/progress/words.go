package progress

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Bytes formats a byte count for people: "12.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Plural counts for people: "1 volume", "3 volumes", "0 directories".
func Plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Reason is msg, an error's text, as a user should read it: when ctx was cancelled with a cause
// of its own (the signal that stopped the run: "interrupted (Ctrl-C)"), Go's "context canceled"
// in it reads as that cause.
func Reason(ctx context.Context, msg string) string {
	cause := context.Cause(ctx)
	if cause == nil || errors.Is(cause, context.DeadlineExceeded) || cause.Error() == context.Canceled.Error() {
		return msg
	}
	return strings.ReplaceAll(msg, context.Canceled.Error(), cause.Error())
}

// Explain is err with its text worded as Reason words it, still matching what err matches
// (errors.Is(err, context.Canceled) stays true: the exit code does not change).
func Explain(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if msg := Reason(ctx, err.Error()); msg != err.Error() {
		return explained{err: err, msg: msg}
	}
	return err
}

type explained struct {
	err error
	msg string
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.err }
