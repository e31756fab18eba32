package volumes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/policy"
)

// noSnapshotRestore are CSI drivers whose snapshots cannot be restored into a new volume the
// mover could read (or that have no snapshots): their volumes go through fs in auto mode.
var noSnapshotRestore = map[string]string{
	"file.csi.azure.com": "Azure Files snapshots cannot be restored into a new volume",
	"efs.csi.aws.com":    "EFS has no CSI snapshots",
	"nfs.csi.k8s.io":     "the NFS driver's snapshots are tarballs that cannot back a new volume reliably",
}

// ErrNoSnapshotAPI means the cluster serves no snapshot.storage.k8s.io/v1 VolumeSnapshots.
var ErrNoSnapshotAPI = errors.New("the cluster has no VolumeSnapshot API (snapshot.storage.k8s.io/v1)")

// Facts are what the decisions depend on, read once per backup.
type Facts struct {
	SnapshotAPI bool
	Classes     []snapv1.VolumeSnapshotClass
	// ClassesErr is why the classes could not be listed (the caller may not list them): only
	// the decisions that need a class fail with it, so fs needs no snapshot rights.
	ClassesErr error
	// PVs by name: the driver of a bound claim.
	PVs map[string]*corev1.PersistentVolume
	// ClassesDenied and PVsDenied say why the classes or the PVs could not be read: a namespace
	// admin may read neither (both are cluster-scoped). fs needs neither; the snapshot modes do.
	ClassesDenied, PVsDenied string
}

// ReadFacts reads the snapshot API, the VolumeSnapshotClasses and the PVs of claims.
func ReadFacts(ctx context.Context, disc discovery.DiscoveryInterface, snap snapclient.Interface, pvGet func(ctx context.Context, name string) (*corev1.PersistentVolume, error), claims []*corev1.PersistentVolumeClaim) (*Facts, error) {
	f := &Facts{PVs: map[string]*corev1.PersistentVolume{}}
	res, err := disc.ServerResourcesForGroupVersion(snapv1.SchemeGroupVersion.String())
	switch {
	case err == nil:
		for _, r := range res.APIResources {
			if r.Name == "volumesnapshots" {
				f.SnapshotAPI = true
			}
		}
	case apierrors.IsNotFound(err):
	default:
		return nil, fmt.Errorf("discover %s: %w", snapv1.SchemeGroupVersion, err)
	}
	if f.SnapshotAPI && snap != nil {
		list, err := snap.SnapshotV1().VolumeSnapshotClasses().List(ctx, metav1.ListOptions{})
		switch {
		case apierrors.IsForbidden(err):
			f.ClassesErr = fmt.Errorf("list VolumeSnapshotClasses: %w", err)
			f.ClassesDenied = "not allowed to list volumesnapshotclasses.snapshot.storage.k8s.io (cluster-scoped)"
		case err != nil:
			return nil, fmt.Errorf("list VolumeSnapshotClasses: %w", err)
		default:
			f.Classes = list.Items
		}
	}
	for _, c := range claims {
		if c.Spec.VolumeName == "" || f.PVs[c.Spec.VolumeName] != nil {
			continue
		}
		pv, err := pvGet(ctx, c.Spec.VolumeName)
		if err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			if apierrors.IsForbidden(err) {
				f.PVsDenied = "not allowed to get persistentvolumes (cluster-scoped)"
				continue
			}
			return nil, fmt.Errorf("get PersistentVolume %s of PVC %s/%s: %w", c.Spec.VolumeName, c.Namespace, c.Name, err)
		}
		f.PVs[pv.Name] = pv
	}
	return f, nil
}

// Decision is what happens to one PVC, and why.
type Decision struct {
	Mode          Mode
	Reason        string
	Driver        string // CSI driver, "" for other volumes
	SnapshotClass string
	Warnings      []string
}

// Decide chooses the mode of one claim. requested is --volumes; classFlag is --snapshot-class
// (names; each applies to the driver its class belongs to). An error means the claim cannot be
// backed up as asked; its text says why and what to do.
func Decide(requested Mode, classFlag []string, pvc *corev1.PersistentVolumeClaim, f *Facts) (Decision, error) {
	return DecideRequest(Request{Mode: requested}, classFlag, pvc, f)
}

// Request is what the user asked for: the --volumes mode, and a resource policy file whose
// rules come before it.
type Request struct {
	Mode     Mode
	Policies *policy.Policies
	// SnapshotMoveData makes the policy action snapshot mean snapshot-move (Velero's
	// --snapshot-move-data); without it, snapshot keeps VolumeSnapshots, as Velero's CSI snapshots do.
	SnapshotMoveData bool
}

// PolicyMode is the mode of a resource policy action: skip is none, fs-backup is fs, snapshot is
// snapshot (VolumeSnapshots kept, Velero's CSI snapshot) or, with moveData, snapshot-move (Velero's
// data mover), and snapshot-move is ours.
func PolicyMode(a policy.Action, moveData bool) Mode {
	switch a {
	case policy.Skip:
		return ModeNone
	case policy.FSBackup:
		return ModeFS
	case policy.Snapshot:
		if moveData {
			return ModeSnapshotMove
		}
		return ModeSnapshot
	}
	return ModeSnapshotMove
}

// requestedMode applies the precedence: the PVC's annotation (the most specific word, written on
// the claim itself), then the first matching resource policy rule, then --volumes. It returns the
// mode and where it came from, for the volume's reason.
func requestedMode(req Request, pvc *corev1.PersistentVolumeClaim, f *Facts) (Mode, string, error) {
	if a, ok := pvc.Annotations[AnnotationMode]; ok {
		m, err := ParseMode(a)
		if err != nil {
			return req.Mode, "", fmt.Errorf("PVC %s/%s: annotation %s: %w", pvc.Namespace, pvc.Name, AnnotationMode, err)
		}
		return m, "annotation " + AnnotationMode + "=" + a, nil
	}
	if r := req.Policies.Match(policy.Volume{PVC: pvc, PV: f.PVs[pvc.Spec.VolumeName]}); r != nil {
		return PolicyMode(r.Action, req.SnapshotMoveData), r.String(), nil
	}
	return req.Mode, "--volumes=" + string(req.Mode), nil
}

// DecideRequest is Decide with a resource policy.
func DecideRequest(req Request, classFlag []string, pvc *corev1.PersistentVolumeClaim, f *Facts) (Decision, error) {
	mode, source, err := requestedMode(req, pvc, f)
	d := Decision{Mode: mode}
	if err != nil {
		return d, err
	}
	d, err = decide(d, source, classFlag, pvc, f)
	if err != nil && strings.HasPrefix(source, "resource policy") {
		err = fmt.Errorf("%w (mode %s from %s)", err, mode, source)
	}
	return d, err
}

func decide(d Decision, source string, classFlag []string, pvc *corev1.PersistentVolumeClaim, f *Facts) (Decision, error) {
	if d.Mode == ModeNone {
		d.Reason = source
		return d, nil
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		d.Mode, d.Reason = ModeNone, fmt.Sprintf("claim is %s, not Bound: it holds no data yet", phaseOr(pvc.Status.Phase))
		return d, nil
	}
	pv := f.PVs[pvc.Spec.VolumeName]
	if pv != nil && pv.Spec.CSI != nil {
		d.Driver = pv.Spec.CSI.Driver
	}
	class, classWhy, classErr := ChooseClass(d.Driver, classFlag, f)
	denied := f.denied(pv)
	switch d.Mode {
	case ModeFS:
		d.Reason = source
		if isBlock(pvc) {
			d.Reason += "; raw block volume read directly through volumeDevices (while no pod uses it, or ReadWriteMany)"
		}
		return d, nil
	case ModeSnapshotMove, ModeSnapshot:
		if denied != "" {
			return d, fmt.Errorf("PVC %s/%s: %s: %s; a namespace admin needs more rights for snapshots (`kubectl pvbackup doctor` prints the Role and ClusterRole to grant), or use --volumes=fs", pvc.Namespace, pvc.Name, d.Mode, denied)
		}
		if d.Driver == "" {
			return d, fmt.Errorf("PVC %s/%s: %s needs a CSI volume, and its volume %s is not one: use --volumes=fs (or annotate the PVC %s=fs)", pvc.Namespace, pvc.Name, d.Mode, pvc.Spec.VolumeName, AnnotationMode)
		}
		if !f.SnapshotAPI {
			return d, fmt.Errorf("PVC %s/%s: %s: %w: install the snapshot CRDs and snapshot-controller, or use --volumes=fs", pvc.Namespace, pvc.Name, d.Mode, ErrNoSnapshotAPI)
		}
		if classErr != nil {
			return d, fmt.Errorf("PVC %s/%s: %s: %w", pvc.Namespace, pvc.Name, d.Mode, classErr)
		}
		if len(classFlag) > 0 && classWhy != "--snapshot-class" {
			// Asked for this mode with classes of other drivers only: a mistake, not a fallback.
			return d, wrongClasses(d, pvc, classFlag, f, class, classWhy)
		}
		d.SnapshotClass, d.Reason = class.Name, source+"; VolumeSnapshotClass "+class.Name+" ("+classWhy+")"
		d.Warnings = append(d.Warnings, classWarnings(class)...)
		return d, nil
	}
	// auto
	if isBlock(pvc) {
		return decideBlockAuto(d, pvc, class, classWhy, classErr, denied, f), nil
	}
	return decideAuto(d, pvc, class, classWhy, classErr, denied, f)
}

// wrongClasses is the error of a snapshot mode asked for with --snapshot-class naming classes
// of other drivers only.
func wrongClasses(d Decision, pvc *corev1.PersistentVolumeClaim, classFlag []string, f *Facts, class *snapv1.VolumeSnapshotClass, classWhy string) error {
	var wrong []string
	for _, n := range classFlag {
		for _, c := range f.Classes {
			if c.Name == n {
				wrong = append(wrong, fmt.Sprintf("%s is for driver %s", n, c.Driver))
			}
		}
	}
	return fmt.Errorf("PVC %s/%s: %s: --snapshot-class %s, not %s (the driver of volume %s): name a class of %s, or leave --snapshot-class out to use %s (%s)",
		pvc.Namespace, pvc.Name, d.Mode, strings.Join(wrong, "; "), d.Driver, pvc.Spec.VolumeName, d.Driver, class.Name, classWhy)
}

// decideAuto chooses the mode of a filesystem claim under auto: snapshot-move where the driver
// has a VolumeSnapshotClass and can restore from a snapshot, fs otherwise.
func decideAuto(d Decision, pvc *corev1.PersistentVolumeClaim, class *snapv1.VolumeSnapshotClass, classWhy string, classErr error, denied string, f *Facts) (Decision, error) {
	switch {
	case denied != "":
		d.Mode, d.Reason = ModeFS, denied+": its snapshot support cannot be checked"
	case d.Driver == "":
		d.Mode, d.Reason = ModeFS, "not a CSI volume"
	case noSnapshotRestore[d.Driver] != "":
		d.Mode, d.Reason = ModeFS, d.Driver+": "+noSnapshotRestore[d.Driver]
	case !f.SnapshotAPI:
		d.Mode, d.Reason = ModeFS, "the cluster has no VolumeSnapshot API"
	case f.ClassesErr != nil: // not a fact about the volume: auto cannot decide
		return d, fmt.Errorf("PVC %s/%s: auto: %w (or choose --volumes=fs)", pvc.Namespace, pvc.Name, f.ClassesErr)
	case classErr != nil:
		d.Mode, d.Reason = ModeFS, classErr.Error()
	default:
		d.Mode, d.SnapshotClass = ModeSnapshotMove, class.Name
		d.Reason = "CSI driver " + d.Driver + " has VolumeSnapshotClass " + class.Name + " (" + classWhy + ")"
		d.Warnings = append(d.Warnings, classWarnings(class)...)
	}
	return d, nil
}

// denied says why the facts a snapshot of a claim bound to pv needs could not be read ("" when
// they were): its PV (the CSI driver), or the VolumeSnapshotClasses.
func (f *Facts) denied(pv *corev1.PersistentVolume) string {
	switch {
	case pv == nil && f.PVsDenied != "":
		return f.PVsDenied
	case f.SnapshotAPI && f.ClassesDenied != "":
		return f.ClassesDenied
	}
	return ""
}

// isBlock says whether the claim is a raw block volume.
func isBlock(pvc *corev1.PersistentVolumeClaim) bool {
	return pvc.Spec.VolumeMode != nil && *pvc.Spec.VolumeMode == corev1.PersistentVolumeBlock
}

// decideBlockAuto is auto for a raw block volume: snapshot-move where its driver can snapshot
// (fs mode reads filesystems only), else nothing, with a warning saying why (also when the facts
// are denied to a namespace admin: fs is no fallback for a device).
func decideBlockAuto(d Decision, pvc *corev1.PersistentVolumeClaim, class *snapv1.VolumeSnapshotClass, classWhy string, classErr error, denied string, f *Facts) Decision {
	var why string
	switch {
	case denied != "": // fs mode is no fallback for a device
		why = denied + ": its snapshot support cannot be checked"
	case d.Driver == "":
		why = "not a CSI volume"
	case noSnapshotRestore[d.Driver] != "":
		why = d.Driver + ": " + noSnapshotRestore[d.Driver]
	case !f.SnapshotAPI:
		why = "the cluster has no VolumeSnapshot API"
	case classErr != nil:
		why = classErr.Error()
	default:
		d.Mode, d.SnapshotClass = ModeSnapshotMove, class.Name
		d.Reason = "raw block volume; CSI driver " + d.Driver + " has VolumeSnapshotClass " + class.Name + " (" + classWhy + ")"
		d.Warnings = append(d.Warnings, classWarnings(class)...)
		return d
	}
	d.Mode, d.Reason = ModeNone, "raw block volume without snapshots ("+why+"): fs mode reads filesystems only"
	d.Warnings = append(d.Warnings, fmt.Sprintf("PVC %s/%s is a raw block volume that cannot be snapshotted (%s): its data is not backed up", pvc.Namespace, pvc.Name, why))
	return d
}

func phaseOr(p corev1.PersistentVolumeClaimPhase) string {
	if p == "" {
		return "Pending"
	}
	return string(p)
}

// ChooseClass picks the VolumeSnapshotClass of a driver: a class named by --snapshot-class, then
// one labelled pvbackup.io/snapshot-class=true or velero.io/csi-volumesnapshot-class=true, then
// the driver's default class. It returns the class and why it was chosen.
func ChooseClass(driver string, classFlag []string, f *Facts) (*snapv1.VolumeSnapshotClass, string, error) {
	if driver == "" {
		return nil, "", errors.New("not a CSI volume")
	}
	if f.ClassesErr != nil {
		return nil, "", f.ClassesErr
	}
	byName := map[string]*snapv1.VolumeSnapshotClass{}
	var mine []*snapv1.VolumeSnapshotClass
	for i := range f.Classes {
		c := &f.Classes[i]
		byName[c.Name] = c
		if c.Driver == driver {
			mine = append(mine, c)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Name < mine[j].Name })
	var wrong []string
	for _, n := range classFlag {
		c, ok := byName[n]
		if !ok {
			continue // checked by ValidateClassFlag
		}
		if c.Driver == driver {
			return c, "--snapshot-class", nil
		}
		wrong = append(wrong, fmt.Sprintf("%s is for driver %s", n, c.Driver))
	}
	if len(classFlag) > 0 && len(wrong) == len(classFlag) && len(mine) == 0 {
		return nil, "", fmt.Errorf("no VolumeSnapshotClass for CSI driver %s (--snapshot-class %s): create one for %s, or use --volumes=fs", driver, strings.Join(wrong, "; "), driver)
	}
	for _, label := range []string{LabelClassPlain, LabelClassVelero} {
		for _, c := range mine {
			if c.Labels[label] == "true" {
				return c, "label " + label, nil
			}
		}
	}
	for _, c := range mine {
		if c.Annotations[AnnotationDefaultClass] == "true" {
			return c, "the driver's default class", nil
		}
	}
	if len(mine) == 1 {
		return nil, "", fmt.Errorf("VolumeSnapshotClass %s of CSI driver %s is neither the default (annotation %s=true) nor labelled %s=true: mark it, or pass --snapshot-class %s", mine[0].Name, driver, AnnotationDefaultClass, LabelClassPlain, mine[0].Name)
	}
	if len(mine) > 1 {
		names := make([]string, len(mine))
		for i, c := range mine {
			names[i] = c.Name
		}
		return nil, "", fmt.Errorf("CSI driver %s has VolumeSnapshotClasses %s but none is chosen: pass --snapshot-class or label one %s=true", driver, strings.Join(names, ", "), LabelClassPlain)
	}
	return nil, "", fmt.Errorf("no VolumeSnapshotClass for CSI driver %s", driver)
}

// ValidateClassFlag checks that every --snapshot-class exists, before anything is created.
func ValidateClassFlag(classFlag []string, f *Facts) error {
	if len(classFlag) > 0 && f.ClassesErr != nil {
		return fmt.Errorf("--snapshot-class: %w", f.ClassesErr)
	}
	for _, n := range classFlag {
		found := false
		for _, c := range f.Classes {
			found = found || c.Name == n
		}
		if !found {
			if !f.SnapshotAPI {
				return fmt.Errorf("--snapshot-class %s: %w", n, ErrNoSnapshotAPI)
			}
			return fmt.Errorf("--snapshot-class %s: no such VolumeSnapshotClass (see `kubectl get volumesnapshotclasses`)", n)
		}
	}
	return nil
}

// NoSnapshotRestore says why a CSI driver's snapshots cannot be used ("" when they can).
func NoSnapshotRestore(driver string) string { return noSnapshotRestore[driver] }

// ClassWarnings are the problems of a VolumeSnapshotClass that do not stop a backup (Longhorn
// without type: snap).
func ClassWarnings(c *snapv1.VolumeSnapshotClass) []string { return classWarnings(c) }

func classWarnings(c *snapv1.VolumeSnapshotClass) []string {
	if c.Driver == "driver.longhorn.io" && c.Parameters["type"] != "snap" {
		return []string{fmt.Sprintf("VolumeSnapshotClass %s (Longhorn) has no parameters.type: snap: each snapshot becomes a full Longhorn backup to its backup target, which is slow and costly; set type: snap", c.Name)}
	}
	return nil
}
