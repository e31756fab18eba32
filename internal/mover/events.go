// Package mover is the in-pod engine that uploads a mounted volume into the namespace's Kopia
// repository or restores a snapshot into one. It reports progress as JSON lines (Event) and ends
// with a Result; the plugin reads both, from pod logs and the termination message, or calls the
// engine in process. Field names are a stable interface: add fields, never rename them.
package mover

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Operations.
const (
	OpBackup  = "backup"
	OpRestore = "restore"
)

// Event kinds: one JSON object per line on stdout.
const (
	EventStart    = "start"    // once, before any data moves
	EventProgress = "progress" // at most twice a second, and a last one when the work ends
	EventError    = "error"    // a file or directory that could not be read or written (first MaxErrorEvents)
	EventResult   = "result"   // once, last line; Result holds what the termination message holds
)

// MaxErrorEvents bounds the error events and the errors listed in a Result.
const MaxErrorEvents = 100

// ProgressInterval is the minimum time between two progress events.
const ProgressInterval = 500 * time.Millisecond

// Event is one line of the mover's output.
type Event struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	Op    string    `json:"op"`

	// progress: counters since the start of the operation.
	Files          int64   `json:"files,omitempty"`          // files done: hashed or found unchanged (backup), written (restore)
	Bytes          int64   `json:"bytes,omitempty"`          // bytes of those files
	HashedBytes    int64   `json:"hashedBytes,omitempty"`    // backup: bytes read and hashed (changed data)
	UploadedBytes  int64   `json:"uploadedBytes,omitempty"`  // backup: bytes written to the bucket (after dedup)
	CachedFiles    int64   `json:"cachedFiles,omitempty"`    // backup: files unchanged since the parent snapshot
	TotalFiles     int64   `json:"totalFiles,omitempty"`     // estimate (backup) or enqueued so far (restore)
	TotalBytes     int64   `json:"totalBytes,omitempty"`     // estimate (backup) or enqueued so far (restore)
	BytesPerSecond float64 `json:"bytesPerSecond,omitempty"` // current rate of Bytes
	Errors         int64   `json:"errors,omitempty"`         // errors so far

	// error
	Path    string `json:"path,omitempty"`
	Message string `json:"message,omitempty"`

	// result
	Result *Result `json:"result,omitempty"`
}

// FileError names a file that could not be read (backup) or written (restore).
type FileError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Result is the outcome of one operation: the last event, and the termination message.
type Result struct {
	Op              string  `json:"op"`
	OK              bool    `json:"ok"`
	Error           string  `json:"error,omitempty"` // one line, when !OK
	SnapshotID      string  `json:"snapshotID,omitempty"`
	ParentID        string  `json:"parentID,omitempty"` // backup: the previous snapshot of the same PVC
	Namespace       string  `json:"namespace,omitempty"`
	PVC             string  `json:"pvc,omitempty"`
	Backup          string  `json:"backup,omitempty"`
	Files           int64   `json:"files"`
	Dirs            int64   `json:"dirs"`
	Bytes           int64   `json:"bytes"`
	UploadedBytes   int64   `json:"uploadedBytes,omitempty"`
	CachedFiles     int64   `json:"cachedFiles,omitempty"`
	DurationSeconds float64 `json:"durationSeconds"`
	OpenSeconds     float64 `json:"openSeconds,omitempty"` // of which opening the repository
	ErrorCount      int64   `json:"errorCount"`
	SkippedFiles    int64   `json:"skippedFiles,omitempty"` // restore with Sync: files already equal
	// HardLinks are the paths that are hard links of another path: recorded by a backup, linked
	// again by a restore.
	HardLinks int64 `json:"hardLinks,omitempty"`
	// Warnings are what the operation did not do, without failing (more hard links than a
	// record holds).
	Warnings []string    `json:"warnings,omitempty"`
	Diff     *Diff       `json:"diff,omitempty"`   // restore with DiffOnly
	Errors   []FileError `json:"errors,omitempty"` // the first ones; ErrorCount counts all
	// Debug (mover debug only): the storage calls of the open and the slow ones, with HTTP timings.
	Debug []string `json:"debug,omitempty"`
}

// MaxResultBytes is what Kubernetes keeps of a termination message.
const MaxResultBytes = 4096

// MarshalResult encodes r in at most MaxResultBytes, dropping listed errors (never ErrorCount)
// and shortening the error line until it fits.
func MarshalResult(r *Result) []byte {
	c := *r
	for {
		b, err := json.Marshal(&c)
		if err != nil {
			return []byte(fmt.Sprintf(`{"op":%q,"ok":false,"error":"encode result: %s"}`, r.Op, err))
		}
		if len(b) <= MaxResultBytes {
			return b
		}
		switch {
		case len(c.Debug) > 0:
			c.Debug = c.Debug[:len(c.Debug)/2]
		case len(c.Errors) > 0:
			c.Errors = c.Errors[:len(c.Errors)/2]
		case len(c.Error) > 200:
			c.Error = c.Error[:200] + "..."
		default:
			return b[:0]
		}
	}
}

// WriteResult writes the result to path (the container's termination-message path); "" writes nothing.
func WriteResult(path string, r *Result) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, MarshalResult(r), 0o644); err != nil {
		return fmt.Errorf("write result to %s: %w", path, err)
	}
	return nil
}

// ParseEvent reads one line of mover output (for the plugin).
func ParseEvent(line []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(line, &e); err != nil {
		return e, fmt.Errorf("mover output line %.80q is not an event: %w", line, err)
	}
	if e.Event == "" {
		return e, errors.New("mover output line has no event kind")
	}
	return e, nil
}

// Sink receives events. JSONLines returns one that writes them to w.
type Sink func(Event)

// JSONLines writes each event as one JSON line to w; safe for concurrent use.
func JSONLines(w io.Writer) Sink {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e) // stdout going away must not stop a backup
	}
}

// oneLine keeps an error message on one line, as the termination message and logs want it.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", "; ")
}
