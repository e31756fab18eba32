package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// describe gives the volume group of each volume a field of its own: the group, the
// VolumeGroupSnapshot that cut it and its API version, or "cut alone" (DETAIL says why); -o json
// has the same fields.
func TestDescribeVolumeGroups(t *testing.T) {
	t.Setenv("PVBACKUP_PASSWORD", "")
	dir := t.TempDir()
	loc := "file://" + dir
	ctx := context.Background()
	l, err := store.Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	const group, api = "db/pvbackup.io/volume-group=pg", "groupsnapshot.storage.k8s.io/v1beta2"
	m := &catalog.Manifest{FormatVersion: 1, Name: "db-1", ToolVersion: "v0.1.0", Status: catalog.Completed,
		Selection: catalog.Selection{IncludeNamespaces: []string{"db"}}, StartTime: start, CompletionTime: start.Add(9 * time.Second),
		Namespaces: []string{"db"}, Archive: catalog.ArchiveRef{File: catalog.ResourcesFile, Size: 1024, Encrypted: "age-scrypt"},
		Volumes: []catalog.Volume{
			{Namespace: "db", PVC: "data", Mode: "snapshot-move", Status: catalog.VolumeCompleted, KopiaSnapshot: "k1", Files: 3, Bytes: 4096, UploadedBytes: 4096, Seconds: 4,
				Reason: "CSI driver dir.csi; cut with volume group " + group, VolumeGroup: group, GroupSnapshot: "pvb-group-db-1-pg-r1", GroupSnapshotAPIVersion: api},
			{Namespace: "db", PVC: "wal", Mode: "snapshot-move", Status: catalog.VolumeCompleted, KopiaSnapshot: "k2", Files: 2, Bytes: 2048, UploadedBytes: 2048, Seconds: 3,
				Reason: "CSI driver dir.csi; cut with volume group " + group, VolumeGroup: group, GroupSnapshot: "pvb-group-db-1-pg-r1", GroupSnapshotAPIVersion: api},
			{Namespace: "db", PVC: "logs", Mode: "snapshot-move", Status: catalog.VolumeCompleted, KopiaSnapshot: "k3", Files: 1, Bytes: 512, UploadedBytes: 512, Seconds: 2,
				Reason: "CSI driver other.csi; cut alone, not with group " + group + ": its driver other.csi is not the group's dir.csi", VolumeGroup: group},
			{Namespace: "db", PVC: "scratch", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: "k4", Files: 1, Bytes: 10, UploadedBytes: 10, Seconds: 1, Reason: "not a CSI volume"},
		},
	}
	if err := catalog.New(l).WriteManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "describe", "db-1", "--from", loc)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden.Assert(t, "cli/describe-groups.golden", []byte(strings.ReplaceAll(out+errOut, dir, "DIR")))

	out, errOut, code = run(t, "describe", "db-1", "--from", loc, "-o", "json")
	var got catalog.Manifest
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("describe -o json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	for i, v := range got.Volumes {
		want := m.Volumes[i]
		if v.VolumeGroup != want.VolumeGroup || v.GroupSnapshot != want.GroupSnapshot || v.GroupSnapshotAPIVersion != want.GroupSnapshotAPIVersion {
			t.Errorf("%s: group %q, group snapshot %q, API %q; want %q %q %q", v.PVC, v.VolumeGroup, v.GroupSnapshot, v.GroupSnapshotAPIVersion,
				want.VolumeGroup, want.GroupSnapshot, want.GroupSnapshotAPIVersion)
		}
	}
	if !strings.Contains(out, `"groupSnapshotAPIVersion": "`+api+`"`) {
		t.Errorf("describe -o json has no groupSnapshotAPIVersion:\n%s", out)
	}
}
