package catalog

import (
	"encoding/json"
	"path"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzParseManifest: any backup.json a bucket holds parses to a manifest or an error that says
// Unreadable or NewerFormat, never a panic; what parses, written back, parses the same.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"formatVersion": 1, "name": "b", "status": "Completed", "volumes": [{"namespace": "shop", "pvc": "data", "kopiaSnapshot": "k1"}]}`))
	f.Add([]byte(`{"formatVersion": 99}`))
	f.Add([]byte(`{"formatVersion": 0}`))
	f.Add([]byte(`{"formatVersion": 1, "startTime": "not a time"}`))
	f.Add([]byte(`{"formatVersion": 1e400}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest("b", data)
		if err != nil {
			if !strings.Contains(err.Error(), ErrUnreadable.Error()) && !strings.Contains(err.Error(), ErrNewerFormat.Error()) {
				t.Fatalf("error is neither Unreadable nor NewerFormat: %v", err)
			}
			return
		}
		if m.FormatVersion < 1 || m.FormatVersion > FormatVersion {
			t.Fatalf("format version %d accepted", m.FormatVersion)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		m2, err := ParseManifest("b", b)
		if err != nil {
			t.Fatalf("a parsed manifest, written back, does not parse: %v", err)
		}
		b2, _ := json.Marshal(m2)
		if string(b) != string(b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b, b2)
		}
	})
}

// FuzzValidateName: a valid name is a safe single path segment and a valid label value (it
// labels every temporary object of the backup).
func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"nightly-2026.11.25", "a", "Nightly", "../x", "a/b", "-a", "", "a..b", "a.-b", strings.Repeat("a", 63), strings.Repeat("a", 64), "a\x00b", "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateName(name) != nil {
			return
		}
		if errs := validation.IsValidLabelValue(name); len(errs) > 0 {
			t.Fatalf("valid name %q is not a label value: %v", name, errs)
		}
		if name == "" || strings.ContainsAny(name, "/\\") || strings.Contains(name, "..") || path.Clean(Key(name, ManifestFile)) != Key(name, ManifestFile) {
			t.Fatalf("valid name %q is not a safe path segment", name)
		}
	})
}
