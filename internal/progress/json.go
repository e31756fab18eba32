package progress

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// JSON writes one JSON object per event to w, for `-o json` runs that still want progress.
type JSON struct {
	mu  sync.Mutex
	ctx context.Context
	enc *json.Encoder
	now func() time.Time
}

// NewJSON reports to w as JSON lines; ctx as for NewText.
func NewJSON(ctx context.Context, w io.Writer) *JSON {
	return &JSON{ctx: ctx, enc: json.NewEncoder(w), now: time.Now}
}

type event struct {
	Time   time.Time `json:"time"`
	Event  string    `json:"event"`
	Phase  string    `json:"phase,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Error  string    `json:"error,omitempty"`
}

func (j *JSON) emit(v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e, ok := v.(event); ok {
		e.Time = j.now().UTC()
		v = e
	}
	_ = j.enc.Encode(v) // progress is best effort: a closed stderr does not stop the work
}

// Start implements Reporter.
func (j *JSON) Start(phase string) func(string, error) {
	j.emit(event{Event: "start", Phase: phase})
	return func(detail string, err error) {
		e := event{Event: "done", Phase: phase, Detail: detail}
		if err != nil {
			e.Event, e.Error = "failed", Reason(j.ctx, err.Error())
		}
		j.emit(e)
	}
}

// Warn implements Reporter.
func (j *JSON) Warn(msg string) { j.emit(event{Event: "warning", Detail: msg}) }

// Show implements Meter: record, as it is (nothing when nil).
func (j *JSON) Show(_ *Transfer, record any) {
	if record != nil {
		j.emit(record)
	}
}
