package doctor

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
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
	controller := func(args ...string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "snapshot-controller-0", Labels: map[string]string{"app.kubernetes.io/name": "snapshot-controller"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "snapshot-controller", Image: "registry.k8s.io/sig-storage/snapshot-controller:v8.4.0", Args: args}}}}
	}
	for _, tc := range []struct {
		name     string
		versions []string
		objs     []runtime.Object
		pods     []runtime.Object
		status   Status
		detail   string
	}{
		{"served with a class", []string{"v1beta2"}, []runtime.Object{class}, nil, OK, "v1beta2 served; VolumeGroupSnapshotClasses dir.csi: csi-dir"},
		{"no controller pod to read", []string{"v1beta2"}, []runtime.Object{class}, nil, OK, "cannot be seen (no controller pod found)"},
		{"controller with the gate", []string{"v1beta2"}, []runtime.Object{class}, []runtime.Object{controller("--v=2", "--feature-gates=ReleaseLeaderElectionOnExit=true,CSIVolumeGroupSnapshot=true")},
			OK, "snapshot-controller kube-system/snapshot-controller-0 runs with CSIVolumeGroupSnapshot=true"},
		{"controller without the gate", []string{"v1beta2"}, []runtime.Object{class}, []runtime.Object{controller("--v=2")},
			Warn, "kube-system/snapshot-controller-0 runs without --feature-gates=CSIVolumeGroupSnapshot=true"},
		{"gate turned off after on", []string{"v1beta2"}, []runtime.Object{class}, []runtime.Object{controller("--feature-gates", "CSIVolumeGroupSnapshot=true", "--feature-gates=CSIVolumeGroupSnapshot=false")},
			Warn, "runs without"},
		{"v1: the gate is not asked for", []string{"v1"}, []runtime.Object{class}, []runtime.Object{controller("--v=2")}, OK, "v1 served"},
		{"served without a class", []string{"v1beta2"}, nil, nil, Warn, "no VolumeGroupSnapshotClass"},
		{"v1beta1 only", []string{"v1beta1"}, nil, nil, OK, "not served (v1 or v1beta2)"},
		{"not served", nil, nil, nil, OK, "snapshotted one by one"},
	} {
		gvr := gvr
		gvr.Version = "v1beta2"
		if len(tc.versions) > 0 {
			gvr.Version = tc.versions[0]
		}
		objs := tc.objs
		if len(objs) > 0 {
			c := class.DeepCopy()
			c.SetAPIVersion(groupSnapshotGroup + "/" + gvr.Version)
			objs = []runtime.Object{c}
		}
		kinds := map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotClassList"}
		d := &Deps{Kube: kubefake.NewSimpleClientset(tc.pods...), Discovery: disc(tc.versions...), Dynamic: fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, objs...)}
		r := checkGroupSnapshots(context.Background(), d)
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, r.Status, r.Detail, tc.status, tc.detail)
		}
	}
}
