package volumes

import (
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func class(name, driver string, labels, annotations map[string]string) snapv1.VolumeSnapshotClass {
	return snapv1.VolumeSnapshotClass{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}, Driver: driver, DeletionPolicy: snapv1.VolumeSnapshotContentDelete}
}

func claim(name, pv string, annotations map[string]string) *corev1.PersistentVolumeClaim {
	c := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: name, Annotations: annotations},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: pv, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	if pv == "" {
		c.Status.Phase = corev1.ClaimPending
	}
	return c
}

func csiPV(name, driver string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: driver, VolumeHandle: name}},
	}}
}

func TestDecide(t *testing.T) {
	def := map[string]string{AnnotationDefaultClass: "true"}
	facts := &Facts{
		SnapshotAPI: true,
		Classes: []snapv1.VolumeSnapshotClass{
			class("dir-default", "dir.csi", nil, def),
			class("dir-slow", "dir.csi", nil, nil),
			class("ebs-plain", "ebs.csi.aws.com", nil, nil),
			class("ebs-velero", "ebs.csi.aws.com", map[string]string{LabelClassVelero: "true"}, nil),
			class("gce-a", "pd.csi.storage.gke.io", nil, nil),
			class("gce-b", "pd.csi.storage.gke.io", nil, nil),
			class("azf", "file.csi.azure.com", nil, def),
			class("lh", "driver.longhorn.io", nil, def),
			class("mine", "dir.csi", map[string]string{LabelClassPlain: "true"}, nil),
		},
		PVs: map[string]*corev1.PersistentVolume{
			"pv-dir":  csiPV("pv-dir", "dir.csi"),
			"pv-ebs":  csiPV("pv-ebs", "ebs.csi.aws.com"),
			"pv-gce":  csiPV("pv-gce", "pd.csi.storage.gke.io"),
			"pv-azf":  csiPV("pv-azf", "file.csi.azure.com"),
			"pv-efs":  csiPV("pv-efs", "efs.csi.aws.com"),
			"pv-none": csiPV("pv-none", "nothing.csi"),
			"pv-lh":   csiPV("pv-lh", "driver.longhorn.io"),
			"pv-host": {ObjectMeta: metav1.ObjectMeta{Name: "pv-host"}, Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}}},
		},
	}
	noAPI := &Facts{PVs: facts.PVs}
	blockOf := func(pv string, annotations map[string]string) *corev1.PersistentVolumeClaim {
		c := claim("blk", pv, annotations)
		c.Spec.VolumeMode = ptrTo(corev1.PersistentVolumeBlock)
		return c
	}
	block := blockOf("pv-dir", nil)
	classesDenied := &Facts{PVs: facts.PVs, SnapshotAPI: true, ClassesDenied: "listing VolumeSnapshotClasses is forbidden"}

	tests := []struct {
		name      string
		mode      Mode
		flag      []string
		claim     *corev1.PersistentVolumeClaim
		facts     *Facts
		wantMode  Mode
		wantClass string
		reason    string // substring
		err       string // substring; "" = no error
		warn      string
	}{
		{name: "auto picks labelled class over default", mode: ModeAuto, claim: claim("a", "pv-dir", nil), wantMode: ModeSnapshotMove, wantClass: "mine", reason: "label " + LabelClassPlain},
		{name: "flag beats label", mode: ModeAuto, flag: []string{"dir-slow"}, claim: claim("a", "pv-dir", nil), wantMode: ModeSnapshotMove, wantClass: "dir-slow", reason: "--snapshot-class"},
		{name: "flag for another driver is ignored for this one", mode: ModeAuto, flag: []string{"ebs-plain"}, claim: claim("a", "pv-dir", nil), wantMode: ModeSnapshotMove, wantClass: "mine"},
		{name: "explicit mode with a class of another driver is an error", mode: ModeSnapshotMove, flag: []string{"ebs-plain"}, claim: claim("a", "pv-dir", nil), err: "--snapshot-class ebs-plain is for driver ebs.csi.aws.com, not dir.csi"},
		{name: "velero label", mode: ModeAuto, claim: claim("a", "pv-ebs", nil), wantMode: ModeSnapshotMove, wantClass: "ebs-velero", reason: LabelClassVelero},
		{name: "two classes none chosen: fs with why", mode: ModeAuto, claim: claim("a", "pv-gce", nil), wantMode: ModeFS, reason: "gce-a, gce-b but none is chosen"},
		{name: "two classes none chosen, snapshot-move asked: error", mode: ModeSnapshotMove, claim: claim("a", "pv-gce", nil), err: "pass --snapshot-class"},
		{name: "azure files goes fs even with a class", mode: ModeAuto, claim: claim("a", "pv-azf", nil), wantMode: ModeFS, reason: "Azure Files"},
		{name: "efs goes fs", mode: ModeAuto, claim: claim("a", "pv-efs", nil), wantMode: ModeFS, reason: "efs.csi.aws.com"},
		{name: "driver without class goes fs", mode: ModeAuto, claim: claim("a", "pv-none", nil), wantMode: ModeFS, reason: "no VolumeSnapshotClass for CSI driver nothing.csi"},
		{name: "non-CSI goes fs", mode: ModeAuto, claim: claim("a", "pv-host", nil), wantMode: ModeFS, reason: "not a CSI volume"},
		{name: "non-CSI snapshot-move asked: error", mode: ModeSnapshotMove, claim: claim("a", "pv-host", nil), err: "not one: use --volumes=fs"},
		{name: "no snapshot API: auto falls back to fs", mode: ModeAuto, claim: claim("a", "pv-dir", nil), facts: noAPI, wantMode: ModeFS, reason: "no VolumeSnapshot API"},
		{name: "no snapshot API: snapshot asked is an error", mode: ModeSnapshot, claim: claim("a", "pv-dir", nil), facts: noAPI, err: "no VolumeSnapshot API"},
		{name: "annotation overrides flag", mode: ModeSnapshotMove, claim: claim("a", "pv-dir", map[string]string{AnnotationMode: "fs"}), wantMode: ModeFS, reason: "annotation " + AnnotationMode + "=fs"},
		{name: "annotation none", mode: ModeAuto, claim: claim("a", "pv-dir", map[string]string{AnnotationMode: "none"}), wantMode: ModeNone},
		{name: "bad annotation", mode: ModeAuto, claim: claim("a", "pv-dir", map[string]string{AnnotationMode: "fast"}), err: `volume mode "fast"`},
		{name: "pending claim holds no data", mode: ModeAuto, claim: claim("a", "", nil), wantMode: ModeNone, reason: "not Bound"},
		{name: "block volume: auto picks snapshot-move", mode: ModeAuto, claim: block, wantMode: ModeSnapshotMove, wantClass: "mine", reason: "raw block volume; CSI driver dir.csi"},
		{name: "block volume: snapshot mode", mode: ModeSnapshot, claim: block, wantMode: ModeSnapshot, wantClass: "mine"},
		{name: "block volume: fs reads the device directly", mode: ModeFS, claim: block, wantMode: ModeFS, reason: "raw block volume read directly through volumeDevices"},
		{name: "block volume: fs by annotation", mode: ModeAuto, claim: blockOf("pv-dir", map[string]string{AnnotationMode: "fs"}), wantMode: ModeFS, reason: "read directly"},
		{name: "block volume without snapshots: none, warned", mode: ModeAuto, claim: blockOf("pv-none", nil), wantMode: ModeNone, reason: "raw block volume without snapshots (no VolumeSnapshotClass for CSI driver nothing.csi)", warn: "cannot be snapshotted"},
		{name: "block volume, no snapshot API: none, warned", mode: ModeAuto, claim: block, facts: noAPI, wantMode: ModeNone, reason: "no VolumeSnapshot API", warn: "its data is not backed up"},
		{name: "block volume, classes denied to a namespace admin: none, warned, not fs", mode: ModeAuto, claim: block, facts: classesDenied, wantMode: ModeNone, reason: "listing VolumeSnapshotClasses is forbidden: its snapshot support cannot be checked", warn: "its data is not backed up"},
		{name: "snapshot mode keeps class", mode: ModeSnapshot, claim: claim("a", "pv-dir", nil), wantMode: ModeSnapshot, wantClass: "mine"},
		{name: "longhorn warning", mode: ModeAuto, claim: claim("a", "pv-lh", nil), wantMode: ModeSnapshotMove, wantClass: "lh", warn: "type: snap"},
		{name: "--volumes=none", mode: ModeNone, claim: claim("a", "pv-dir", nil), wantMode: ModeNone, reason: "--volumes=none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts
			if f == nil {
				f = facts
			}
			d, err := Decide(tc.mode, tc.flag, tc.claim, f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Mode != tc.wantMode || d.SnapshotClass != tc.wantClass {
				t.Errorf("mode %s class %q, want %s %q (reason %q)", d.Mode, d.SnapshotClass, tc.wantMode, tc.wantClass, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(d.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q do not contain %q", d.Warnings, tc.warn)
			}
			if tc.warn == "" && len(d.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", d.Warnings)
			}
		})
	}
}

func TestValidateClassFlag(t *testing.T) {
	f := &Facts{SnapshotAPI: true, Classes: []snapv1.VolumeSnapshotClass{class("a", "d", nil, nil)}}
	if err := ValidateClassFlag([]string{"a"}, f); err != nil {
		t.Errorf("existing class refused: %v", err)
	}
	if err := ValidateClassFlag([]string{"a", "zz"}, f); err == nil || !strings.Contains(err.Error(), "--snapshot-class zz: no such VolumeSnapshotClass") {
		t.Errorf("missing class: %v", err)
	}
	if err := ValidateClassFlag([]string{"a"}, &Facts{}); err == nil || !strings.Contains(err.Error(), "no VolumeSnapshot API") {
		t.Errorf("no API: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }
