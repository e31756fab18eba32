package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

const (
	groupSnapshotGroup = "groupsnapshot.storage.k8s.io"
	// ControllerLease is the leader-election Lease of external-snapshotter's snapshot-controller
	// (cmd/snapshot-controller: lockName "snapshot-controller-leader").
	ControllerLease  = "snapshot-controller-leader"
	installSnapshots = "install the snapshot CRDs and snapshot-controller (github.com/kubernetes-csi/external-snapshotter), or back up with --volumes=fs"
)

// controllerSelectors find snapshot-controller pods as its upstream manifests and common charts
// label them.
var controllerSelectors = []string{"app.kubernetes.io/name=snapshot-controller", "app=snapshot-controller", "app=csi-snapshot-controller"}

func snapshotsRequired(cfg *Config) bool {
	return cfg.Mode == "snapshot-move" || cfg.Mode == "snapshot"
}

// snapshotAPI reports whether snapshot.storage.k8s.io/v1 serves the three kinds, and the
// group's served versions.
func snapshotAPI(d *Deps) (served []string, missing []string, err error) {
	groups, err := d.Discovery.ServerGroups()
	if err != nil {
		return nil, nil, err
	}
	for _, g := range groups.Groups {
		if g.Name == snapv1.GroupName {
			for _, v := range g.Versions {
				served = append(served, v.Version)
			}
		}
	}
	if len(served) == 0 {
		return nil, nil, nil
	}
	res, err := d.Discovery.ServerResourcesForGroupVersion(snapv1.SchemeGroupVersion.String())
	if err != nil && !apierrors.IsNotFound(err) {
		return served, nil, err
	}
	have := map[string]bool{}
	if res != nil {
		for _, r := range res.APIResources {
			have[r.Name] = true
		}
	}
	for _, r := range []string{"volumesnapshots", "volumesnapshotcontents", "volumesnapshotclasses"} {
		if !have[r] {
			missing = append(missing, r+"."+snapv1.GroupName+"/v1")
		}
	}
	return served, missing, nil
}

func checkSnapshotAPI(ctx context.Context, d *Deps, cfg *Config) []Result {
	const check = "snapshot API"
	served, missing, err := snapshotAPI(d)
	switch {
	case err != nil:
		return []Result{fail(check, "discover the API groups: "+err.Error(), "check that the cluster is reachable")}
	case len(served) == 0:
		detail := "the cluster serves no " + snapv1.GroupName + ": auto backs up every volume with fs"
		if snapshotsRequired(cfg) {
			return []Result{fail(check, "the cluster serves no "+snapv1.GroupName+", which --volumes="+string(cfg.Mode)+" needs", installSnapshots)}
		}
		return []Result{warn(check, detail, installSnapshots)}
	case len(missing) > 0:
		return []Result{fail(check, "served versions "+strings.Join(served, ", ")+" but no "+strings.Join(missing, ", "), "install the v1 snapshot CRDs of external-snapshotter v4 or later")}
	}
	out := []Result{ok(check, "served versions "+strings.Join(served, ", ")+"; v1 has VolumeSnapshots, VolumeSnapshotContents, VolumeSnapshotClasses")}
	return append(out, checkGroupSnapshots(ctx, d))
}

// checkGroupSnapshots reports whether volume groups can be cut here: the served
// VolumeGroupSnapshot version this tool speaks, the drivers with a VolumeGroupSnapshotClass, and
// what the snapshot-controller pods' flags say of the CSIVolumeGroupSnapshot gate (groupgate.go).
func checkGroupSnapshots(ctx context.Context, d *Deps) Result {
	const check = "VolumeGroupSnapshot API"
	g, err := volumes.ReadGroupFacts(ctx, d.Discovery, d.Dynamic)
	switch {
	case err != nil:
		return warn(check, err.Error(), "volume groups are snapshotted per claim until it can be read")
	case g.Version == "":
		return ok(check, "not served (v1 or v1beta2): claims labelled "+volumes.LabelVolumeGroup+" are snapshotted one by one, with a warning")
	case len(g.Classes) == 0:
		return warn(check, groupSnapshotGroup+"/"+g.Version+" served, but no VolumeGroupSnapshotClass is chosen for any driver: volume groups are snapshotted per claim",
			"create a VolumeGroupSnapshotClass for the driver (annotated "+volumes.AnnotationDefaultGroupClass+"=true when it has several)")
	}
	var cls []string
	for driver, c := range g.Classes {
		cls = append(cls, driver+": "+c)
	}
	sort.Strings(cls)
	r := ok(check, groupSnapshotGroup+"/"+g.Version+" served; VolumeGroupSnapshotClasses "+strings.Join(cls, ", ")+" (other drivers snapshot their groups per claim)")
	return checkGroupGate(ctx, d, g.Version, r)
}

// controllerPods finds snapshot-controller pods by label, else by name in kube-system.
func controllerPods(ctx context.Context, d *Deps) ([]corev1.Pod, error) {
	var firstErr error
	for _, sel := range controllerSelectors {
		list, err := d.Kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			firstErr = err
			continue
		}
		if len(list.Items) > 0 {
			return list.Items, nil
		}
	}
	list, err := d.Kube.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		if firstErr == nil {
			firstErr = err
		}
		return nil, firstErr
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if strings.Contains(p.Name, "snapshot-controller") {
			out = append(out, p)
		}
	}
	return out, nil
}

// controllerLease finds the leader-election Lease in any namespace (or, without the right to
// list them everywhere, in kube-system and default).
func controllerLease(ctx context.Context, d *Deps) (*leaseInfo, error) {
	list, err := d.Kube.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", ControllerLease).String()})
	if err == nil {
		for _, l := range list.Items {
			if l.Name == ControllerLease {
				return newLeaseInfo(&l), nil
			}
		}
		return nil, nil
	}
	for _, ns := range []string{"kube-system", "default"} {
		l, gerr := d.Kube.CoordinationV1().Leases(ns).Get(ctx, ControllerLease, metav1.GetOptions{})
		if gerr == nil {
			return newLeaseInfo(l), nil
		}
	}
	return nil, err
}

func checkSnapshotController(ctx context.Context, d *Deps, cfg *Config) []Result {
	const check = "snapshot controller"
	served, _, err := snapshotAPI(d)
	if err != nil || len(served) == 0 {
		return nil // the API check says it
	}
	pods, perr := controllerPods(ctx, d)
	lease, lerr := controllerLease(ctx, d)
	return []Result{judgeController(check, pods, lease, perr, lerr, d.Now())}
}

// judgeController decides from what was found: a ready pod or a fresh Lease means a controller
// runs; a stale Lease or pods that are not ready mean it does not; nothing found is a warning,
// since a managed control plane runs it where no client sees it.
func judgeController(check string, pods []corev1.Pod, lease *leaseInfo, perr, lerr error, now time.Time) Result {
	var ready, notReady []string
	for _, p := range pods {
		desc := p.Namespace + "/" + p.Name
		if v := imageTag(p); v != "" {
			desc += " (" + v + ")"
		}
		if podReady(&p) {
			ready = append(ready, desc)
		} else {
			notReady = append(notReady, desc+": "+podState(&p))
		}
	}
	const fix = "start the snapshot controller (kubectl -n kube-system get deploy,pods | grep snapshot-controller; its logs say why it stopped)"
	switch {
	case len(ready) > 0:
		return ok(check, "pod "+strings.Join(ready, ", ")+" ready"+rateNote(pods))
	case lease != nil && lease.fresh(now):
		return ok(check, lease.describe(now))
	case lease != nil:
		return fail(check, lease.describe(now)+": the controller is not running, and VolumeSnapshots would never become ready", fix)
	case len(notReady) > 0:
		return fail(check, "pod "+strings.Join(notReady, ", ")+" not ready", fix)
	}
	detail := "no pod labelled " + strings.Join(controllerSelectors, " or ") + " and no Lease " + ControllerLease
	if perr != nil || lerr != nil {
		detail += fmt.Sprintf(" (could not look everywhere: %v)", firstError(perr, lerr))
	}
	return warn(check, detail+": it may run where this client cannot see it (a managed control plane)", "run `kubectl pvbackup doctor --storage-class CLASS` (the probe takes a real snapshot), or install snapshot-controller")
}

func firstError(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

type leaseInfo struct {
	namespace, holder string
	renewed           time.Time
	duration          time.Duration
}

func newLeaseInfo(l *coordv1.Lease) *leaseInfo {
	li := &leaseInfo{namespace: l.Namespace, holder: ptr.Deref(l.Spec.HolderIdentity, ""),
		duration: time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 15)) * time.Second}
	if l.Spec.RenewTime != nil {
		li.renewed = l.Spec.RenewTime.Time
	}
	return li
}

func (l *leaseInfo) fresh(now time.Time) bool {
	return l.holder != "" && !l.renewed.IsZero() && now.Sub(l.renewed) <= l.duration
}

func (l *leaseInfo) describe(now time.Time) string {
	if l.holder == "" {
		return fmt.Sprintf("Lease %s/%s has no holder", l.namespace, ControllerLease)
	}
	return fmt.Sprintf("Lease %s/%s held by %s, renewed %s ago (lease duration %s)", l.namespace, ControllerLease, l.holder,
		now.Sub(l.renewed).Round(100*time.Millisecond), l.duration)
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podState(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			return w.Reason + ": " + w.Message
		}
		if t := cs.State.Terminated; t != nil {
			return fmt.Sprintf("terminated: %s (exit %d)", t.Reason, t.ExitCode)
		}
	}
	return string(p.Status.Phase)
}

// imageTag is the version a controller pod runs, from its image ("" when untagged).
func imageTag(p corev1.Pod) string {
	for _, c := range p.Spec.Containers {
		if !strings.Contains(c.Image, "snapshot-controller") {
			continue
		}
		if i := strings.LastIndex(c.Image, ":"); i > strings.LastIndex(c.Image, "/") {
			return c.Image[i+1:]
		}
	}
	return ""
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
