package volumes

import (
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/policy"
)

// TestDecidePolicy covers each policy action's mode and the precedence: the PVC annotation, then
// the first matching rule, then --volumes; the reason names what chose the mode.
func TestDecidePolicy(t *testing.T) {
	pols, err := policy.Parse([]byte(`version: v1
volumePolicies:
- conditions:
    pvcLabels: {tier: scratch}
  action:
    type: skip
- conditions:
    storageClass: [gp2]
  action:
    type: snapshot
- conditions:
    storageClass: [gp3]
  action:
    type: snapshot-move
- conditions:
    csi: {driver: ebs.csi.aws.com}
  action:
    type: fs-backup
- conditions:
    storageClass: [host]
  action:
    type: snapshot
`))
	if err != nil {
		t.Fatal(err)
	}
	facts := &Facts{
		SnapshotAPI: true,
		Classes:     []snapv1.VolumeSnapshotClass{class("ebs", "ebs.csi.aws.com", nil, map[string]string{AnnotationDefaultClass: "true"})},
		PVs: map[string]*corev1.PersistentVolume{
			"pv-gp2":  withClass(csiPV("pv-gp2", "ebs.csi.aws.com"), "gp2"),
			"pv-gp3":  withClass(csiPV("pv-gp3", "ebs.csi.aws.com"), "gp3"),
			"pv-io2":  withClass(csiPV("pv-io2", "ebs.csi.aws.com"), "io2"),
			"pv-pd":   withClass(csiPV("pv-pd", "pd.csi.storage.gke.io"), "pd"),
			"pv-host": withClass(&corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}}, "host"),
		},
	}
	scratch := claim("s", "pv-gp2", nil)
	scratch.Labels = map[string]string{"tier": "scratch"}
	pendingScratch := claim("p", "", nil)
	pendingScratch.Labels = map[string]string{"tier": "scratch"}
	for _, tc := range []struct {
		name     string
		req      Request
		claim    *corev1.PersistentVolumeClaim
		wantMode Mode
		reason   string // prefix
		err      string
	}{
		{name: "skip is none", req: Request{Mode: ModeAuto}, claim: scratch, wantMode: ModeNone, reason: "resource policy rule 1 (pvcLabels: {tier: scratch})"},
		{name: "skip names the rule on a pending claim too", req: Request{Mode: ModeAuto}, claim: pendingScratch, wantMode: ModeNone, reason: "resource policy rule 1"},
		{name: "snapshot keeps VolumeSnapshots", req: Request{Mode: ModeAuto}, claim: claim("a", "pv-gp2", nil), wantMode: ModeSnapshot, reason: "resource policy rule 2 (storageClass: [gp2]); VolumeSnapshotClass ebs"},
		{name: "snapshot with --snapshot-move-data moves the data", req: Request{Mode: ModeAuto, SnapshotMoveData: true}, claim: claim("a", "pv-gp2", nil), wantMode: ModeSnapshotMove, reason: "resource policy rule 2 (storageClass: [gp2])"},
		{name: "snapshot-move", req: Request{Mode: ModeFS}, claim: claim("a", "pv-gp3", nil), wantMode: ModeSnapshotMove, reason: "resource policy rule 3 (storageClass: [gp3])"},
		{name: "fs-backup is fs", req: Request{Mode: ModeAuto}, claim: claim("a", "pv-io2", nil), wantMode: ModeFS, reason: "resource policy rule 4 (csi: {driver: ebs.csi.aws.com})"},
		{name: "policy beats --volumes", req: Request{Mode: ModeNone}, claim: claim("a", "pv-io2", nil), wantMode: ModeFS, reason: "resource policy rule 4"},
		{name: "annotation beats policy", req: Request{Mode: ModeAuto}, claim: claim("a", "pv-io2", map[string]string{AnnotationMode: "none"}), wantMode: ModeNone, reason: "annotation " + AnnotationMode + "=none"},
		{name: "no rule: --volumes decides", req: Request{Mode: ModeFS}, claim: claim("a", "pv-pd", nil), wantMode: ModeFS, reason: "--volumes=fs"},
		{name: "no rule and auto", req: Request{Mode: ModeAuto}, claim: claim("a", "pv-pd", nil), wantMode: ModeFS, reason: "no VolumeSnapshotClass"},
		{name: "a rule's impossible mode is an error naming the rule", req: Request{Mode: ModeAuto}, claim: claim("a", "pv-host", nil), err: "(mode snapshot from resource policy rule 5 (storageClass: [host]))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Policies = pols
			d, err := DecideRequest(tc.req, nil, tc.claim, facts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Mode != tc.wantMode || !strings.HasPrefix(d.Reason, tc.reason) {
				t.Fatalf("got %s %q, want %s %q", d.Mode, d.Reason, tc.wantMode, tc.reason)
			}
		})
	}
}

func TestPolicyMode(t *testing.T) {
	for a, want := range map[policy.Action]Mode{policy.Skip: ModeNone, policy.FSBackup: ModeFS, policy.Snapshot: ModeSnapshot, policy.SnapshotMove: ModeSnapshotMove} {
		if got := PolicyMode(a, false); got != want {
			t.Errorf("%s: %s, want %s", a, got, want)
		}
	}
	if PolicyMode(policy.Snapshot, true) != ModeSnapshotMove || PolicyMode(policy.FSBackup, true) != ModeFS {
		t.Error("--snapshot-move-data changes snapshot only")
	}
}

func withClass(pv *corev1.PersistentVolume, sc string) *corev1.PersistentVolume {
	pv.Spec.StorageClassName = sc
	return pv
}
