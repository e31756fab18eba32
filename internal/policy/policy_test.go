package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// vol builds a claim and its PV. kind is "csi:<driver>", "nfs:<server>:<path>", "hostPath" or ""
// (unbound claim: no PV).
func vol(kind, class, size string, phase corev1.PersistentVolumeClaimPhase, lbls map[string]string, attrs map[string]string) Volume {
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "data", Labels: lbls}}
	pvc.Status.Phase = phase
	if class != "" {
		pvc.Spec.StorageClassName = &class
	}
	pvc.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	if kind == "" {
		return Volume{PVC: pvc}
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-1"}}
	pv.Spec.StorageClassName = class
	pv.Spec.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	switch parts := strings.Split(kind, ":"); parts[0] {
	case "csi":
		pv.Spec.CSI = &corev1.CSIPersistentVolumeSource{Driver: parts[1], VolumeHandle: "h", VolumeAttributes: attrs}
	case "nfs":
		pv.Spec.NFS = &corev1.NFSVolumeSource{Server: parts[1], Path: parts[2]}
	case "hostPath":
		pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/x"}
	case "cinder":
		pv.Spec.Cinder = &corev1.CinderPersistentVolumeSource{VolumeID: "v"}
	}
	pvc.Spec.VolumeName = pv.Name
	return Volume{PVC: pvc, PV: pv}
}

func load(t *testing.T, name string) *Policies {
	t.Helper()
	p, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMatch(t *testing.T) {
	bound, pending, lost := corev1.ClaimBound, corev1.ClaimPending, corev1.ClaimLost
	prod := map[string]string{"environment": "production", "team": "backend"}
	for _, tc := range []struct {
		file string
		name string
		v    Volume
		rule int // 0: no rule matches
		want Action
	}{
		// Velero's YAML template, rule by rule.
		{"velero-template.yaml", "rule 1: capacity, csi driver, storageClass and pvcPhase all hold", vol("csi:ebs.csi.aws.com", "gp2", "50Gi", pending, nil, nil), 1, Skip},
		{"velero-template.yaml", "rule 1 fails on one condition (phase): rule 5 csi {}", vol("csi:ebs.csi.aws.com", "gp2", "50Gi", bound, nil, nil), 5, Snapshot},
		{"velero-template.yaml", "rule 1 fails on capacity above the range", vol("csi:ebs.csi.aws.com", "gp2", "200Gi", pending, nil, nil), 5, Snapshot},
		{"velero-template.yaml", "rule 1 fails on storageClass", vol("csi:ebs.csi.aws.com", "gp3", "50Gi", pending, nil, nil), 5, Snapshot},
		{"velero-template.yaml", "rule 1 fails on driver", vol("csi:pd.csi.storage.gke.io", "gp2", "50Gi", pending, nil, nil), 5, Snapshot},
		{"velero-template.yaml", "rule 2: nfs server and path, capacity 0,100Gi", vol("nfs:192.168.200.90:/mnt/data", "", "10Gi", bound, nil, nil), 2, Skip},
		{"velero-template.yaml", "rule 3: nfs server only (other path)", vol("nfs:192.168.200.90:/mnt/other", "", "10Gi", bound, nil, nil), 3, FSBackup},
		{"velero-template.yaml", "rule 3: above rule 2's capacity", vol("nfs:192.168.200.90:/mnt/data", "", "200Gi", bound, nil, nil), 3, FSBackup},
		{"velero-template.yaml", "rule 4: nfs {} matches any NFS volume", vol("nfs:10.0.0.1:/export", "", "10Gi", bound, nil, nil), 4, Skip},
		{"velero-template.yaml", "rule 6: volumeTypes cinder", vol("cinder", "", "10Gi", bound, nil, nil), 6, Skip},
		{"velero-template.yaml", "no rule: hostPath", vol("hostPath", "", "10Gi", bound, nil, nil), 0, ""},
		{"velero-template.yaml", "no rule: unbound claim (no volume source)", vol("", "gp2", "10Gi", pending, nil, nil), 0, ""},
		// Velero's Example 3.
		{"velero-example3.yaml", "gp2-csi snapshot", vol("csi:ebs.csi.aws.com", "gp2-csi", "1Gi", bound, nil, nil), 1, Snapshot},
		{"velero-example3.yaml", "gp3-csi fs-backup", vol("csi:ebs.csi.aws.com", "gp3-csi", "1Gi", bound, nil, nil), 2, FSBackup},
		{"velero-example3.yaml", "other class: no rule", vol("csi:ebs.csi.aws.com", "io2", "1Gi", bound, nil, nil), 0, ""},
		{"velero-example3.yaml", "unbound claim: class from the claim", vol("", "gp3-csi", "1Gi", pending, nil, nil), 2, FSBackup},
		// pvcLabels: subset matching, and a mismatch on one of two labels.
		{"velero-pvc-labels.yaml", "extra labels still match", vol("csi:x", "", "1Gi", bound, prod, nil), 2, Snapshot},
		{"velero-pvc-labels.yaml", "both labels", vol("csi:x", "", "1Gi", bound, map[string]string{"environment": "production", "app": "frontend"}, nil), 1, Skip},
		{"velero-pvc-labels.yaml", "no labels", vol("csi:x", "", "1Gi", bound, nil, nil), 0, ""},
		// pvcPhase.
		{"velero-pvc-phase.yaml", "pending gp2", vol("", "gp2", "1Gi", pending, nil, nil), 1, Skip},
		{"velero-pvc-phase.yaml", "pending other class", vol("", "gp3", "1Gi", pending, nil, nil), 2, Skip},
		{"velero-pvc-phase.yaml", "lost", vol("csi:x", "gp2", "1Gi", lost, nil, nil), 2, Skip},
		{"velero-pvc-phase.yaml", "bound", vol("csi:x", "gp2", "1Gi", bound, nil, nil), 3, Snapshot},
		// Capacity forms, volumeAttributes, and snapshot-move.
		{"ours.yaml", "100Gi, includes its bound", vol("csi:dir.csi", "", "100Gi", bound, nil, nil), 1, FSBackup},
		{"ours.yaml", ",5Gi and a matching attribute", vol("csi:dir.csi", "", "5Gi", bound, nil, map[string]string{"tier": "fast", "zone": "a"}), 2, SnapshotMove},
		{"ours.yaml", "attribute differs", vol("csi:dir.csi", "", "5Gi", bound, nil, map[string]string{"tier": "slow"}), 3, Snapshot},
		{"ours.yaml", "attribute missing", vol("csi:dir.csi", "", "1Gi", bound, nil, nil), 3, Snapshot},
		{"ours.yaml", "between the ranges", vol("csi:dir.csi", "", "50Gi", bound, nil, map[string]string{"tier": "fast"}), 3, Snapshot},
		{"ours.yaml", "other driver", vol("csi:other", "", "50Gi", bound, nil, nil), 0, ""},
	} {
		t.Run(tc.file+"/"+tc.name, func(t *testing.T) {
			r := load(t, tc.file).Match(tc.v)
			switch {
			case tc.rule == 0 && r != nil:
				t.Fatalf("matched %s, want no rule", r)
			case tc.rule == 0:
			case r == nil:
				t.Fatalf("no rule matched, want rule %d", tc.rule)
			case r.Index != tc.rule || r.Action != tc.want:
				t.Fatalf("got %s action %s, want rule %d action %s", r, r.Action, tc.rule, tc.want)
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	p := load(t, "velero-template.yaml")
	for i, want := range []string{
		"resource policy rule 1 (capacity: 10,100Gi; storageClass: [gp2, standard]; csi: {driver: ebs.csi.aws.com}; pvcPhase: [Pending])",
		"resource policy rule 2 (capacity: 0,100Gi; nfs: {server: 192.168.200.90, path: /mnt/data})",
		"resource policy rule 3 (nfs: {server: 192.168.200.90})",
		"resource policy rule 4 (nfs: {})",
		"resource policy rule 5 (csi: {})",
		"resource policy rule 6 (volumeTypes: [emptyDir, downwardAPI, configmap, cinder])",
	} {
		if got := p.Rules[i].String(); got != want {
			t.Errorf("rule %d:\n got %s\nwant %s", i+1, got, want)
		}
	}
	ie := p.IncludeExclude
	if ie == nil || strings.Join(ie.IncludedClusterScopedResources, ",") != "crd,pv" || strings.Join(ie.ExcludedNamespaceScopedResources, ",") != "configmap,secret" {
		t.Fatalf("includeExcludePolicy not read: %+v", ie)
	}
}

func TestParseErrors(t *testing.T) {
	rule := func(body string) string {
		return "version: v1\nvolumePolicies:\n- conditions:\n    storageClass: [a]\n  action:\n    type: skip\n" + body
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"no version", "volumePolicies: []\n", `version "": the only supported version is v1`},
		{"wrong version", "version: v2\n", `version "v2"`},
		{"not yaml", "version: [v1\n", "not valid YAML"},
		{"unknown top-level field", "version: v1\nvolumePolicy: []\n", `unknown field "volumePolicy"`},
		{"misspelt condition names the rule", rule("- conditions:\n    storageClas: [b]\n  action:\n    type: skip\n"), `volumePolicies rule 2: unknown field "storageClas"`},
		{"bad action", rule("- conditions: {}\n  action:\n    type: backup\n"), `volumePolicies rule 2: action "backup": use skip, fs-backup, snapshot or snapshot-move`},
		{"custom action", rule("- conditions: {}\n  action:\n    type: custom\n"), "rule 2: action custom hands volumes to a Velero plugin"},
		{"no action", rule("- conditions: {}\n"), "rule 2: no action.type"},
		{"capacity without a comma", rule("- conditions:\n    capacity: 5Gi\n  action:\n    type: skip\n"), `rule 2: capacity "5Gi": write a range`},
		{"capacity reversed", rule("- conditions:\n    capacity: 10Gi,1Gi\n  action:\n    type: skip\n"), "rule 2: capacity \"10Gi,1Gi\": the lower bound is above the upper one"},
		{"capacity not a quantity", rule("- conditions:\n    capacity: 1G,2x\n  action:\n    type: skip\n"), `"2x" is not a quantity`},
		{"csi attributes without driver", rule("- conditions:\n    csi:\n      volumeAttributes: {a: b}\n  action:\n    type: skip\n"), "rule 2: csi: volumeAttributes need a driver"},
		{"pvcPhase unknown", rule("- conditions:\n    pvcPhase: [Released]\n  action:\n    type: skip\n"), `rule 2: pvcPhase "Released"`},
		{"pvcLabels not a map", rule("- conditions:\n    pvcLabels: [a]\n  action:\n    type: skip\n"), "rule 2:"},
		{"pvcLabels bad value", rule("- conditions:\n    pvcLabels: {app: 'a b'}\n  action:\n    type: skip\n"), "rule 2: pvcLabels:"},
		{"volumeTypes unknown", rule("- conditions:\n    volumeTypes: [floppy]\n  action:\n    type: skip\n"), `rule 2: volumeTypes "floppy"`},
		{"storageClass not a list", rule("- conditions:\n    storageClass: gp2\n  action:\n    type: skip\n"), "rule 2:"},
		{"policy wildcard", "version: v1\nincludeExcludePolicy:\n  includedClusterScopedResources: ['*']\n", "includeExcludePolicy: cluster-scoped resources: '*' is not allowed"},
		{"policy include and exclude", "version: v1\nincludeExcludePolicy:\n  includedNamespaceScopedResources: [pods]\n  excludedNamespaceScopedResources: [pods]\n", `"pods" is both included and excluded`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := Load("testdata/missing.yaml"); err == nil || !strings.Contains(err.Error(), "--resource-policies") {
		t.Fatalf("missing file: %v", err)
	}
}

// Every fixture parses: they are Velero's documented examples, which must work unchanged.
func TestFixturesParse(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) < 5 {
		t.Fatalf("fixtures missing: %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
