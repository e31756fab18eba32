package volumes

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapfake "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	fakedynamic "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// conflict is the transient error the snapshot controller wrote into a VolumeGroupSnapshot of
// the lab (a CI run failed on it): the csi-snapshotter lost an update race, retried and the group
// became ready.
const conflict = "Failed to create group snapshot: error updating status for volume group snapshot content groupsnapcontent-1: " +
	"Operation cannot be fulfilled on volumegroupsnapshotcontents.groupsnapshot.storage.k8s.io \"groupsnapcontent-1\": " +
	"the object has been modified; please apply your changes to the latest version and try again"

// A status error script: the error the object shows first, how long it stands, then whether the
// controller clears it (ready).
type errorScript struct {
	name  string
	grace time.Duration // the waits' ErrorGrace
	first string        // status.error.message the waiter sees first
	hold  time.Duration // how long it stands (after the wait began watching)
	clear bool          // then the object becomes ready, the error cleared (as upstream does)
	want  string        // "" = the wait succeeds, else its error holds this
}

// errorScripts are the sequences both waits are run through. A short grace where the test
// waits for it to pass; a long one where the error is cleared at once, so that a loaded machine
// slow to clear it does not fail the wait.
func errorScripts() []errorScript {
	const short, long = 300 * time.Millisecond, 5 * time.Second
	return []errorScript{
		{name: "a conflict standing past the grace, then ready", grace: short, first: conflict, hold: 3 * short, clear: true},
		{name: "another error cleared within the grace, then ready", grace: long, first: "rpc error: code = Unavailable desc = connection refused", clear: true},
		{name: "a standing error fails within the grace", grace: short, first: "this class makes every snapshot fail", want: "failed: this class makes every snapshot fail"},
	}
}

// watchStarted returns a watch reactor that closes started on the first watch (the wait has
// listed the object, error included), and started.
func watchStarted() (k8stesting.WatchReactionFunc, chan struct{}) {
	started := make(chan struct{})
	var once sync.Once
	return func(k8stesting.Action) (bool, watch.Interface, error) {
		once.Do(func() { close(started) })
		return false, nil, nil
	}, started
}

// play runs script s against an object once the wait watches: ready clears its error and makes
// it ready.
func play(ctx context.Context, t *testing.T, s errorScript, started <-chan struct{}, ready func() error) {
	select {
	case <-started:
	case <-ctx.Done():
		return
	}
	if !s.clear {
		return
	}
	select {
	case <-time.After(s.hold):
	case <-ctx.Done():
		return
	}
	if err := ready(); err != nil {
		t.Error(err)
	}
}

// check compares a wait's outcome with the script's: success, or its reason once the grace passed.
func check(t *testing.T, s errorScript, err error, took time.Duration) {
	t.Helper()
	grace := s.grace
	switch {
	case s.want == "" && err != nil:
		t.Fatalf("%v; want the wait to succeed once the controller cleared the error", err)
	case s.want != "" && (err == nil || !strings.Contains(err.Error(), s.want)):
		t.Fatalf("error %v, want one with %q", err, s.want)
	case s.want != "" && took < grace:
		t.Errorf("failed after %s, before the grace of %s", took, grace)
	case s.want != "" && took > grace+5*time.Second:
		t.Errorf("failed after %s, long after the grace of %s", took, grace)
	}
}

// A VolumeGroupSnapshot's status.error fails the group's wait only once it stands: an API
// conflict never by itself, another error once its grace has passed uncleared.
func TestGroupWaitErrorGrace(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	for _, s := range errorScripts() {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": GroupSnapshotGroup + "/v1beta2", "kind": "VolumeGroupSnapshot",
				"metadata": map[string]any{"name": "g1", "namespace": "app"},
				"status":   map[string]any{"readyToUse": false, "error": map[string]any{"message": s.first}}}}
			dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotList"}, u)
			react, started := watchStarted()
			dyn.PrependWatchReactor("volumegroupsnapshots", react)
			go play(ctx, t, s, started, func() error {
				g, err := dyn.Resource(gvr).Namespace("app").Get(ctx, "g1", metav1.GetOptions{})
				if err != nil {
					return err
				}
				unstructured.RemoveNestedField(g.Object, "status", "error")
				_ = unstructured.SetNestedField(g.Object, true, "status", "readyToUse")
				_, err = dyn.Resource(gvr).Namespace("app").Update(ctx, g, metav1.UpdateOptions{})
				return err
			})
			cfg := Config{Timeout: 10 * time.Second, ErrorGrace: s.grace}
			r := &backupRun{engine: &engine{d: Deps{Kube: fake.NewSimpleClientset(), Dynamic: dyn}, cfg: cfg}}
			c := &cutGroup{facts: &GroupFacts{Version: "v1beta2"}, namespace: "app", name: "g1", group: &VolumeGroup{Class: "csi-dir"}}
			start := time.Now()
			err := r.waitGroup(ctx, c, false)
			check(t, s, err, time.Since(start))
		})
	}
}

// The same for a single VolumeSnapshot's wait.
func TestSnapshotWaitErrorGrace(t *testing.T) {
	tk := Task{Backup: "b1", Op: mover.OpBackup, Namespace: "app", SourceNamespace: "app", PVC: "data", Run: "r1"}
	for _, s := range errorScripts() {
		t.Run(s.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			vs := &snapv1.VolumeSnapshot{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: tk.SnapshotName()},
				Status: &snapv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapv1.VolumeSnapshotError{Message: ptr.To(s.first)}}}
			snap := snapfake.NewSimpleClientset(vs)
			react, started := watchStarted()
			snap.PrependWatchReactor("volumesnapshots", react)
			go play(ctx, t, s, started, func() error {
				got, err := snap.SnapshotV1().VolumeSnapshots("app").Get(ctx, vs.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				got.Status.Error, got.Status.ReadyToUse = nil, ptr.To(true)
				_, err = snap.SnapshotV1().VolumeSnapshots("app").Update(ctx, got, metav1.UpdateOptions{})
				return err
			})
			e := &engine{d: Deps{Kube: fake.NewSimpleClientset(), Snap: snapFake{snap}},
				cfg: Config{Timeout: 10 * time.Second, ControllerTimeout: 10 * time.Second, ErrorGrace: s.grace}, precreated: map[string]bool{"app/data": true}}
			start := time.Now()
			_, err := e.snapshot(ctx, tk, &catalog.Volume{Namespace: "app", PVC: "data", SnapshotClass: "dir"}, &createdObjects{}, false)
			check(t, s, err, time.Since(start))
		})
	}
}

// A wait that times out while an error stands names it, with the object's status.
func TestGroupWaitTimeoutNamesTheError(t *testing.T) {
	gvr := schema.GroupVersionResource{Group: GroupSnapshotGroup, Version: "v1beta2", Resource: "volumegroupsnapshots"}
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": GroupSnapshotGroup + "/v1beta2", "kind": "VolumeGroupSnapshot",
		"metadata": map[string]any{"name": "g1", "namespace": "app"},
		"status":   map[string]any{"readyToUse": false, "error": map[string]any{"message": conflict}}}}
	dyn := fakedynamic.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "VolumeGroupSnapshotList"}, u)
	r := &backupRun{engine: &engine{d: Deps{Kube: fake.NewSimpleClientset(), Dynamic: dyn}, cfg: Config{Timeout: 500 * time.Millisecond, ErrorGrace: 100 * time.Millisecond}}}
	c := &cutGroup{facts: &GroupFacts{Version: "v1beta2"}, namespace: "app", name: "g1", group: &VolumeGroup{Class: "csi-dir"}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.waitGroup(ctx, c, false)
	for _, want := range []string{"no progress for 500ms", "status.error: " + conflict, "CSIVolumeGroupSnapshot=true", "kubectl describe volumegroupsnapshot -n app g1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one with %q", err, want)
		}
	}
}

func TestTransientStatusError(t *testing.T) {
	for msg, want := range map[string]bool{
		conflict:                       true,
		"the object has been modified": true,
		"failed to take group snapshot of the volumes [v1 v2]: rpc error: code = InvalidArgument": false,
		"": false,
	} {
		if got := transientStatusError(msg); got != want {
			t.Errorf("transientStatusError(%q) = %v, want %v", msg, got, want)
		}
	}
}
