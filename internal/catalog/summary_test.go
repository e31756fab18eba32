package catalog

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// A summary is the manifest with the fields list, retention and removal read, and those only.
func TestParseSummary(t *testing.T) {
	b, err := os.ReadFile(golden.Path("manifest.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := ParseManifest("shop-1", b)
	if err != nil {
		t.Fatal(err)
	}
	full.Volumes = append(full.Volumes, Volume{Namespace: "shop", PVC: "data", Mode: "snapshot-move", Status: VolumeCompleted, KopiaSnapshot: "k1", Reason: "dropped", Files: 3})
	full.Labels, full.TTL, full.ExpiresAt = map[string]string{"env": "prod"}, "24h0m0s", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	nb, err := json.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSummary("shop-1", nb)
	if err != nil {
		t.Fatal(err)
	}
	want := &Manifest{FormatVersion: full.FormatVersion, Name: full.Name, ToolVersion: full.ToolVersion, Status: full.Status, StartTime: full.StartTime,
		CompletionTime: full.CompletionTime, Namespaces: full.Namespaces, Items: full.Items, KeyScheme: full.KeyScheme, TTL: full.TTL, ExpiresAt: full.ExpiresAt, Labels: full.Labels}
	for _, v := range full.Volumes {
		want.Volumes = append(want.Volumes, Volume{Namespace: v.Namespace, PVC: v.PVC, Mode: v.Mode, Status: v.Status, VolumeSnapshot: v.VolumeSnapshot, KopiaSnapshot: v.KopiaSnapshot})
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("summary\n%+v\nwant\n%+v", s, want)
	}
	// The same checks as ParseManifest.
	for in, want := range map[string]error{`{"formatVersion": 99, "name": 5}`: ErrNewerFormat, `{"formatVersion": 2, "name": 5}`: ErrUnreadable, `{}`: ErrUnreadable, `[`: ErrUnreadable} {
		if _, err := ParseSummary("x", []byte(in)); !errors.Is(err, want) {
			t.Errorf("ParseSummary(%s) = %v, want %v", in, err, want)
		}
		if _, err := ParseManifest("x", []byte(in)); !errors.Is(err, want) {
			t.Errorf("ParseManifest(%s) = %v, want %v", in, err, want)
		}
	}
}
