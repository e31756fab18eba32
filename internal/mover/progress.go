package mover

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopia/kopia/snapshot/upload"
)

// counters are what progress events report; updated from Kopia's worker goroutines.
type counters struct {
	files, bytes, hashed, uploaded, cached atomic.Int64
	totalFiles, totalBytes                 atomic.Int64
	errCount                               atomic.Int64

	mu     sync.Mutex
	errors []FileError // the first MaxErrorEvents
}

func (c *counters) addError(sink Sink, op, path string, err error) {
	n := c.errCount.Add(1)
	if n > MaxErrorEvents {
		return
	}
	fe := FileError{Path: path, Message: oneLine(err.Error())}
	c.mu.Lock()
	c.errors = append(c.errors, fe)
	c.mu.Unlock()
	sink(Event{Time: time.Now().UTC(), Event: EventError, Op: op, Path: fe.Path, Message: fe.Message})
}

func (c *counters) fileErrors() []FileError {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]FileError(nil), c.errors...)
}

// ticker emits a progress event every ProgressInterval until stop is called; stop emits a last one.
func (c *counters) ticker(ctx context.Context, sink Sink, op string, uc uploadCounter) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	lastBytes, lastTime := int64(0), time.Now()
	emit := func() {
		now := time.Now()
		b := c.bytes.Load()
		if uc != nil {
			c.uploaded.Store(uc.UploadedBytes())
		}
		rate := 0.0
		if dt := now.Sub(lastTime).Seconds(); dt > 0 {
			rate = float64(b-lastBytes) / dt
		}
		lastBytes, lastTime = b, now
		sink(Event{
			Time: now.UTC(), Event: EventProgress, Op: op,
			Files: c.files.Load(), Bytes: b, HashedBytes: c.hashed.Load(), UploadedBytes: c.uploaded.Load(),
			CachedFiles: c.cached.Load(), TotalFiles: c.totalFiles.Load(), TotalBytes: c.totalBytes.Load(),
			BytesPerSecond: rate, Errors: c.errCount.Load(),
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				emit()
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		emit()
	}
}

// uploadProgress feeds Kopia's uploader callbacks into counters.
type uploadProgress struct {
	upload.NullUploadProgress
	c    *counters
	sink Sink
}

func newUploadProgress(c *counters, sink Sink) *uploadProgress {
	return &uploadProgress{c: c, sink: sink}
}

// uploadCounter is implemented by *repo.Repository: bytes written to the bucket.
type uploadCounter interface{ UploadedBytes() int64 }

func (p *uploadProgress) Enabled() bool { return true }

func (p *uploadProgress) EstimationParameters() upload.EstimationParameters {
	return upload.EstimationParameters{Type: upload.EstimationTypeClassic}
}

func (p *uploadProgress) EstimatedDataSize(files, bytes int64) {
	p.c.totalFiles.Store(files)
	p.c.totalBytes.Store(bytes)
}

func (p *uploadProgress) CachedFile(_ string, size int64) {
	p.c.cached.Add(1)
	p.c.files.Add(1)
	p.c.bytes.Add(size)
}

func (p *uploadProgress) FinishedHashingFile(string, int64) { p.c.files.Add(1) }

// HashedBytes counts changed data as it is read, so Bytes moves smoothly through big files.
func (p *uploadProgress) HashedBytes(n int64) {
	p.c.hashed.Add(n)
	p.c.bytes.Add(n)
}

func (p *uploadProgress) Error(path string, err error, _ bool) {
	p.c.addError(p.sink, OpBackup, path, err)
}
