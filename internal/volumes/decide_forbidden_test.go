package volumes

import (
	"context"
	"strings"
	"testing"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestClassesForbidden: a caller who may not list VolumeSnapshotClasses (a schedule's
// ServiceAccount with --volumes fs) still backs up with fs; auto, snapshot modes and
// --snapshot-class fail naming the right, instead of every volume failing at the first read.
func TestClassesForbidden(t *testing.T) {
	snap := snapfake.NewSimpleClientset()
	snap.PrependReactor("list", "volumesnapshotclasses", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotclasses"}, "", nil)
	})
	disc := &fakediscovery.FakeDiscovery{Fake: &k8stesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: snapv1.SchemeGroupVersion.String(), APIResources: []metav1.APIResource{{Name: "volumesnapshots"}}}}}}
	pv := csiPV("pv-dir", "dir.csi")
	f, err := ReadFacts(context.Background(), disc, snap, func(context.Context, string) (*corev1.PersistentVolume, error) { return pv, nil },
		[]*corev1.PersistentVolumeClaim{claim("data", "pv-dir", nil)})
	if err != nil {
		t.Fatalf("a forbidden list of classes is not an error of its own: %v", err)
	}
	if !f.SnapshotAPI || f.ClassesErr == nil || f.PVs["pv-dir"] == nil {
		t.Fatalf("facts: %+v", f)
	}
	if d, err := DecideRequest(Request{Mode: ModeFS}, nil, claim("data", "pv-dir", nil), f); err != nil || d.Mode != ModeFS {
		t.Errorf("fs: %+v %v", d, err)
	}
	for _, m := range []Mode{ModeAuto, ModeSnapshotMove, ModeSnapshot} {
		if _, err := DecideRequest(Request{Mode: m}, nil, claim("data", "pv-dir", nil), f); err == nil || !strings.Contains(err.Error(), "list VolumeSnapshotClasses") || !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v", m, err)
		}
	}
	if err := ValidateClassFlag([]string{"x"}, f); err == nil || !apierrors.IsForbidden(err) {
		t.Errorf("--snapshot-class: %v", err)
	}
}
