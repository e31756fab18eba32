package catalog

import "time"

// summary is what list, prune's retention and removal read of a backup.json. Decoding into it
// skips the rest (resource counts, warnings, exclusions, the movers' details) without holding
// it: a manifest near MaxManifestSize is mostly those.
type summary struct {
	FormatVersion  int               `json:"formatVersion"`
	Name           string            `json:"name"`
	ToolVersion    string            `json:"toolVersion"`
	Status         Status            `json:"status"`
	StartTime      time.Time         `json:"startTime"`
	CompletionTime time.Time         `json:"completionTime"`
	Namespaces     []string          `json:"namespaces"`
	Items          int               `json:"items"`
	KeyScheme      string            `json:"keyScheme,omitempty"`
	TTL            string            `json:"ttl,omitempty"`
	ExpiresAt      time.Time         `json:"expiresAt,omitzero"`
	Labels         map[string]string `json:"labels,omitempty"`
	Volumes        []struct {
		Namespace      string `json:"namespace"`
		PVC            string `json:"pvc"`
		Mode           string `json:"mode"`
		Status         string `json:"status"`
		VolumeSnapshot string `json:"volumeSnapshot,omitempty"`
		KopiaSnapshot  string `json:"kopiaSnapshot,omitempty"`
		Bytes          int64  `json:"bytes,omitempty"`
	} `json:"volumes,omitempty"`
}

// ParseSummary is ParseManifest keeping only the summary's fields: name, status, times,
// namespaces, item count, labels, TTL, and of each volume its claim, mode, status, snapshots and
// bytes.
func ParseSummary(name string, b []byte) (*Manifest, error) {
	var s summary
	if err := decode(name, b, &s, &s.FormatVersion); err != nil {
		return nil, err
	}
	m := &Manifest{FormatVersion: s.FormatVersion, Name: s.Name, ToolVersion: s.ToolVersion, Status: s.Status, StartTime: s.StartTime,
		CompletionTime: s.CompletionTime, Namespaces: s.Namespaces, Items: s.Items, KeyScheme: s.KeyScheme, TTL: s.TTL, ExpiresAt: s.ExpiresAt, Labels: s.Labels}
	for _, v := range s.Volumes {
		m.Volumes = append(m.Volumes, Volume{Namespace: v.Namespace, PVC: v.PVC, Mode: v.Mode, Status: v.Status, VolumeSnapshot: v.VolumeSnapshot, KopiaSnapshot: v.KopiaSnapshot, Bytes: v.Bytes})
	}
	return m, nil
}
