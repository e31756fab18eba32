package catalog

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// LogEntry is one line of log.jsonl.gz.
type LogEntry struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"` // info, warning, error
	Message   string    `json:"msg"`
	Resource  string    `json:"resource,omitempty"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name,omitempty"`
}

// Log collects a backup's log, gzipped in memory (it holds one line per resource type and
// per problem, not per object), to be written with the backup.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
	gz  *gzip.Writer
	enc *json.Encoder
	now func() time.Time
}

// NewLog starts an empty log.
func NewLog() *Log {
	l := &Log{now: time.Now}
	l.gz = gzip.NewWriter(&l.buf)
	l.enc = json.NewEncoder(l.gz)
	return l
}

// Add appends an entry, stamping its time if unset.
func (l *Log) Add(e LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	_ = l.enc.Encode(e) // a bytes.Buffer does not fail
}

// Infof adds an info line.
func (l *Log) Infof(format string, args ...any) {
	l.Add(LogEntry{Level: "info", Message: fmt.Sprintf(format, args...)})
}

// Write stores the log as the backup's log.jsonl.gz.
func (c *Catalog) WriteLog(ctx context.Context, name string, l *Log) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.gz.Close(); err != nil {
		return err
	}
	if err := c.loc.WriteNew(ctx, Key(name, LogFile), l.buf.Bytes(), "application/gzip"); err != nil {
		return fmt.Errorf("write log of backup %q to %s: %w", name, c.loc, err)
	}
	return nil
}

// ReadLog returns a backup's log entries.
func (c *Catalog) ReadLog(ctx context.Context, name string) ([]LogEntry, error) {
	r, err := c.NewReader(ctx, name, LogFile)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Size() > MaxLogSize {
		return nil, tooLarge(name, LogFile, r.Size(), MaxLogSize)
	}
	return parseLog(name, io.LimitReader(r, MaxLogSize+1))
}

// parseLog decodes log.jsonl.gz, refusing more than MaxLogExpanded bytes once expanded (a small
// gzip stream can expand to gigabytes).
func parseLog(name string, r io.Reader) ([]LogEntry, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("log of backup %q is not gzip (%v): %w", name, err, ErrUnreadable)
	}
	lr := &io.LimitedReader{R: gz, N: MaxLogExpanded + 1}
	var out []LogEntry
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	tooLong := fmt.Errorf("log of backup %q expands to more than the %d bytes this tool reads: %w", name, MaxLogExpanded, ErrUnreadable)
	for sc.Scan() {
		var e LogEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if lr.N <= 0 { // the limit cut the last line
				return nil, tooLong
			}
			return nil, fmt.Errorf("log of backup %q: bad line (%v): %w", name, err, ErrUnreadable)
		}
		out = append(out, e)
	}
	if lr.N <= 0 {
		return nil, tooLong
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, fmt.Errorf("log of backup %q (%v): %w", name, err, ErrUnreadable)
	}
	return out, nil
}
