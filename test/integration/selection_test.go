//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
)

func labelledConfigMap(t *testing.T, ns, name string, lbls map[string]string) {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestExclusionLabelsAndOrSelector backs up from the real apiserver: objects and a namespace
// labelled for exclusion stay out and are recorded; --or-selector takes the union of its terms.
func TestExclusionLabelsAndOrSelector(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_PASSWORD", "pw")
	loc := "file://" + t.TempDir()
	createNamespace(t, "sel-src")
	labelledConfigMap(t, "sel-src", "a", map[string]string{"app": "web"})
	labelledConfigMap(t, "sel-src", "b", map[string]string{"tier": "db"})
	labelledConfigMap(t, "sel-src", "c", nil)
	labelledConfigMap(t, "sel-src", "x", map[string]string{"velero.io/exclude-from-backup": "true"})
	labelledConfigMap(t, "sel-src", "y", map[string]string{"pvbackup.io/exclude-from-backup": "true", "app": "web"})
	createNamespace(t, "sel-skip", "inside")
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "sel-skip", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["velero.io/exclude-from-backup"] = "true"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	r := run(t, "create", "or-sel", "--to", loc, "--include-namespaces", "sel-*", "--include-resources", "configmaps",
		"--or-selector", "app=web or tier in (db)", "--labels", "team=shop", "-o", "json")
	if r.code != 0 {
		t.Fatalf("create --or-selector: exit %d\n%s", r.code, r.err)
	}
	var m catalog.Manifest
	if err := json.Unmarshal([]byte(r.out), &m); err != nil {
		t.Fatal(err)
	}
	if m.Items != 2 || m.Labels["team"] != "shop" || strings.Join(m.Selection.OrLabelSelectors, "|") != "app=web|tier in (db)" {
		t.Fatalf("or-selector backup: %d objects (want a and b), labels %v, selection %+v", m.Items, m.Labels, m.Selection)
	}
	if got := excludedNames(m); got != "configmaps sel-src/y; namespaces sel-skip" {
		t.Fatalf("excluded: %s", got)
	}

	r = run(t, "create", "all", "--to", loc, "--include-namespaces", "sel-*", "--include-resources", "configmaps", "-o", "json")
	m = catalog.Manifest{}
	if err := json.Unmarshal([]byte(r.out), &m); r.code != 0 || err != nil {
		t.Fatalf("create: exit %d %v\n%s", r.code, err, r.err)
	}
	// a, b, c and kube-root-ca.crt; x and y by their labels; sel-skip with its contents.
	if m.Items != 4 || strings.Join(m.Namespaces, ",") != "sel-src" {
		t.Fatalf("backup: %d objects in %v", m.Items, m.Namespaces)
	}
	if got := excludedNames(m); got != "configmaps sel-src/x; configmaps sel-src/y; namespaces sel-skip" {
		t.Fatalf("excluded: %s", got)
	}
	r = run(t, "describe", "all", "--from", loc)
	for _, want := range []string{"Excluded:     3 objects by label", "configmaps sel-src/x", "velero.io/exclude-from-backup=true", "namespaces sel-skip"} {
		if !strings.Contains(r.out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, r.out)
		}
	}
	r = run(t, "list", "--from", loc, "-l", "team=shop")
	if r.code != 0 || !strings.Contains(r.out, "or-sel") || strings.Contains(r.out, "all ") {
		t.Fatalf("list -l team=shop:\n%s%s", r.out, r.err)
	}
}

func excludedNames(m catalog.Manifest) string {
	var out []string
	for _, e := range m.Excluded {
		out = append(out, e.Resource+" "+strings.TrimPrefix(e.Namespace+"/"+e.Name, "/"))
	}
	return strings.Join(out, "; ")
}

// TestDryRunWithPolicy plans a backup with a resource policy file: each volume's mode and the
// rule that chose it, a bad file refused before anything is read from the cluster.
func TestDryRunWithPolicy(t *testing.T) {
	ctx := context.Background()
	t.Setenv("PVBACKUP_LOCATION", "")
	createNamespace(t, "pol-src")
	gp2 := "gp2"
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pol-pv"},
		Spec: corev1.PersistentVolumeSpec{
			StorageClassName:       gp2,
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/pol-pv"}},
			ClaimRef:               &corev1.ObjectReference{Namespace: "pol-src", Name: "data"},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), "pol-pv", metav1.DeleteOptions{})
	})
	claim := func(name, class, volume string) {
		c := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: &class, VolumeName: volume, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
		if _, err := cs.CoreV1().PersistentVolumeClaims("pol-src").Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	claim("data", gp2, "pol-pv")
	claim("waiting", "no-such-class", "")
	// The controller-manager's PV controller binds the pre-bound pair.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := wait.PollUntilContextCancel(wctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		c, err := cs.CoreV1().PersistentVolumeClaims("pol-src").Get(ctx, "data", metav1.GetOptions{})
		return err == nil && c.Status.Phase == corev1.ClaimBound, nil
	}); err != nil {
		t.Fatal("PVC pol-src/data not Bound within a minute")
	}
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: v1
volumePolicies:
- conditions:
    capacity: "0,100Gi"
    storageClass:
    - gp2
  action:
    type: fs-backup
- conditions:
    pvcPhase:
    - Pending
  action:
    type: skip
`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "create", "pol", "-n", "pol-src", "--resource-policies", policy, "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if !hasRow(r.out, "pol-src/data", "1Gi", "fs", "resource", "policy", "rule", "1", "(capacity:", "0,100Gi;", "storageClass:", "[gp2])") ||
		!hasRow(r.out, "pol-src/waiting", "1Gi", "none", "resource", "policy", "rule", "2", "(pvcPhase:", "[Pending])") {
		t.Fatalf("plan lacks the rules' modes and reasons:\n%s", r.out)
	}
	// The apiserver warns on every list of v1 Endpoints: create keeps its warnings for the backup's
	// log (a dry run has none), off the terminal, and never as client-go's klog line.
	if strings.Contains(r.err, "Endpoints is deprecated") || strings.Contains(r.err, "warnings.go") {
		t.Fatalf("API warning printed on the terminal:\n%s", r.err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: v1\nvolumePolicies:\n- conditions:\n    storageClass: [gp2]\n  action:\n    type: skip\n- conditions:\n    capacity: 100Gi\n  action:\n    type: skip\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "create", "pol", "-n", "pol-src", "--resource-policies", bad, "--dry-run")
	if r.code == 0 || !strings.Contains(r.err, "volumePolicies rule 2: capacity \"100Gi\": write a range") || strings.Contains(r.err, "discover") {
		t.Fatalf("bad policy: exit %d\n%s", r.code, r.err)
	}
}
