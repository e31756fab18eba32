package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/version"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

var verbs = metav1.Verbs{"create", "get", "list", "watch"}

func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	md := map[string]any{"name": name, "uid": "uid-" + name}
	if ns != "" {
		md["namespace"] = ns
	}
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": md}
	for k, v := range fields {
		o[k] = v
	}
	return &unstructured.Unstructured{Object: o}
}

// fakeCluster serves a shop namespace with a PVC bound to a PV, a RoleBinding to a
// ClusterRole, a custom resource with its CRD, an event, and an unrelated namespace.
func fakeCluster() (*dynamicfake.FakeDynamicClient, *fakediscovery.FakeDiscovery) {
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{
			{Name: "namespaces", SingularName: "namespace", Kind: "Namespace", Verbs: verbs},
			{Name: "configmaps", SingularName: "configmap", Kind: "ConfigMap", Namespaced: true, Verbs: verbs},
			{Name: "events", SingularName: "event", Kind: "Event", Namespaced: true, Verbs: verbs},
			{Name: "persistentvolumeclaims", SingularName: "persistentvolumeclaim", Kind: "PersistentVolumeClaim", Namespaced: true, ShortNames: []string{"pvc"}, Verbs: verbs},
			{Name: "persistentvolumes", SingularName: "persistentvolume", Kind: "PersistentVolume", Verbs: verbs},
			{Name: "nodes", SingularName: "node", Kind: "Node", Verbs: verbs},
		}},
		{GroupVersion: "storage.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "storageclasses", SingularName: "storageclass", Kind: "StorageClass", Verbs: verbs}}},
		{GroupVersion: "rbac.authorization.k8s.io/v1", APIResources: []metav1.APIResource{
			{Name: "rolebindings", SingularName: "rolebinding", Kind: "RoleBinding", Namespaced: true, Verbs: verbs},
			{Name: "clusterroles", SingularName: "clusterrole", Kind: "ClusterRole", Verbs: verbs},
		}},
		{GroupVersion: "apiextensions.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "customresourcedefinitions", SingularName: "customresourcedefinition", Kind: "CustomResourceDefinition", ShortNames: []string{"crd"}, Verbs: verbs}}},
		{GroupVersion: "example.com/v1", APIResources: []metav1.APIResource{{Name: "widgets", SingularName: "widget", Kind: "Widget", Namespaced: true, Verbs: verbs}}},
	}}}
	objs := []runtime.Object{
		obj("v1", "Namespace", "", "shop", nil),
		obj("v1", "Namespace", "", "other", nil),
		obj("v1", "ConfigMap", "shop", "app", map[string]any{"data": map[string]any{"k": "v"}}),
		obj("v1", "ConfigMap", "other", "unrelated", nil),
		obj("v1", "Event", "shop", "ev1", nil),
		obj("v1", "PersistentVolumeClaim", "shop", "data", map[string]any{"spec": map[string]any{"volumeName": "pv-1", "storageClassName": "fast"}}),
		obj("v1", "PersistentVolume", "", "pv-1", map[string]any{"spec": map[string]any{"storageClassName": "fast"}}),
		obj("v1", "PersistentVolume", "", "pv-other", nil),
		obj("v1", "Node", "", "node-1", nil),
		obj("storage.k8s.io/v1", "StorageClass", "", "fast", nil),
		obj("storage.k8s.io/v1", "StorageClass", "", "slow", nil),
		obj("rbac.authorization.k8s.io/v1", "RoleBinding", "shop", "view", map[string]any{"roleRef": map[string]any{"kind": "ClusterRole", "name": "view"}}),
		obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "view", nil),
		obj("rbac.authorization.k8s.io/v1", "ClusterRole", "", "admin", nil),
		obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com", nil),
		obj("example.com/v1", "Widget", "shop", "gear", nil),
	}
	kinds := map[schema.GroupVersionResource]string{}
	for _, l := range disc.Resources {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			kinds[gv.WithResource(r.Name)] = r.Kind + "List"
		}
	}
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, objs...), disc
}

func TestBackupManifestGolden(t *testing.T) {
	dyn, disc := fakeCluster()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	version.Version = "v0.1.0-test"
	res, err := Run(context.Background(), Deps{
		Dynamic: dyn, Discovery: disc, Catalog: cat,
		Cluster: catalog.Cluster{Server: "https://127.0.0.1:6443", Context: "test", ServerVersion: "v1.34.4"},
		Now:     func() time.Time { clock = clock.Add(time.Second); return clock },
	}, Config{Name: "shop-1", Namespaces: selection.NamespaceFilter{Include: []string{"shop"}}, ArchiveKey: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Status != catalog.Completed {
		t.Fatalf("status %s: %v", res.Manifest.Status, res.Manifest.Errors)
	}
	m, err := cat.Manifest(context.Background(), "shop-1")
	if err != nil {
		t.Fatal(err)
	}
	m.Archive.Size = 0 // encryption makes it vary
	b, _ := json.MarshalIndent(m, "", "  ")
	golden.Assert(t, "manifest.golden.json", append(b, '\n'))
	// The namespaced objects and exactly the cluster objects they need; no event, no node.
	s := string(b)
	for _, unwanted := range []string{"events", "nodes", `"other"`} {
		if strings.Contains(s, unwanted) {
			t.Errorf("manifest mentions %s", unwanted)
		}
	}
}

func TestBackupRefusesExistingName(t *testing.T) {
	dyn, disc := fakeCluster()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	cfg := Config{Name: "b", Namespaces: selection.NamespaceFilter{Include: []string{"shop"}}, ArchiveKey: "pw"}
	if _, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg)
	if err == nil || !strings.Contains(err.Error(), `backup "b" already exists in mem://`) {
		t.Fatalf("got %v", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	dyn, disc := fakeCluster()
	bucket := memblob.OpenBucket(nil)
	cat := catalog.New(store.FromBucket(bucket, "mem://"))
	res, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat},
		Config{Name: "b", ClusterResources: ClusterNone, Resources: selection.ResourceFilter{Include: []string{"ConfigMap"}}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.Manifest.Items != 2 {
		t.Fatalf("plan: %+v", res.Manifest)
	}
	if ok, _ := cat.Exists(context.Background(), "b"); ok {
		t.Fatal("a dry run wrote to the bucket")
	}
}

// TestInterrupted cancels the context in the middle of the listing, as Ctrl-C does: the archive
// is abandoned, and the manifest says Failed and why — the signal, when the context carries it as
// its cause (cli.SignalContext does), not Go's "context canceled".
func TestInterrupted(t *testing.T) {
	for _, tc := range []struct {
		cause, want string
	}{{"", "context canceled"}, {"interrupted (Ctrl-C)", "backup \"b\" failed: interrupted (Ctrl-C)"}} {
		dyn, disc := fakeCluster()
		ctx, cancel := context.WithCancelCause(context.Background())
		lists := 0
		dyn.PrependReactor("list", "*", func(clienttesting.Action) (bool, runtime.Object, error) {
			if lists++; lists == 4 {
				var cause error
				if tc.cause != "" {
					cause = fmt.Errorf("%s%w", tc.cause, errCanceled{})
				}
				cancel(cause)
			}
			return false, nil, nil
		})
		cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
		_, err := Run(ctx, Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, Config{Name: "b", ArchiveKey: "pw"})
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("want context.Canceled saying %q, got %v", tc.want, err)
		}
		m, err := cat.Manifest(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		if m.Status != catalog.Failed || len(m.Errors) != 1 || !strings.Contains(m.Errors[0], strings.TrimPrefix(tc.want, "backup \"b\" failed: ")) {
			t.Fatalf("manifest: %s %v", m.Status, m.Errors)
		}
		if _, err := cat.NewReader(context.Background(), "b", catalog.ResourcesFile); err == nil {
			t.Fatal("an interrupted backup left a resources archive")
		}
	}
}

// errCanceled is an empty error that is context.Canceled, as cli.Interruption is.
type errCanceled struct{}

func (errCanceled) Error() string        { return "" }
func (errCanceled) Is(target error) bool { return target == context.Canceled }

func TestBackupRecordsTTL(t *testing.T) {
	dyn, disc := fakeCluster()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat, Now: func() time.Time { return start }},
		Config{Name: "b", Namespaces: selection.NamespaceFilter{Include: []string{"shop"}}, ArchiveKey: "pw", TTL: 36 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cat.Manifest(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if m.TTL != "36h0m0s" || !m.ExpiresAt.Equal(start.Add(36*time.Hour)) || m.Expired(start.Add(35*time.Hour)) || !m.Expired(start.Add(36*time.Hour)) {
		t.Fatalf("ttl %q, expires %s", m.TTL, m.ExpiresAt)
	}
}

// TestClaimReleasedWhenNothingWritten: a run that stops before writing (here, an unknown
// resource type) gives the name back, so the user can retry under the same name.
func TestClaimReleasedWhenNothingWritten(t *testing.T) {
	dyn, disc := fakeCluster()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	cfg := Config{Name: "b", Resources: selection.ResourceFilter{Include: []string{"nosuchkind"}}, ArchiveKey: "pw"}
	if _, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg); err == nil {
		t.Fatal("an unknown resource type did not fail the run")
	}
	if ok, _ := cat.Exists(context.Background(), "b"); ok {
		t.Fatal("the claim of a run that wrote nothing was kept")
	}
	// A name claimed by another run is refused before anything is listed.
	other := catalog.NewClaim(time.Now(), "other")
	other.Host = "ci-runner-7"
	if err := cat.Claim(context.Background(), "b", other); err != nil {
		t.Fatal(err)
	}
	cfg.Resources = selection.ResourceFilter{}
	_, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg)
	if !errors.Is(err, catalog.ErrExists) || !strings.Contains(err.Error(), "being written by a run on ci-runner-7") {
		t.Fatalf("got %v", err)
	}
	if got, err := cat.ReadClaim(context.Background(), "b"); err != nil || got.ID != other.ID {
		t.Fatalf("the other run's claim was touched: %+v %v", got, err)
	}
}

// TestTypeGoneDuringBackup: a type discovered, then no longer served when it is listed (its CRD
// deleted while the backup ran), has no objects left to back up: a warning, not a failed backup.
// A type the user named stays a failure.
func TestTypeGoneDuringBackup(t *testing.T) {
	for _, named := range []bool{false, true} {
		dyn, disc := fakeCluster()
		dyn.PrependReactor("list", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "")
		})
		cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
		cfg := Config{Name: "b", Namespaces: selection.NamespaceFilter{Include: []string{"shop"}}, ArchiveKey: "pw"}
		if named {
			cfg.Resources = selection.ResourceFilter{Include: []string{"configmaps", "namespaces"}}
		}
		if _, err := Run(context.Background(), Deps{Dynamic: dyn, Discovery: disc, Catalog: cat}, cfg); err != nil {
			t.Fatal(err)
		}
		m, err := cat.Manifest(context.Background(), "b")
		if err != nil {
			t.Fatal(err)
		}
		if named {
			if len(m.Errors) != 1 || !strings.Contains(m.Errors[0], "list configmaps") {
				t.Errorf("named type gone: errors %v, want the list failure", m.Errors)
			}
			continue
		}
		var warned bool
		for _, w := range m.Warnings {
			warned = warned || strings.Contains(w.Message, "configmaps is no longer served")
		}
		if len(m.Errors) != 0 || !warned || m.Status != catalog.Completed {
			t.Errorf("type gone: status %s, errors %v, warnings %+v; want Completed with a warning", m.Status, m.Errors, m.Warnings)
		}
	}
}
