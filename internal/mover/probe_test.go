package mover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	ctx := context.Background()
	vol, bucket := t.TempDir(), t.TempDir()
	s := Settings{Location: "file://" + bucket, Namespace: "probe-ns"}
	var events []Event
	sink := func(e Event) { events = append(events, e) }
	res, err := RunProbe(ctx, s, ProbeConfig{Target: vol, Token: "tok-1"}, sink)
	if err != nil || !res.OK || res.Op != OpProbe {
		t.Fatalf("write: %+v, %v", res, err)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, ProbeFile)); string(b) != "tok-1\n" {
		t.Errorf("probe file holds %q", b)
	}
	if len(events) != 1 || events[0].Event != EventResult {
		t.Errorf("events %+v, want the result", events)
	}
	if _, err := RunProbe(ctx, s, ProbeConfig{Target: vol, Token: "tok-1", Verify: true}, sink); err != nil {
		t.Errorf("verify the same token: %v", err)
	}
	if _, err := RunProbe(ctx, s, ProbeConfig{Target: vol, Token: "tok-2", Verify: true}, sink); err == nil || !strings.Contains(err.Error(), `holds "tok-1"`) {
		t.Errorf("verify another token: %v", err)
	}
	if _, err := RunProbe(ctx, s, ProbeConfig{Target: t.TempDir(), Token: "tok-1", Verify: true}, sink); err == nil || !strings.Contains(err.Error(), "read back") {
		t.Errorf("verify an empty volume: %v", err)
	}
	// fileblob leaves the marker's (empty) directory behind: it shows where the marker went.
	if _, err := os.Stat(filepath.Join(bucket, "kopia", "probe-ns", ".pvbackup-doctor")); err != nil {
		t.Errorf("the marker was not written below the namespace's repository prefix: %v", err)
	}
	if _, err := os.Stat(filepath.Join(bucket, ".pvbackup-doctor")); err == nil {
		t.Error("the probe wrote outside the namespace's repository prefix")
	}
	unreachable := Settings{Namespace: "probe-ns", Location: "s3://bucket?endpoint=http://127.0.0.1:1&region=us-east-1&use_path_style=true&disable_https=true"}
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	res, err = RunProbe(ctx, unreachable, ProbeConfig{Target: vol, Token: "tok-1"}, sink)
	if err == nil || !strings.Contains(res.Error, "from inside the cluster") || !strings.Contains(res.Error, "not reachable") {
		t.Errorf("an unreachable location: %+v, %v", res, err)
	}
}
