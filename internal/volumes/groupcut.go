package volumes

import (
	"context"
	"errors"
	"fmt"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
)

// cutGroup is a VolumeGroupSnapshot this run created, deleted at its end.
type cutGroup struct {
	facts     *GroupFacts
	namespace string
	name      string
}

// cutGroups cuts every volume group of the plan with one VolumeGroupSnapshot, before the single
// snapshots are requested; its members then go through snapshot-move from their member
// VolumeSnapshot. A group that fails fails its volumes with the driver's reason.
func (r *backupRun) cutGroups(ctx context.Context) error {
	facts, err := ReadGroupFacts(ctx, r.d.Discovery, r.d.Dynamic)
	if err != nil {
		facts = &GroupFacts{}
		r.d.Progress.Warn(fmt.Sprintf("group snapshots: %v; volume groups are snapshotted per claim", err))
	}
	for _, g := range planGroups(r.plan, r.claims, r.cfg.VolumeGroupBy, facts, r.precreated) {
		done := r.d.Progress.Start(fmt.Sprintf("volume group %s (%d claims, VolumeGroupSnapshotClass %s)", g.Name(), len(g.Members), g.Class))
		err := r.cutGroup(ctx, facts, g)
		done("", err)
		if err != nil {
			for _, i := range g.Members {
				r.plan[i].Status, r.plan[i].Error = catalog.VolumeFailed, err.Error()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// cutGroup creates the group's VolumeGroupSnapshot, waits until it is ready and maps each member
// claim to its member VolumeSnapshot.
func (r *backupRun) cutGroup(ctx context.Context, facts *GroupFacts, g *VolumeGroup) error {
	name := objectName("pvb-group", r.cfg.Backup, g.Value) + r.cfg.RunID
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": GroupSnapshotGroup + "/" + facts.Version, "kind": "VolumeGroupSnapshot",
		"metadata": map[string]any{"name": name, "namespace": g.Namespace, "labels": map[string]any{
			LabelManagedBy: ManagedBy, LabelBackup: r.cfg.Backup, LabelOperation: "backup"}},
		"spec": map[string]any{"volumeGroupSnapshotClassName": g.Class,
			"source": map[string]any{"selector": map[string]any{"matchLabels": map[string]any{g.Key: g.Value}}}},
	}}
	res := r.d.Dynamic.Resource(facts.Resource("volumegroupsnapshots")).Namespace(g.Namespace)
	created, err := res.Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create VolumeGroupSnapshot %s/%s of group %s: %w", g.Namespace, name, g.Name(), err)
	}
	r.groups = append(r.groups, &cutGroup{facts: facts, namespace: g.Namespace, name: name})
	what := fmt.Sprintf("VolumeGroupSnapshot %s/%s (class %s)", g.Namespace, name, g.Class)
	if err := r.waitGroup(ctx, facts, g.Namespace, name, what); err != nil {
		return err
	}
	members, err := r.groupMembers(ctx, g.Namespace, created.GetUID())
	if err != nil {
		return err
	}
	for _, i := range g.Members {
		v := &r.plan[i]
		vs := members[v.PVC]
		if vs == "" {
			v.Status, v.Error = catalog.VolumeFailed, fmt.Sprintf("%s has no member snapshot of PVC %s", what, v.PVC)
			continue
		}
		r.members[v.Namespace+"/"+v.PVC] = vs
		v.GroupSnapshot = name
		v.Reason += "; cut with volume group " + g.Name() + " (" + what + ")"
	}
	return nil
}

// waitGroup watches the VolumeGroupSnapshot until it is ready to use; its status.error fails it
// at once with the driver's reason.
func (r *backupRun) waitGroup(ctx context.Context, facts *GroupFacts, ns, name, what string) error {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	lw := kube.ListWatch(r.d.Dynamic.Resource(facts.Resource("volumegroupsnapshots")).Namespace(ns), r.d.Dynamic, kube.Named(name))
	var failed string
	err := kube.Until(wctx, lw, &unstructured.Unstructured{}, nil, func(ev watch.Event) (bool, error) {
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return false, nil
		}
		if msg, _, _ := unstructured.NestedString(u.Object, "status", "error", "message"); msg != "" {
			failed = msg
			return true, nil
		}
		ready, _, _ := unstructured.NestedBool(u.Object, "status", "readyToUse")
		return ready, nil
	})
	switch {
	case failed != "":
		return fmt.Errorf("%s failed: %s", what, failed)
	case err != nil && wctx.Err() != nil && ctx.Err() == nil:
		return fmt.Errorf("%s not ready within %s (does the snapshot controller run with --feature-gates=CSIVolumeGroupSnapshot=true?): see kubectl describe volumegroupsnapshot -n %s %s", what, r.cfg.Timeout, ns, name)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
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
