//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	grCRD = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	grCR  = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	grSC  = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}
	grPV  = schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}
)

// TestResourceRoundTrip backs up a namespace with one object of each common kind, deletes it
// with the cluster objects it needs, restores it, and compares; then restores it again into a
// mapped namespace, and over itself under both existing-resource policies.
func TestResourceRoundTrip(t *testing.T) {
	ctx := context.Background()
	apply(t, "../../testdata/shop.yaml")
	before := snapshot(t, "shop")

	dir := t.TempDir()
	loc := "file://" + dir
	t.Setenv("PVBACKUP_PASSWORD", "correct horse battery staple")
	t.Setenv("PVBACKUP_LOCATION", "")

	r := run(t, "create", "shop-1", "--to", loc, "--include-namespaces", "shop")
	if r.code != 0 || !strings.Contains(r.out, `Backup "shop-1" Completed`) {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	// The cluster objects the namespace needs were taken (auto), and nothing else cluster-wide.
	r = run(t, "describe", "shop-1", "--from", loc, "-o", "json")
	for _, want := range []string{`"apiextensions.k8s.io/v1/customresourcedefinitions"`, `"rbac.authorization.k8s.io/v1/clusterroles"`, `"v1/persistentvolumes"`, `"storage.k8s.io/v1/storageclasses"`, `"example.com/v1/widgets"`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("describe -o json lacks %s", want)
		}
	}
	if strings.Contains(r.out, `"v1/nodes"`) || strings.Contains(r.out, `"v1/events"`) {
		t.Errorf("backup took transient or unrelated cluster resources:\n%s", r.out)
	}
	// No secret in clear anywhere in the bucket.
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for _, s := range []string{"s3cr3t-never-in-clear-7f3a", "czNjcjN0LW5ldmVyLWluLWNsZWFyLTdmM2E="} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds the Secret's value in clear", p)
			}
		}
		return nil
	})

	// A wrong password fails before anything is created.
	t.Run("wrong password", func(t *testing.T) {
		t.Setenv("PVBACKUP_PASSWORD", "wrong")
		r := run(t, "restore", "shop-1", "--from", loc, "--namespace-mapping", "shop:never-created")
		if r.code != 1 || !strings.Contains(r.err, "wrong repository password for "+loc) {
			t.Fatalf("want exit 1 and a wrong-password error, got %d: %s", r.code, r.err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "never-created", metav1.GetOptions{}); err == nil {
			t.Fatal("a restore with a wrong password created a namespace")
		}
	})

	deleteNamespace(t, "shop")
	for _, x := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{grCRD, "widgets.example.com"}, {grCR, "shop-widget-reader"}, {grPV, "shop-pv"}, {grSC, "shop-manual"}} {
		if err := dyn.Resource(x.gvr).Delete(ctx, x.name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("delete %s %s: %v", x.gvr.Resource, x.name, err)
		}
	}

	r = run(t, "restore", "shop-1", "--from", loc, "--preserve-nodeports")
	if r.code != 0 || !strings.Contains(r.out, `Restore of "shop-1":`) || strings.Contains(r.out, "failed") {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.out, r.err)
	}
	// Objects owned by restored controllers are left to them, and say so.
	if !strings.Contains(r.out, "left to its controller Deployment web") {
		t.Errorf("restore output does not say ReplicaSets are left to their Deployment:\n%s", r.out)
	}
	diff(t, before, snapshot(t, "shop"))

	t.Run("mapped namespace", func(t *testing.T) {
		r := run(t, "restore", "shop-1", "--from", loc, "--namespace-mapping", "shop:shop-copy", "--include-namespaces", "shop")
		if r.code != 0 {
			t.Fatalf("restore into shop-copy: exit %d\n%s%s", r.code, r.out, r.err)
		}
		got := snapshot(t, "shop-copy")
		// The NodePort is taken by shop; the copy gets its own.
		delete(got, "services/web-nodeport")
		want := map[string]string{}
		for k, v := range before {
			if k != "services/web-nodeport" {
				want[k] = v
			}
		}
		diff(t, want, got)
		rb, err := cs.RbacV1().RoleBindings("shop-copy").Get(ctx, "shop-reader", metav1.GetOptions{})
		if err != nil || rb.Subjects[0].Namespace != "shop-copy" {
			t.Errorf("RoleBinding subject not mapped to shop-copy: %+v %v", rb, err)
		}
	})

	t.Run("existing objects", func(t *testing.T) {
		cm, err := cs.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["greeting"] = "changed"
		if _, err := cs.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := run(t, "restore", "shop-1", "--from", loc, "--include-resources", "configmaps,deploy", "--include-namespaces", "shop")
		if r.code != 0 || !hasRow(r.out, "configmaps", "shop", "shop-config", "skipped", "exists") {
			t.Fatalf("policy none: want shop-config skipped, exit %d\n%s%s", r.code, r.out, r.err)
		}
		if cm, _ := cs.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{}); cm.Data["greeting"] != "changed" {
			t.Fatal("policy none changed an existing object")
		}
		r = run(t, "restore", "shop-1", "--from", loc, "--include-resources", "configmaps,deploy", "--include-namespaces", "shop", "--existing-resource-policy", "update", "-o", "json")
		if r.code != 0 || !strings.Contains(r.out, `"updated": 3`) {
			t.Fatalf("policy update: want 3 updated (2 ConfigMaps, 1 Deployment), exit %d\n%s%s", r.code, r.out, r.err)
		}
		if cm, _ := cs.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{}); cm.Data["greeting"] != "hello" {
			t.Fatalf("policy update did not restore the backup's data: %v", cm.Data)
		}

		// An object that is being deleted is not "restored" by leaving or updating it: it is
		// about to go. The restore fails it, naming what holds it.
		cm, err = cs.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Finalizers = append(cm.Finalizers, "example.com/hold")
		if _, err := cs.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		release := func() {
			cm, err := cs.CoreV1().ConfigMaps("shop").Get(ctx, "shop-config", metav1.GetOptions{})
			if err == nil {
				cm.Finalizers = nil
				_, _ = cs.CoreV1().ConfigMaps("shop").Update(ctx, cm, metav1.UpdateOptions{})
			}
		}
		defer release()
		if err := cs.CoreV1().ConfigMaps("shop").Delete(ctx, "shop-config", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		for _, policy := range []string{"none", "update"} {
			r := run(t, "restore", "shop-1", "--from", loc, "--include-resources", "configmaps", "--include-namespaces", "shop", "--existing-resource-policy", policy)
			if r.code != 2 || !strings.Contains(r.out, "exists but is being deleted") || !strings.Contains(r.out, "held by example.com/hold): restore it again once it is gone") {
				t.Errorf("policy %s, a ConfigMap being deleted: want it failed with the reason, exit 2; got exit %d\n%s%s", policy, r.code, r.out, r.err)
			}
		}
		release()
		r = run(t, "restore", "shop-1", "--from", loc, "--include-resources", "configmaps", "--include-namespaces", "shop")
		if r.code != 0 || !strings.Contains(r.out, `Restore of "shop-1": 1 created, 1 skipped.`) {
			t.Errorf("restore once it is gone: exit %d\n%s%s", r.code, r.out, r.err)
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		r := run(t, "list", "--from", loc)
		if r.code != 0 || !strings.Contains(r.out, "shop-1") || !strings.Contains(r.out, "Completed") {
			t.Fatalf("list: %s%s", r.out, r.err)
		}
		r = run(t, "logs", "shop-1", "--from", loc)
		if r.code != 0 || !strings.Contains(r.out, "backed up") {
			t.Fatalf("logs: %s%s", r.out, r.err)
		}
		r = run(t, "create", "shop-1", "--to", loc, "--include-namespaces", "shop")
		if r.code != 1 || !strings.Contains(r.err, `backup "shop-1" already exists`) {
			t.Fatalf("a second create with the same name: exit %d %s", r.code, r.err)
		}
		r = run(t, "delete", "shop-1", "--from", loc)
		// backup.json, the archive, the log, the claim and the location key's copy
		if r.code != 0 || !strings.Contains(r.out, `Deleted backup "shop-1" (5 files)`) {
			t.Fatalf("delete: exit %d %s%s", r.code, r.out, r.err)
		}
		r = run(t, "describe", "shop-1", "--from", loc)
		if r.code != 1 || !strings.Contains(r.err, `backup "shop-1" not found`) {
			t.Fatalf("describe after delete: exit %d %s", r.code, r.err)
		}
	})
}

// hasRow reports whether a table in out has a row of exactly these cells.
func hasRow(out string, cells ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == strings.Join(cells, " ") {
			return true
		}
	}
	return false
}
