package catalog

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Generated names (create --generate-name PREFIX, kubectl's word) are PREFIX-YYYYMMDD-HHMMSS in
// UTC: they sort by time within a prefix, are valid backup names, and say when the run started.
// Two runs of one prefix in the same second get -2, -3, ... after the time (still sorted: the
// shorter name first).
const generatedLayout = "20060102-150405"

// MaxGenerateAttempts bounds the names one run tries before giving up: that many runs of one
// prefix in the same second is a loop gone wrong, not a schedule.
const MaxGenerateAttempts = 9

// generatedSuffixLen is "-" + the time + at most "-9".
const generatedSuffixLen = 1 + len(generatedLayout) + 2

var generatedRE = regexp.MustCompile(`^(.+)-(\d{8}-\d{6})(?:-([2-9]))?$`)

// ValidatePrefix checks that every name generated from prefix is a valid backup name.
func ValidatePrefix(prefix string) error {
	if len(prefix) > 63-generatedSuffixLen {
		return fmt.Errorf("--generate-name %q: at most %d characters (the name adds -YYYYMMDD-HHMMSS)", prefix, 63-generatedSuffixLen)
	}
	if err := ValidateName(prefix + "-" + time.Time{}.Format(generatedLayout) + "-9"); err != nil || ValidateName(prefix) != nil {
		return fmt.Errorf("--generate-name %q is not valid: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", prefix)
	}
	return nil
}

// GenerateName is the name of the attempt-th try (1 first) of a run of prefix started at t.
func GenerateName(prefix string, t time.Time, attempt int) string {
	name := prefix + "-" + t.UTC().Format(generatedLayout)
	if attempt > 1 {
		name += "-" + strconv.Itoa(attempt)
	}
	return name
}

// ParseGenerated splits a generated name into its prefix and time; ok is false for any other
// name (one chosen by hand).
func ParseGenerated(name string) (prefix string, t time.Time, ok bool) {
	m := generatedRE.FindStringSubmatch(name)
	if m == nil {
		return "", time.Time{}, false
	}
	t, err := time.Parse(generatedLayout, m[2])
	if err != nil {
		return "", time.Time{}, false
	}
	return m[1], t, true
}

// ClaimGenerated claims the first free name of prefix for a run started at cl.StartTime: a name
// in use (by a finished backup or another run) is never written over, the next one is tried.
func (c *Catalog) ClaimGenerated(ctx context.Context, prefix string, cl *Claim) (string, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return "", err
	}
	for attempt := 1; attempt <= MaxGenerateAttempts; attempt++ {
		name := GenerateName(prefix, cl.StartTime, attempt)
		err := c.Claim(ctx, name, cl)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, ErrExists) {
			return "", err
		}
	}
	return "", fmt.Errorf("--generate-name %s: %d names of the second %s are taken in %s (is a loop starting runs?): %w",
		prefix, MaxGenerateAttempts, cl.StartTime.UTC().Format(time.RFC3339), c.loc, ErrExists)
}
