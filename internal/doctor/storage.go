package doctor

import (
	"context"
	"fmt"
	"strings"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

const (
	storageClassCheck   = "storage class "
	snapshotClassCheck  = "snapshot class for "
	annotationDefaultSC = "storageclass.kubernetes.io/is-default-class"
)

// storageFacts are the cluster's storage objects, read once.
type storageFacts struct {
	classes map[string]*storagev1.StorageClass
	drivers map[string]*storagev1.CSIDriver
	// nodes are the drivers each node registers (CSINode).
	nodes map[string][]string
	snap  *volumes.Facts
	// snapErr is why VolumeSnapshotClasses could not be read.
	snapErr error
}

func readStorage(ctx context.Context, d *Deps) (*storageFacts, error) {
	f := &storageFacts{classes: map[string]*storagev1.StorageClass{}, drivers: map[string]*storagev1.CSIDriver{}, nodes: map[string][]string{}}
	scs, err := d.Kube.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list StorageClasses: %w", err)
	}
	for i := range scs.Items {
		f.classes[scs.Items[i].Name] = &scs.Items[i]
	}
	if list, err := d.Kube.StorageV1().CSIDrivers().List(ctx, metav1.ListOptions{}); err == nil {
		for i := range list.Items {
			f.drivers[list.Items[i].Name] = &list.Items[i]
		}
	}
	if list, err := d.Kube.StorageV1().CSINodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range list.Items {
			for _, dr := range n.Spec.Drivers {
				f.nodes[dr.Name] = append(f.nodes[dr.Name], n.Name)
			}
		}
	}
	f.snap, f.snapErr = volumes.ReadFacts(ctx, d.Discovery, d.Snap, nil, nil)
	if f.snapErr == nil && f.snap.ClassesErr != nil {
		f.snap, f.snapErr = nil, f.snap.ClassesErr // doctor reports what it could not read
	}
	if f.snap == nil {
		f.snap = &volumes.Facts{}
	}
	return f, nil
}

// classesInScope are the StorageClasses asked for, else those of the PVCs in scope and the default.
func classesInScope(ctx context.Context, d *Deps, cfg *Config, f *storageFacts) []string {
	if len(cfg.StorageClasses) > 0 {
		return cfg.StorageClasses
	}
	set := map[string]bool{}
	nss := cfg.Namespaces
	if cfg.AllNamespaces {
		nss = []string{""}
	}
	for _, ns := range nss {
		list, err := d.Kube.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			continue // the rights check names a missing right
		}
		for _, c := range list.Items {
			if c.Spec.StorageClassName != nil && *c.Spec.StorageClassName != "" {
				set[*c.Spec.StorageClassName] = true
			}
		}
	}
	for name, sc := range f.classes {
		if sc.Annotations[annotationDefaultSC] == "true" {
			set[name] = true
		}
	}
	return sortedNames(set)
}

func checkStorage(ctx context.Context, d *Deps, cfg *Config) []Result {
	f, err := readStorage(ctx, d)
	if err != nil {
		return []Result{fail("storage classes", err.Error(), "the caller needs to list storageclasses.storage.k8s.io")}
	}
	var out []Result
	drivers := map[string]bool{}
	for _, name := range classesInScope(ctx, d, cfg, f) {
		r, driver := judgeStorageClass(name, f)
		out = append(out, r)
		if driver != "" && r.Status != Fail {
			drivers[driver] = true
		}
	}
	if len(out) == 0 {
		out = append(out, warn("storage classes", "no StorageClass in use in "+namespaceScope(cfg)+" and no default StorageClass", "pass --storage-class to check (and probe) one"))
	}
	for _, driver := range sortedNames(drivers) {
		out = append(out, judgeSnapshotClass(driver, cfg, f))
	}
	return out
}

// judgeStorageClass checks that a class exists and that its CSI driver is installed; it returns
// the class's CSI driver ("" when not CSI).
func judgeStorageClass(name string, f *storageFacts) (Result, string) {
	check := storageClassCheck + name
	sc := f.classes[name]
	if sc == nil {
		return fail(check, "StorageClass "+name+" does not exist", "see `kubectl get storageclass`; map it with --storage-class-mapping on restore"), ""
	}
	p := sc.Provisioner
	csiDriver, registered := f.drivers[p], f.nodes[p]
	if csiDriver == nil && len(registered) == 0 {
		if strings.HasPrefix(p, "kubernetes.io/") {
			return ok(check, "provisioner "+p+" is not a CSI driver: its volumes are backed up with fs"), ""
		}
		return fail(check, fmt.Sprintf("provisioner %s is not installed: no CSIDriver object %s and no node registers it, so PVCs of %s stay Pending", p, p, name),
			"install the CSI driver "+p+", or use another StorageClass"), ""
	}
	var notes []string
	notes = append(notes, "CSI driver "+p)
	if csiDriver != nil {
		modes := csiDriver.Spec.VolumeLifecycleModes
		persistent := len(modes) == 0
		for _, m := range modes {
			persistent = persistent || m == storagev1.VolumeLifecyclePersistent
		}
		if !persistent {
			return fail(check, fmt.Sprintf("CSIDriver %s serves only %v volumes, not Persistent ones", p, modes), "use a StorageClass of a driver for persistent volumes"), p
		}
		policy := "ReadWriteOnceWithFSType"
		if csiDriver.Spec.FSGroupPolicy != nil {
			policy = string(*csiDriver.Spec.FSGroupPolicy)
		}
		notes = append(notes, "fsGroupPolicy "+policy)
		if policy == string(storagev1.NoneFSGroupPolicy) {
			return warn(check, strings.Join(notes, ", ")+": the kubelet never gives a non-root mover group access to these volumes",
				"run the mover as the files' owner (--mover-run-as UID) or with --mover-privileged"), p
		}
	} else {
		notes = append(notes, "no CSIDriver object (defaults apply)")
	}
	if len(registered) == 0 {
		return fail(check, strings.Join(notes, ", ")+": no node registers the driver (its node plugin is not running)", "start the driver's node DaemonSet"), p
	}
	notes = append(notes, fmt.Sprintf("registered on %d node(s)", len(registered)))
	return ok(check, strings.Join(notes, ", ")), p
}

// judgeSnapshotClass says which VolumeSnapshotClass create would use for a driver, and why.
func judgeSnapshotClass(driver string, cfg *Config, f *storageFacts) Result {
	check := snapshotClassCheck + driver
	required := snapshotsRequired(cfg)
	bad := func(detail, fix string) Result {
		if required {
			return fail(check, detail, fix)
		}
		return warn(check, detail+": auto backs these volumes up with fs", fix)
	}
	if f.snapErr != nil {
		if apierrors.IsForbidden(f.snapErr) {
			return warn(check, "cannot read VolumeSnapshotClasses: "+f.snapErr.Error(), "the caller needs to list volumesnapshotclasses.snapshot.storage.k8s.io")
		}
		return bad("cannot read VolumeSnapshotClasses: "+f.snapErr.Error(), "")
	}
	if !f.snap.SnapshotAPI {
		return bad("no snapshot API", installSnapshots)
	}
	if why := volumes.NoSnapshotRestore(driver); why != "" {
		if required {
			return fail(check, driver+": "+why, "use --volumes=fs for these volumes")
		}
		return ok(check, driver+": "+why+": auto uses fs")
	}
	if err := volumes.ValidateClassFlag(cfg.SnapshotClasses, f.snap); err != nil {
		return fail(check, err.Error(), "name an existing VolumeSnapshotClass")
	}
	wrong := otherDrivers(driver, cfg.SnapshotClasses, f.snap.Classes)
	class, why, err := volumes.ChooseClass(driver, cfg.SnapshotClasses, f.snap)
	if err != nil {
		detail := err.Error()
		if others := classesOfOthers(driver, f.snap.Classes); others != "" && len(cfg.SnapshotClasses) == 0 {
			detail += " (" + others + ")"
		}
		return bad(detail, "create a VolumeSnapshotClass for "+driver+" and annotate it "+volumes.AnnotationDefaultClass+"=true")
	}
	if len(wrong) > 0 && why != "--snapshot-class" {
		detail := fmt.Sprintf("--snapshot-class %s, not %s; %s would use %s (%s)", strings.Join(wrong, "; "), driver, driver, class.Name, why)
		if required {
			return fail(check, detail, "name a class of "+driver+", or leave --snapshot-class out")
		}
		return warn(check, detail, "name a class of "+driver+", or leave --snapshot-class out")
	}
	detail := fmt.Sprintf("VolumeSnapshotClass %s (%s), deletionPolicy %s", class.Name, why, class.DeletionPolicy)
	if w := volumes.ClassWarnings(class); len(w) > 0 {
		return warn(check, detail+": "+strings.Join(w, "; "), "")
	}
	return ok(check, detail)
}

// otherDrivers describes the --snapshot-class names that belong to drivers other than driver.
func otherDrivers(driver string, names []string, classes []snapv1.VolumeSnapshotClass) []string {
	var out []string
	for _, n := range names {
		for _, c := range classes {
			if c.Name == n && c.Driver != driver {
				out = append(out, fmt.Sprintf("%s is for driver %s", n, c.Driver))
			}
		}
	}
	return out
}

func classesOfOthers(driver string, classes []snapv1.VolumeSnapshotClass) string {
	var out []string
	for _, c := range classes {
		if c.Driver != driver {
			out = append(out, fmt.Sprintf("VolumeSnapshotClass %s is for driver %s", c.Name, c.Driver))
		}
	}
	return strings.Join(out, "; ")
}
