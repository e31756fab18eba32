package doctor

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

// Doctor says whether volume groups are cut here: the version served, and which drivers have a class.
func TestCheckGroupSnapshots(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: groupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshotclasses"}
	class := &unstructured.Unstructured{Object: map[string]any{"apiVersion": groupSnapshotGroup + "/v1beta2", "kind": "VolumeGroupSnapshotClass",
		"metadata": map[string]any{"name": "csi-dir"}, "driver": "dir.csi", "deletionPolicy": "Delete"}}
	disc := func(versions ...string) *fakediscovery.FakeDiscovery {
		d := &fakediscovery.FakeDiscovery{Fake: &kubefake.NewSimpleClientset().Fake}
		for _, v := range versions {
			d.Resources = append(d.Resources, &metav1.APIResourceList{GroupVersion: groupSnapshotGroup + "/" + v,
				APIResources: []metav1.APIResource{{Name: "volumegroupsnapshots"}}})
		}
		return d
	}
	kinds := map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotClassList"}
	for _, tc := range []struct {
		name     string
		versions []string
		objs     []runtime.Object
		status   Status
		detail   string
	}{
		{"served with a class", []string{"v1beta2"}, []runtime.Object{class}, OK, "v1beta2 served; VolumeGroupSnapshotClasses dir.csi: csi-dir"},
		{"served without a class", []string{"v1beta2"}, nil, Warn, "no VolumeGroupSnapshotClass"},
		{"v1beta1 only", []string{"v1beta1"}, nil, OK, "not served (v1 or v1beta2)"},
		{"not served", nil, nil, OK, "snapshotted one by one"},
	} {
		d := &Deps{Discovery: disc(tc.versions...), Dynamic: fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, tc.objs...)}
		r := checkGroupSnapshots(context.Background(), d)
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, r.Status, r.Detail, tc.status, tc.detail)
		}
	}
}
