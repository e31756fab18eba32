package velero

import (
	"strings"
	"testing"
)

func TestJudge(t *testing.T) {
	ok := Volume{Namespace: "shop", PVC: "data", Method: MethodFSBackup, Uploader: "kopia", SnapshotID: "0123abcd", Phase: "Completed"}
	for _, tc := range []struct {
		name   string
		edit   func(v *Volume)
		ok     bool
		reason string
	}{
		{"fs-backup kopia", func(*Volume) {}, true, ""},
		{"data mover", func(v *Volume) { v.Method, v.DataMover = MethodDataMover, "velero" }, true, ""},
		{"empty", func(v *Volume) { v.SnapshotID, v.Empty = "", true }, true, "empty"},
		{"restic", func(v *Volume) { v.Uploader = "restic" }, false, "restic"},
		{"third-party mover", func(v *Volume) { v.Method, v.DataMover = MethodDataMover, "acme" }, false, `third-party data mover "acme"`},
		{"windows", func(v *Volume) { v.Method, v.DataMover, v.NodeOS = MethodDataMover, "velero", "windows" }, false, "Windows"},
		{"csi snapshot", func(v *Volume) { v.Method, v.SnapshotHandle, v.Driver = MethodCSISnapshot, "snap-1", "ebs.csi.aws.com" }, false, "stays in the storage system"},
		{"native snapshot", func(v *Volume) { v.Method, v.SnapshotHandle = MethodNativeSnapshot, "snap-0a1" }, false, "not in the bucket"},
		{"skipped", func(v *Volume) { v.Skipped, v.SkippedReason = true, "skipped by resource policy" }, false, "did not back it up: skipped by resource policy"},
		{"failed", func(v *Volume) { v.Phase = "Failed" }, false, "ended Failed"},
		{"no snapshot", func(v *Volume) { v.SnapshotID = "" }, false, "no Kopia snapshot"},
		{"bad snapshot id", func(v *Volume) { v.SnapshotID = "../../x" }, false, "not a Kopia snapshot ID"},
		{"bad namespace", func(v *Volume) { v.Namespace = "../x" }, false, "not a namespace name"},
		{"other uploader", func(v *Volume) { v.Uploader = "rsync" }, false, `uploader "rsync"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := ok
			tc.edit(&v)
			v.judge()
			if v.Restorable != tc.ok || !strings.Contains(v.Reason, tc.reason) {
				t.Fatalf("restorable %v reason %q, want %v containing %q", v.Restorable, v.Reason, tc.ok, tc.reason)
			}
			if v.Restorable && !v.Empty && v.Repository != "kopia/shop/" {
				t.Errorf("repository %q", v.Repository)
			}
		})
	}
}
