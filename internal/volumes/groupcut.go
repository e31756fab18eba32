package volumes

import (
	"context"
	"errors"
	"fmt"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// cutGroup is a VolumeGroupSnapshot this run created, deleted at its end.
type cutGroup struct {
	facts     *GroupFacts
	namespace string
	name      string
	uid       types.UID
	group     *VolumeGroup
}

func (c *cutGroup) what() string {
	return fmt.Sprintf("VolumeGroupSnapshot %s/%s (class %s)", c.namespace, c.name, c.group.Class)
}

// planVolumeGroups reads what group snapshots need (served version, classes) and puts the plan's
// grouped claims into VolumeGroups, before the hook windows: a group is cut inside the windows of
// its members' pods (hookWindows), or after them (cutGroups).
func (r *backupRun) planVolumeGroups(ctx context.Context) error {
	facts, err := ReadGroupFacts(ctx, r.d.Discovery, r.d.Dynamic)
	if err != nil {
		facts = &GroupFacts{}
		r.d.Progress.Warn(fmt.Sprintf("group snapshots: %v; volume groups are snapshotted per claim", err))
	}
	if err := facts.UseClasses(r.cfg.GroupSnapshotClasses); err != nil {
		return err
	}
	r.groupFacts = facts
	r.volGroups = planGroups(r.plan, r.claims, r.cfg.groupChoice(), facts)
	return nil
}

// cutGroups cuts every volume group of the plan not cut in a hook window with one
// VolumeGroupSnapshot, before the single snapshots are requested, and waits until each group is
// ready; its members then go through snapshot-move from their member VolumeSnapshot. A group that
// fails fails its volumes with the driver's reason.
func (r *backupRun) cutGroups(ctx context.Context) error {
	for _, g := range r.volGroups {
		if !r.groupPending(g) {
			continue // every member failed already (a pre hook, its cut inside a hook window)
		}
		done := r.d.Progress.Start(fmt.Sprintf("volume group %s (%s, VolumeGroupSnapshotClass %s)", g.Name(), progress.Plural(len(g.Members), "claim", "claims"), g.Class))
		err := r.cutGroup(ctx, g)
		done("", err)
		if err != nil {
			r.failGroup(g, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (r *backupRun) groupPending(g *VolumeGroup) bool {
	for _, i := range g.Members {
		if r.plan[i].Status == "" {
			return true
		}
	}
	return false
}

func (r *backupRun) failGroup(g *VolumeGroup, err error) {
	for _, i := range g.Members {
		r.plan[i].Status, r.plan[i].Error = catalog.VolumeFailed, err.Error()
	}
}

// startGroup creates the group's VolumeGroupSnapshot and, when cut is set, waits until the
// storage system has cut it (status.creationTime), not until it is ready: inside a hook window
// the application is released as soon as its data is captured.
func (r *backupRun) startGroup(ctx context.Context, g *VolumeGroup, cut bool) error {
	facts := r.groupFacts
	name := objectName("pvb-group", r.cfg.Backup, g.Value) + r.cfg.RunID
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": GroupSnapshotGroup + "/" + facts.Version, "kind": "VolumeGroupSnapshot",
		"metadata": map[string]any{"name": name, "namespace": g.Namespace, "labels": map[string]any{
			LabelManagedBy: ManagedBy, LabelBackup: r.cfg.Backup, LabelOperation: "backup"}},
		"spec": map[string]any{"volumeGroupSnapshotClassName": g.Class,
			"source": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{g.Key: g.Value}}}},
	}}
	if err := r.labelMembers(ctx, g); err != nil {
		return err
	}
	res := r.d.Dynamic.Resource(facts.Resource("volumegroupsnapshots")).Namespace(g.Namespace)
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create VolumeGroupSnapshot %s/%s of group %s: %w", g.Namespace, name, g.Name(), err)
	}
	c := &cutGroup{facts: facts, namespace: g.Namespace, name: name, uid: created.GetUID(), group: g}
	r.groups = append(r.groups, c)
	if !cut {
		return nil
	}
	return r.waitGroup(ctx, c, true)
}

// cutGroup creates the group's VolumeGroupSnapshot (unless a hook window did), waits until it is
// ready and maps each member claim to its member VolumeSnapshot.
func (r *backupRun) cutGroup(ctx context.Context, g *VolumeGroup) error {
	c := r.madeFor(g)
	if c == nil {
		if err := r.startGroup(ctx, g, false); err != nil {
			return err
		}
		c = r.madeFor(g)
	}
	err := r.waitGroup(ctx, c, false)
	if g.Auto {
		// Cut (or failed): the members' label has done its work.
		if uerr := r.unlabel(ctx, g.Value); uerr != nil && ctx.Err() == nil {
			r.d.Progress.Warn(fmt.Sprintf("volume group %s: %v (the run's end tries again)", g.Name(), uerr))
		}
	}
	if err != nil {
		return err
	}
	members, err := r.groupMembers(ctx, g.Namespace, c.uid)
	if err != nil {
		return err
	}
	for _, i := range g.Members {
		v := &r.plan[i]
		vs := members[v.PVC]
		if vs == "" {
			v.Status, v.Error = catalog.VolumeFailed, fmt.Sprintf("%s has no member snapshot of PVC %s", c.what(), v.PVC)
			continue
		}
		r.members[v.Namespace+"/"+v.PVC] = vs
		v.GroupSnapshot, v.GroupSnapshotAPIVersion = c.name, GroupSnapshotGroup+"/"+c.facts.Version
		v.Reason += "; cut with volume group " + g.Name() + " (" + c.what() + "): " + g.Why()
	}
	return nil
}

// madeFor is the VolumeGroupSnapshot this run made for g, nil when none yet.
func (r *backupRun) madeFor(g *VolumeGroup) *cutGroup {
	for _, c := range r.groups {
		if c.group == g {
			return c
		}
	}
	return nil
}

// waitGroup watches the VolumeGroupSnapshot until it is ready to use (cut: until it is cut),
// following its events; its status.error fails it once it stands (errorGate) with the driver's
// reason.
func (r *backupRun) waitGroup(ctx context.Context, c *cutGroup, cut bool) error {
	w := waitSpec{
		Namespace: c.namespace,
		What:      c.what() + ": waiting until ready",
		Timeout:   r.cfg.Timeout,
		LW:        kube.ListWatch(r.d.Dynamic.Resource(c.facts.Resource("volumegroupsnapshots")).Namespace(c.namespace), r.d.Dynamic, kube.Named(c.name)),
		Obj:       &unstructured.Unstructured{},
		Mine:      named(c.name),
		Events: func(ref corev1.ObjectReference) bool {
			return ref.Kind == "VolumeGroupSnapshot" && ref.Name == c.name
		},
		Status:     groupReport(c.what()),
		ErrorGrace: r.cfg.ErrorGrace,
		Cond: func(o runtime.Object, _ *kube.Stall) (bool, string, error) {
			u := o.(*unstructured.Unstructured)
			ready, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse")
			at, _, _ := unstructured.NestedString(u.Object, "status", "creationTime")
			return ready || (cut && at != ""), groupProgress(u), nil
		},
	}
	if cut {
		w.What = c.what() + ": waiting until it is cut"
	}
	err := until(ctx, r.d.Kube, w)
	if errors.Is(err, ErrTimeout) {
		return fmt.Errorf("%w (does the snapshot controller run with --feature-gates=CSIVolumeGroupSnapshot=true? see kubectl describe volumegroupsnapshot -n %s %s)", err, c.namespace, c.name)
	}
	return err
}

// groupReport reads a VolumeGroupSnapshot's status error for errorGate; what names it.
func groupReport(what string) func(runtime.Object) statusReport {
	return func(o runtime.Object) statusReport {
		u := o.(*unstructured.Unstructured)
		msg, _, _ := unstructured.NestedString(u.Object, "status", "error", "message")
		if msg == "" {
			return statusReport{}
		}
		return statusReport{Msg: msg, Failed: fmt.Errorf("%s failed: %s", what, msg), Progress: groupProgress(u)}
	}
}

// groupProgress is a VolumeGroupSnapshot's status besides its error, as a status line.
func groupProgress(u *unstructured.Unstructured) string {
	ready, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse")
	at, _, _ := unstructured.NestedString(u.Object, "status", "creationTime")
	content, _, _ := unstructured.NestedString(u.Object, "status", "boundVolumeGroupSnapshotContentName")
	return fmt.Sprintf("VolumeGroupSnapshot %s/%s: ready %v, cut at %q, content %q", u.GetNamespace(), u.GetName(), ready, at, content)
}

// groupMembers maps each claim cut in the group to its member VolumeSnapshot: the snapshot
// controller makes one per claim, owned by the group.
func (r *backupRun) groupMembers(ctx context.Context, ns string, uid types.UID) (map[string]string, error) {
	list, err := r.d.Snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list the member VolumeSnapshots in %s: %w", ns, err)
	}
	out := map[string]string{}
	for _, s := range list.Items {
		if owned(s, uid) && s.Spec.Source.PersistentVolumeClaimName != nil {
			out[*s.Spec.Source.PersistentVolumeClaimName] = s.Name
		}
	}
	return out, nil
}

func owned(s snapv1.VolumeSnapshot, uid types.UID) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == uid {
			return true
		}
	}
	return false
}

// deleteGroups deletes the run's VolumeGroupSnapshots with their contents and members, whatever
// their deletion policies (forced to Delete first, as for single snapshots).
func (r *backupRun) deleteGroups(ctx context.Context) {
	cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
	defer cancel()
	for _, g := range r.groups {
		if err := deleteGroup(cctx, r.d.Snap, r.d.Dynamic, g.facts, g.namespace, g.name); err != nil {
			r.d.Progress.Warn(fmt.Sprintf("cleanup: %v (run kubectl pvbackup cleanup)", err))
		}
	}
}

// deleteGroup deletes VolumeGroupSnapshot ns/name after setting deletionPolicy Delete on its
// content and on its members' contents.
func deleteGroup(ctx context.Context, snap snapclient.Interface, dyn dynamic.Interface, facts *GroupFacts, ns, name string) error {
	res := dyn.Resource(facts.Resource("volumegroupsnapshots")).Namespace(ns)
	u, err := res.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get VolumeGroupSnapshot %s/%s: %w", ns, name, err)
	}
	if !groupSettled(u) {
		if u, err = settleGroup(ctx, dyn, facts, ns, name); u == nil || err != nil {
			return err
		}
	}
	patch := []byte(`{"spec":{"deletionPolicy":"Delete"}}`)
	if list, err := snap.SnapshotV1().VolumeSnapshots(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, vs := range list.Items {
			if owned(vs, u.GetUID()) && vs.Status != nil && vs.Status.BoundVolumeSnapshotContentName != nil {
				_, _ = snap.SnapshotV1().VolumeSnapshotContents().Patch(ctx, *vs.Status.BoundVolumeSnapshotContentName, types.MergePatchType, patch, metav1.PatchOptions{})
			}
		}
	}
	if content, _, _ := unstructured.NestedString(u.Object, "status", "boundVolumeGroupSnapshotContentName"); content != "" {
		_, err := dyn.Resource(facts.Resource("volumegroupsnapshotcontents")).Patch(ctx, content, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set deletionPolicy Delete on VolumeGroupSnapshotContent %s: %w", content, err)
		}
	}
	if err := res.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete VolumeGroupSnapshot %s/%s: %w", ns, name, err)
	}
	return nil
}

// groupSettle bounds how long a VolumeGroupSnapshot still being cut is waited for before it is
// deleted anyway.
const groupSettle = time.Minute

// groupSettled says whether a VolumeGroupSnapshot's cut has ended: ready, or failed (an API
// conflict in its status is an attempt the controller retries).
func groupSettled(u *unstructured.Unstructured) bool {
	ready, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse")
	msg, _, _ := unstructured.NestedString(u.Object, "status", "error", "message")
	return ready || msg != "" && !transientStatusError(msg)
}

// settleGroup waits (at most groupSettle) until the cut of VolumeGroupSnapshot ns/name has ended
// and returns it as it is then (nil when it is gone). A group deleted while the snapshot
// controller still creates its member VolumeSnapshots leaves a member stuck in deletion — the
// controller then fails to add its finalizers to an object being deleted — and its namespace
// with it (seen on a plugin killed mid-cut, then cleanup).
func settleGroup(ctx context.Context, dyn dynamic.Interface, facts *GroupFacts, ns, name string) (*unstructured.Unstructured, error) {
	wctx, cancel := context.WithTimeout(ctx, groupSettle)
	defer cancel()
	res := dyn.Resource(facts.Resource("volumegroupsnapshots")).Namespace(ns)
	var last *unstructured.Unstructured
	err := kube.Until(wctx, kube.ListWatch(res, dyn, kube.Named(name)), &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			last = nil
			return true, nil
		}
		last = u
		return groupSettled(u), nil
	})
	if err != nil && wctx.Err() == nil {
		return nil, fmt.Errorf("wait for VolumeGroupSnapshot %s/%s to finish its cut before deleting it: %w", ns, name, err)
	}
	if last == nil && err == nil {
		return nil, nil // gone meanwhile
	}
	if last == nil {
		return res.Get(ctx, name, metav1.GetOptions{})
	}
	return last, nil // settled, or not within groupSettle: deleted as it is
}

// GroupLeftovers lists the VolumeGroupSnapshots this tool made for a backup ("" = of every
// backup) that are still there: a killed run's (cleanup).
func GroupLeftovers(ctx context.Context, disc discovery.DiscoveryInterface, dyn dynamic.Interface, backup string) ([]Object, error) {
	v, err := GroupSnapshotVersion(disc)
	if err != nil || v == "" || dyn == nil {
		return nil, err
	}
	facts := &GroupFacts{Version: v}
	list, err := dyn.Resource(facts.Resource("volumegroupsnapshots")).Namespace("").List(ctx, metav1.ListOptions{LabelSelector: Selector(backup)})
	if err != nil {
		return nil, fmt.Errorf("list VolumeGroupSnapshots labelled %s: %w", Selector(backup), err)
	}
	var out []Object
	for _, u := range list.Items {
		out = append(out, Object{Kind: "VolumeGroupSnapshot", Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	return out, nil
}

// DeleteGroupSnapshots deletes VolumeGroupSnapshots listed by GroupLeftovers, with their contents
// and member snapshots whatever their deletion policies.
func DeleteGroupSnapshots(ctx context.Context, snap snapclient.Interface, disc discovery.DiscoveryInterface, dyn dynamic.Interface, objs []Object) error {
	if len(objs) == 0 {
		return nil
	}
	v, err := GroupSnapshotVersion(disc)
	if err != nil {
		return err
	}
	var errs []error
	for _, o := range objs {
		errs = append(errs, deleteGroup(ctx, snap, dyn, &GroupFacts{Version: v}, o.Namespace, o.Name))
	}
	return errors.Join(errs...)
}
