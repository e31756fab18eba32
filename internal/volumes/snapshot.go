package volumes

import (
	"context"
	"errors"
	"fmt"
	"sort"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// snapshot creates the VolumeSnapshot and waits until it is ready, failing on its error once it
// stands (errorGate).
func (e *engine) snapshot(ctx context.Context, t Task, v *catalog.Volume, created *createdObjects, kept bool) (*snapv1.VolumeSnapshot, error) {
	name := t.SnapshotName()
	if kept {
		name = t.KeptSnapshotName()
	}
	switch {
	case t.GroupMember != "": // cut by its group, deleted with it
		name = t.GroupMember
	case !e.precreated[t.Namespace+"/"+t.PVC]:
		if err := e.createSnapshot(ctx, t, v, created, kept); err != nil {
			return nil, err
		}
		created.snapshot = true
	default:
		created.snapshot = true
	}
	what := fmt.Sprintf("VolumeSnapshot %s/%s (class %s)", t.Namespace, name, v.SnapshotClass)
	ready, err := e.readySnapshot(ctx, t.Namespace, name)
	if err == nil && ready == nil {
		ready, err = e.waitSnapshot(ctx, t, name, what)
	}
	if err != nil {
		return nil, err
	}
	e.snapshotHandle(ctx, v, ready)
	return ready, nil
}

// waitSnapshot waits until VolumeSnapshot name of t's claim has a status (a snapshot controller
// took it up), then until it is ready, failing on its error once it stands.
func (e *engine) waitSnapshot(ctx context.Context, t Task, name, what string) (*snapv1.VolumeSnapshot, error) {
	w := e.snapshotWait(t, name, what)
	// A snapshot controller sets a status at once; none means none runs.
	w.What, w.Timeout = what+": waiting for a snapshot controller", e.cfg.ControllerTimeout
	w.Cond = snapshotCond(name, func(s *snapv1.VolumeSnapshot) (bool, string) { return s.Status != nil, "" })
	err := until(ctx, e.d.Kube, w)
	if errors.Is(err, ErrTimeout) {
		return nil, fmt.Errorf("%s has no status after %s: no snapshot controller seems to run in this cluster (install snapshot-controller, or use --volumes=fs)", what, e.cfg.ControllerTimeout)
	}
	if err != nil {
		return nil, err
	}
	var ready *snapv1.VolumeSnapshot
	w.What, w.Timeout = what+": waiting until readyToUse", e.cfg.Timeout
	w.Cond = snapshotCond(name, func(s *snapv1.VolumeSnapshot) (bool, string) {
		status := what + ": not ready"
		if s.Status != nil && s.Status.BoundVolumeSnapshotContentName != nil {
			status += ", content " + *s.Status.BoundVolumeSnapshotContentName
		}
		if s.Status != nil && ptr.Deref(s.Status.ReadyToUse, false) {
			ready = s
			return true, ""
		}
		return false, status
	})
	if err := until(ctx, e.d.Kube, w); err != nil {
		return nil, err
	}
	return ready, nil
}

// readySnapshot reads VolumeSnapshot ns/name once: it is returned when it is ready already (a
// snapshot requested ahead, whose volume's turn came after it was cut), nil when it is not (an
// error in its status too: the waits give it its grace). Two waits, each listing and watching it and its events, cost a loaded
// apiserver more than this one read.
func (e *engine) readySnapshot(ctx context.Context, ns, name string) (*snapv1.VolumeSnapshot, error) {
	s, err := e.d.Snap.SnapshotV1().VolumeSnapshots(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, nil // the waits say what is wrong, with their deadlines
	}
	if s.Status != nil && ptr.Deref(s.Status.ReadyToUse, false) {
		return s, nil
	}
	return nil, nil
}

// snapshotHandle records the storage system's handle of a ready snapshot in v (best effort).
func (e *engine) snapshotHandle(ctx context.Context, v *catalog.Volume, s *snapv1.VolumeSnapshot) {
	if s.Status == nil || s.Status.BoundVolumeSnapshotContentName == nil {
		return
	}
	if c, err := e.d.Snap.SnapshotV1().VolumeSnapshotContents().Get(ctx, *s.Status.BoundVolumeSnapshotContentName, metav1.GetOptions{}); err == nil && c.Status != nil && c.Status.SnapshotHandle != nil {
		v.SnapshotHandle = *c.Status.SnapshotHandle
	}
}

// snapshotWait is the wait for VolumeSnapshot ns/name of t's claim, following the events of both;
// its status error fails it once it stands.
func (e *engine) snapshotWait(t Task, name, what string) waitSpec {
	return waitSpec{
		Namespace: t.Namespace,
		What:      what,
		Timeout:   e.cfg.Timeout,
		LW:        e.snapshotListWatch(t.Namespace, name),
		Obj:       &snapv1.VolumeSnapshot{},
		Mine:      named(name),
		Events: func(ref corev1.ObjectReference) bool {
			return (ref.Kind == "VolumeSnapshot" && ref.Name == name) || (ref.Kind == "PersistentVolumeClaim" && ref.Name == t.PVC)
		},
		Status:     snapshotReport(fmt.Sprintf("VolumeSnapshot %s/%s", t.Namespace, name)),
		ErrorGrace: e.cfg.ErrorGrace,
	}
}

// snapshotReport reads a VolumeSnapshot's status error for errorGate; what names it in the error.
func snapshotReport(what string) func(runtime.Object) statusReport {
	return func(o runtime.Object) statusReport {
		st := o.(*snapv1.VolumeSnapshot).Status
		if st == nil || st.Error == nil || st.Error.Message == nil || *st.Error.Message == "" {
			return statusReport{}
		}
		msg := *st.Error.Message
		return statusReport{Msg: msg, Failed: fmt.Errorf("%s failed: %s", what, msg),
			Progress: fmt.Sprintf("ready %v, cut %v, content %s", ptr.Deref(st.ReadyToUse, false), st.CreationTime != nil, ptr.Deref(st.BoundVolumeSnapshotContentName, ""))}
	}
}

// snapshotCond asks done of the snapshot (its error is the wait's Status).
func snapshotCond(name string, done func(*snapv1.VolumeSnapshot) (bool, string)) func(runtime.Object, *kube.Stall) (bool, string, error) {
	return func(o runtime.Object, _ *kube.Stall) (bool, string, error) {
		s := o.(*snapv1.VolumeSnapshot)
		if s.Name != name {
			return false, "", nil
		}
		ok, status := done(s)
		return ok, status, nil
	}
}

// createSnapshot creates the claim's VolumeSnapshot (waiting is snapshot's job).
func (e *engine) createSnapshot(ctx context.Context, t Task, v *catalog.Volume, created *createdObjects, kept bool) error {
	spec := t.SnapshotSpec(v.SnapshotClass, kept)
	if kept {
		spec.Name = t.KeptSnapshotName()
	}
	if _, err := e.d.Snap.SnapshotV1().VolumeSnapshots(t.Namespace).Create(ctx, spec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create VolumeSnapshot %s/%s of PVC %s: %w", t.Namespace, spec.Name, t.PVC, err)
	}
	created.snapshot = true
	return nil
}

// waitCut waits until the storage system has cut the snapshot (status.creationTime set, or ready),
// failing on its error once it stands: the moment a post hook may run.
func (e *engine) waitCut(ctx context.Context, t Task, v *catalog.Volume, kept bool) error {
	name := t.SnapshotName()
	if kept {
		name = t.KeptSnapshotName()
	}
	w := e.snapshotWait(t, name, fmt.Sprintf("VolumeSnapshot %s/%s (class %s): waiting until it is cut", t.Namespace, name, v.SnapshotClass))
	w.Events = func(ref corev1.ObjectReference) bool { return ref.Kind == "VolumeSnapshot" && ref.Name == name }
	w.Cond = func(o runtime.Object, _ *kube.Stall) (bool, string, error) {
		st := o.(*snapv1.VolumeSnapshot).Status
		return st != nil && (st.CreationTime != nil || ptr.Deref(st.ReadyToUse, false)), "", nil
	}
	return until(ctx, e.d.Kube, w)
}

// snapshotListWatch lists and watches the one VolumeSnapshot ns/name.
func (e *engine) snapshotListWatch(ns, name string) cache.ListerWatcher {
	return kube.ListWatch(e.d.Snap.SnapshotV1().VolumeSnapshots(ns), e.d.Snap, kube.Named(name))
}

func named(name string) func(metav1.Object) bool {
	return func(o metav1.Object) bool { return o.GetName() == name }
}

// pruneKept deletes the claim's kept VolumeSnapshots (made by this tool, any backup) beyond the
// newest cfg.KeepSnapshots.
func (e *engine) pruneKept(ctx context.Context, t Task) ([]string, error) {
	sel := labels.SelectorFromSet(map[string]string{LabelManagedBy: ManagedBy, LabelKept: "true", LabelSourcePVC: t.PVC}).String()
	list, err := e.d.Snap.SnapshotV1().VolumeSnapshots(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list kept VolumeSnapshots of PVC %s/%s: %w", t.Namespace, t.PVC, err)
	}
	items := list.Items
	current := t.KeptSnapshotName()
	sort.Slice(items, func(i, j int) bool {
		if items[i].Name == current || items[j].Name == current {
			return items[i].Name == current // the one just made is the newest
		}
		a, b := items[i].CreationTimestamp, items[j].CreationTimestamp
		if a.Equal(&b) {
			return items[i].Name > items[j].Name
		}
		return b.Before(&a) // newest first
	})
	var deleted []string
	for i := e.cfg.KeepSnapshots; i < len(items); i++ {
		if err := deleteSnapshot(ctx, e.d.Snap, t.Namespace, items[i].Name); err != nil {
			return deleted, err
		}
		deleted = append(deleted, items[i].Name)
	}
	return deleted, nil
}

// deleteSnapshot deletes a VolumeSnapshot and, whatever its deletion policy, its content and the
// storage system's snapshot.
func deleteSnapshot(ctx context.Context, snap snapclient.Interface, ns, name string) error {
	vs, err := snap.SnapshotV1().VolumeSnapshots(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get VolumeSnapshot %s/%s: %w", ns, name, err)
	}
	content := ""
	if vs.Status != nil && vs.Status.BoundVolumeSnapshotContentName != nil {
		content = *vs.Status.BoundVolumeSnapshotContentName
		patch := []byte(`{"spec":{"deletionPolicy":"Delete"}}`)
		if _, err := snap.SnapshotV1().VolumeSnapshotContents().Patch(ctx, content, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set deletionPolicy Delete on VolumeSnapshotContent %s: %w", content, err)
		}
	}
	if err := snap.SnapshotV1().VolumeSnapshots(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete VolumeSnapshot %s/%s: %w", ns, name, err)
	}
	return nil
}
