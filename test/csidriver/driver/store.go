package driver

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// volume is one directory-backed volume. Its data lives in <data-dir>/volumes/<ID>.
type volume struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Capacity int64  `json:"capacity"`
	// SourceSnapshotID or SourceVolumeID name the content source the volume was created from, if any.
	SourceSnapshotID string    `json:"sourceSnapshotID,omitempty"`
	SourceVolumeID   string    `json:"sourceVolumeID,omitempty"`
	Created          time.Time `json:"created"`
	// Zone (zonal drivers) or Node (local drivers) is where the volume lives.
	Zone string `json:"zone,omitempty"`
	Node string `json:"node,omitempty"`
	// Attached maps a node ID to whether the volume is attached there read-only (zonal drivers:
	// ControllerPublishVolume).
	Attached map[string]bool `json:"attached,omitempty"`
	// Published maps a target path to whether it is mounted read-only.
	Published map[string]bool `json:"published,omitempty"`
}

// snapshot is a point-in-time copy of a volume, kept as a tar file in <data-dir>/snapshots/<ID>.tar,
// independent of its source volume: deleting the source keeps the snapshot usable.
type snapshot struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	SourceVolumeID string `json:"sourceVolumeID"`
	// Node is where the snapshot exists (local drivers): volumes from it can be made there only.
	Node    string    `json:"node,omitempty"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	// ReadyAt is when the snapshot reports ready_to_use (Created + the readyDelay parameter).
	ReadyAt time.Time `json:"readyAt"`
}

func (s *snapshot) ready(now time.Time) bool { return !now.Before(s.ReadyAt) }

// state is everything the driver knows, saved as JSON after every change so a restarted
// driver keeps its volumes and snapshots.
type state struct {
	Volumes   map[string]*volume   `json:"volumes"`
	Snapshots map[string]*snapshot `json:"snapshots"`
}

func (d *Driver) statePath() string           { return filepath.Join(d.cfg.DataDir, "state.json") }
func (d *Driver) volumePath(id string) string { return filepath.Join(d.cfg.DataDir, "volumes", id) }
func (d *Driver) snapshotPath(id string) string {
	return filepath.Join(d.cfg.DataDir, "snapshots", id+".tar")
}

func (d *Driver) loadState() error {
	d.st = state{Volumes: map[string]*volume{}, Snapshots: map[string]*snapshot{}}
	for _, dir := range []string{"volumes", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(d.cfg.DataDir, dir), 0o700); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(d.statePath())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &d.st); err != nil {
		return fmt.Errorf("read %s: %w", d.statePath(), err)
	}
	if d.st.Volumes == nil {
		d.st.Volumes = map[string]*volume{}
	}
	if d.st.Snapshots == nil {
		d.st.Snapshots = map[string]*snapshot{}
	}
	return nil
}

// saveState writes the state atomically (temp file + rename). Callers hold d.mu.
func (d *Driver) saveState() error {
	b, err := json.MarshalIndent(&d.st, "", "  ")
	if err != nil {
		return err
	}
	tmp := d.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, d.statePath())
}

// usedCapacity is the sum of the capacities of all volumes. Callers hold d.mu.
func (d *Driver) usedCapacity() int64 {
	var n int64
	for _, v := range d.st.Volumes {
		n += v.Capacity
	}
	return n
}

func newID(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}
