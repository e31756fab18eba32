package repo

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	kblob "github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/throttling"
)

// Limits bound the bytes per second a repository's storage uploads and downloads (0 = no bound),
// through Kopia's throttling (the token buckets of `kopia repository throttle`).
type Limits struct {
	UploadBytesPerSecond   float64
	DownloadBytesPerSecond float64
}

func (l Limits) zero() bool { return l.UploadBytesPerSecond == 0 && l.DownloadBytesPerSecond == 0 }

// throttleWindow is how many seconds of a limit its bucket holds: Kopia's CLI uses 60 s with a
// 10% initial fill, which lets 6 s of data (120 MiB at 20 MiB/s) go at full speed first and then
// bursts of up to a minute's after a pause. Ours start empty and hold 1 s, or, at low limits, the
// 20 MB Kopia's throttling takes ahead for a read of unknown length (index and metadata blobs;
// it gives back what was not read): with less, every such read would wait 20 MB's time.
func throttleWindow(l Limits) time.Duration {
	least := math.MaxFloat64
	for _, r := range []float64{l.UploadBytesPerSecond, l.DownloadBytesPerSecond} {
		if r > 0 {
			least = min(least, r)
		}
	}
	return max(time.Second, time.Duration(float64(unknownReadBytes)/least*float64(time.Second)))
}

// unknownReadBytes is what Kopia's throttling takes ahead for a read of unknown length.
const unknownReadBytes = 20_000_000

// throttled wraps st in Kopia's throttling storage for limits (st itself when there are none).
func throttled(st kblob.Storage, l Limits) (kblob.Storage, error) {
	if l.zero() {
		return st, nil
	}
	t, err := throttling.NewThrottler(throttling.Limits{
		UploadBytesPerSecond:   l.UploadBytesPerSecond,
		DownloadBytesPerSecond: l.DownloadBytesPerSecond,
	}, throttleWindow(l), 0)
	if err != nil {
		return nil, fmt.Errorf("bandwidth limit: %w", err)
	}
	return throttling.NewWrapper(st, t), nil
}

// Units of a rate, by their case-insensitive names: decimal (k, M, G) and binary (Ki, Mi, Gi).
var rateUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20, "gi": 1 << 30, "gib": 1 << 30,
}

// minRate is the least limit accepted: below 1 KiB/s a 20 MiB pack would take hours.
const minRate = 1 << 10

// ParseRate reads a bandwidth limit in bytes per second: a number, a unit (B, KB, MB, GB,
// KiB, MiB, GiB; case-insensitive) and an optional "/s": "20MiB/s", "500KB", "1.5GiB/s",
// "1048576". "" and "0" mean no limit.
func ParseRate(s string) (float64, error) {
	in := strings.TrimSpace(s)
	if in == "" || in == "0" {
		return 0, nil
	}
	body := strings.TrimSuffix(strings.TrimSuffix(in, "/s"), "ps")
	i := strings.IndexFunc(body, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(body)
	}
	num, unit := body[:i], strings.ToLower(strings.TrimSpace(body[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("rate %q: not a number of bytes per second (e.g. 20MiB/s, 500KB/s)", s)
	}
	mult, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("rate %q: unknown unit %q (use B, KB, MB, GB, KiB, MiB or GiB, optionally with /s)", s, body[i:])
	}
	r := v * mult
	if math.IsInf(r, 0) || r > 1<<50 {
		return 0, fmt.Errorf("rate %q: too large", s)
	}
	if r != 0 && r < minRate {
		return 0, fmt.Errorf("rate %q: below the least limit of 1KiB/s (0 means no limit)", s)
	}
	return math.Round(r), nil
}

// Throttle bounds a stream of bytes read from one store and written to another (copy), with
// Kopia's token buckets: every byte read counts against the download limit and again against the
// upload limit, so the stream goes at the lower of the two. The buckets start empty and hold one
// second of their limit (a copy's reads have known lengths). A nil Throttle bounds nothing.
type Throttle struct{ t throttling.SettableThrottler }

// NewThrottle is a Throttle for l; nil when l has no limits.
func NewThrottle(l Limits) (*Throttle, error) {
	if l.zero() {
		return nil, nil
	}
	t, err := throttling.NewThrottler(throttling.Limits{
		UploadBytesPerSecond:   l.UploadBytesPerSecond,
		DownloadBytesPerSecond: l.DownloadBytesPerSecond,
	}, time.Second, 0)
	if err != nil {
		return nil, fmt.Errorf("bandwidth limit: %w", err)
	}
	return &Throttle{t: t}, nil
}

// Reader is r, each read of it waiting for its bytes' tokens (r itself for a nil Throttle).
func (t *Throttle) Reader(ctx context.Context, r io.Reader) io.Reader {
	if t == nil {
		return r
	}
	return &throttledReader{ctx: ctx, r: r, t: t.t}
}

type throttledReader struct {
	ctx context.Context
	r   io.Reader
	t   throttling.SettableThrottler
}

func (r *throttledReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.BeforeDownload(r.ctx, int64(n))
		r.t.BeforeUpload(r.ctx, int64(n))
		if err == nil {
			err = r.ctx.Err() // the wait ends early when ctx is cancelled
		}
	}
	return n, err
}
