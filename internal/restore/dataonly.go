package restore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mapping"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// DataConfig is a data-only restore: the data of some volumes into new or empty claims, and
// nothing else created or changed.
type DataConfig struct {
	Backup string
	// Volumes are the claims as backed up: namespace/pvc.
	Volumes []string
	// Target, with one volume, is the claim to fill (namespace/name); default: the same name in
	// the (mapped) namespace.
	Target           string
	NamespaceMapping mapping.Map
	// StorageClassMapping renames the StorageClass of a claim created here.
	StorageClassMapping mapping.Map
	// IncludePath restores only this directory of each volume.
	IncludePath string
	ArchiveKey  string // keyring.ArchiveKey: decrypts the backup's archive (for the claims' specs)
	DryRun      bool
	// Timeout is how long the wait for an in-place claim's pods to go may see none go
	// (--timeout, the volume engine's no-progress deadline); 0: 10 minutes.
	Timeout time.Duration
}

func (c DataConfig) timeout() time.Duration {
	if c.Timeout == 0 {
		return 10 * time.Minute
	}
	return c.Timeout
}

// DataDeps are what a data-only restore uses: the claims through the typed client, the
// archive (for the claims' specs) and the volume engine.
type DataDeps struct {
	Kube    kubernetes.Interface
	Snap    snapclient.Interface // checks a kept VolumeSnapshot before a claim is made from it; nil: not checked
	Catalog *catalog.Catalog
	// Source, when set, is read instead of Catalog: the volumes from its header, the claims'
	// specs from its objects (a Velero backup).
	Source   Source
	Volumes  VolumeEngine
	Progress progress.Reporter
	// Preflight checks the claims the movers fill before anything is created (nil: none).
	Preflight Preflight
}

// dataTarget is one volume's way into the cluster.
type dataTarget struct {
	vol     catalog.Volume
	ns, pvc string
	claim   *corev1.PersistentVolumeClaim // to create; nil: the claim exists
	item    int                           // index in Result.Volumes
	// kept: the data is a VolumeSnapshot kept by snapshot mode, not Kopia data: the claim is
	// provisioned from it (a new claim in its namespace only), no mover runs.
	kept bool
}

// DataOnly restores the data of cfg.Volumes. A claim that does not exist is created from the
// backed-up claim's spec (StorageClass mapped, no volumeName, no data source) and deleted again
// if its fill fails; an existing claim is filled only if it holds nothing (the mover checks).
func DataOnly(ctx context.Context, d DataDeps, cfg DataConfig) (*Result, error) {
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	vols, objects, err := readData(ctx, d, cfg)
	if err != nil {
		return nil, err
	}
	targets, err := dataTargets(vols, cfg)
	if err != nil {
		return nil, err
	}
	if err := dataPreflight(ctx, d, targets, cfg, false); err != nil {
		return nil, err
	}
	res := &Result{Backup: cfg.Backup, DryRun: cfg.DryRun, Summary: map[Action]int{}, Items: []Item{}}
	entries, err := objects()
	if err != nil {
		return nil, err
	}
	specs := claimSpecs(entries, cfg)
	for i := range targets {
		t := &targets[i]
		t.item = len(res.Volumes)
		res.Volumes = append(res.Volumes, VolumeItem{Namespace: t.ns, PVC: t.pvc, From: t.vol.Namespace + "/" + t.vol.PVC, Mode: t.vol.Mode, KopiaSnapshot: t.vol.KopiaSnapshot})
		if err := prepareTarget(ctx, d.Kube, t, specs, cfg); err != nil {
			setVolume(res, t, Failed, err.Error())
		} else if err := checkKept(ctx, d.Snap, t, cfg); err != nil {
			setVolume(res, t, Failed, err.Error())
		}
	}
	if cfg.DryRun {
		dryRunData(res, targets, cfg)
		return res, nil
	}
	return res, fillData(ctx, d, cfg, res, targets)
}

func setVolume(res *Result, t *dataTarget, a Action, reason string) {
	res.Volumes[t.item].Action, res.Volumes[t.item].Reason = a, reason
}

// readData reads the backup's volume records, and returns how to read its objects: from
// d.Source when set, else from the catalog's manifest and archive (read only once the volumes
// asked for are known to be there).
func readData(ctx context.Context, d DataDeps, cfg DataConfig) ([]catalog.Volume, func() ([]*entry, error), error) {
	if d.Source != nil {
		h, entries, err := readSource(ctx, d.Source, cfg.Backup)
		return h.Volumes, func() ([]*entry, error) { return entries, nil }, err
	}
	m, err := d.Catalog.Manifest(ctx, cfg.Backup)
	if err != nil {
		return nil, nil, err
	}
	return m.Volumes, func() ([]*entry, error) { return readArchive(ctx, d.Catalog, cfg.Backup, cfg.ArchiveKey) }, nil
}

// dataTargets resolves the volumes asked for against the backup's records, without I/O.
func dataTargets(vols []catalog.Volume, cfg DataConfig) ([]dataTarget, error) {
	if len(cfg.Volumes) == 0 {
		return nil, errors.New("name the volumes to restore: --volumes namespace/pvc[,namespace/pvc]")
	}
	if cfg.Target != "" && len(cfg.Volumes) != 1 {
		return nil, fmt.Errorf("--target-pvc takes one volume; %d were named", len(cfg.Volumes))
	}
	byKey := map[string]catalog.Volume{}
	var names []string
	for _, v := range vols {
		byKey[v.Namespace+"/"+v.PVC] = v
		names = append(names, v.Namespace+"/"+v.PVC)
	}
	var out []dataTarget
	for _, key := range cfg.Volumes {
		v, ok := byKey[key]
		if !ok {
			return nil, fmt.Errorf("backup %q has no volume %s (it has %s)", cfg.Backup, key, orText(strings.Join(names, ", "), "none"))
		}
		kept := v.KopiaSnapshot == "" && v.VolumeSnapshot != "" && v.Status == catalog.VolumeCompleted
		if v.KopiaSnapshot == "" && !kept {
			why := "its data was not copied to the location (" + orText(v.Status, "no status") + orEmpty(": ", v.Error) + ")"
			return nil, fmt.Errorf("volume %s of backup %q cannot be restored: %s", key, cfg.Backup, why)
		}
		t := dataTarget{vol: v, ns: cfg.NamespaceMapping.Lookup(v.Namespace), pvc: v.PVC, kept: kept}
		if cfg.Target != "" {
			ns, name, ok := strings.Cut(cfg.Target, "/")
			if !ok || ns == "" || name == "" {
				return nil, fmt.Errorf("--target-pvc %q: use namespace/name", cfg.Target)
			}
			t.ns, t.pvc = ns, name
		}
		out = append(out, t)
	}
	return out, nil
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkKept refuses what a kept VolumeSnapshot cannot do, before anything is created: it
// provisions a new claim of its own namespace, whole (a snapshot has no paths), and only while
// it exists and is ready.
func checkKept(ctx context.Context, snap snapclient.Interface, t *dataTarget, cfg DataConfig) error {
	if !t.kept {
		return nil
	}
	vs := t.vol.Namespace + "/" + t.vol.VolumeSnapshot
	switch {
	case cfg.IncludePath != "":
		return fmt.Errorf("its data is VolumeSnapshot %s (snapshot mode), restored whole: --include-path needs a backup with the data in the location (--volumes fs or snapshot-move)", vs)
	case t.ns != t.vol.Namespace:
		return fmt.Errorf("its data is VolumeSnapshot %s, which a claim in namespace %s cannot use: name a new claim in %s with --target-pvc %s/NAME", vs, t.ns, t.vol.Namespace, t.vol.Namespace)
	case t.claim == nil:
		return fmt.Errorf("its data is VolumeSnapshot %s, which can only provision a new claim, and PVC %s/%s exists: name a new one with --target-pvc %s/NAME", vs, t.ns, t.pvc, t.ns)
	}
	return keptReady(ctx, snap, t)
}

// keptReady checks that the kept VolumeSnapshot holding t's data still exists and is ready
// (snap nil: not checked).
func keptReady(ctx context.Context, snap snapclient.Interface, t *dataTarget) error {
	if snap == nil {
		return nil
	}
	vs := t.vol.Namespace + "/" + t.vol.VolumeSnapshot
	s, err := snap.SnapshotV1().VolumeSnapshots(t.vol.Namespace).Get(ctx, t.vol.VolumeSnapshot, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("VolumeSnapshot %s, which held its data, no longer exists (deleted, or pruned by --keep-snapshots): the data is gone with it", vs)
	case err != nil:
		return fmt.Errorf("get VolumeSnapshot %s: %w", vs, err)
	case s.DeletionTimestamp != nil:
		return fmt.Errorf("VolumeSnapshot %s, which holds its data, is being deleted", vs)
	case s.Status == nil || s.Status.ReadyToUse == nil || !*s.Status.ReadyToUse:
		return fmt.Errorf("VolumeSnapshot %s is not ready to use: see kubectl describe volumesnapshot -n %s %s", vs, t.vol.Namespace, t.vol.VolumeSnapshot)
	}
	return nil
}

// claimSpecs picks the backed-up PersistentVolumeClaims of the volumes out of the backup's objects.
func claimSpecs(entries []*entry, cfg DataConfig) map[string]*unstructured.Unstructured {
	want := map[string]bool{}
	for _, v := range cfg.Volumes {
		want[v] = true
	}
	out := map[string]*unstructured.Unstructured{}
	for _, e := range entries {
		if k := e.key.Namespace + "/" + e.key.Name; e.gr == grPVC && want[k] && e.skip == "" {
			out[k] = e.obj
		}
	}
	return out
}

// prepareTarget decides whether t's claim is created or exists, and checks what it can first.
func prepareTarget(ctx context.Context, kube kubernetes.Interface, t *dataTarget, specs map[string]*unstructured.Unstructured, cfg DataConfig) error {
	cur, err := kube.CoreV1().PersistentVolumeClaims(t.ns).Get(ctx, t.pvc, metav1.GetOptions{})
	switch {
	case err == nil && cur.DeletionTimestamp != nil:
		return fmt.Errorf("PVC %s/%s is being deleted: wait until it is gone, or name another with --target-pvc", t.ns, t.pvc)
	case err == nil:
		return nil // exists: filled if it is empty
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("get PVC %s/%s: %w", t.ns, t.pvc, err)
	}
	if _, err := kube.CoreV1().Namespaces().Get(ctx, t.ns, metav1.GetOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s does not exist: create it first (a data-only restore creates nothing but the claim)", t.ns)
		}
		return fmt.Errorf("get namespace %s: %w", t.ns, err)
	}
	src := specs[t.vol.Namespace+"/"+t.vol.PVC]
	if src == nil {
		return fmt.Errorf("the backup has no spec of PVC %s/%s to create %s/%s from: create the claim and run again", t.vol.Namespace, t.vol.PVC, t.ns, t.pvc)
	}
	claim, err := newClaim(src, t, cfg.StorageClassMapping)
	if err != nil {
		return err
	}
	if t.kept {
		group := snapv1.GroupName
		claim.Spec.DataSource = &corev1.TypedLocalObjectReference{APIGroup: &group, Kind: "VolumeSnapshot", Name: t.vol.VolumeSnapshot}
		claim.Spec.DataSourceRef = &corev1.TypedObjectReference{APIGroup: &group, Kind: "VolumeSnapshot", Name: t.vol.VolumeSnapshot}
	}
	t.claim = claim
	return nil
}

// newClaim is the backed-up claim as a new one: sanitised, renamed, StorageClass mapped, with no
// data source (the mover fills it).
func newClaim(src *unstructured.Unstructured, t *dataTarget, classMap map[string]string) (*corev1.PersistentVolumeClaim, error) {
	o := src.DeepCopy()
	Sanitize(grPVC, o, SanitizeOptions{})
	unstructured.RemoveNestedField(o.Object, "spec", "volumeName")
	unstructured.RemoveNestedField(o.Object, "spec", "dataSource")
	unstructured.RemoveNestedField(o.Object, "spec", "dataSourceRef")
	mapStorageClass(grPVC, o, classMap)
	o.SetNamespace(t.ns)
	o.SetName(t.pvc)
	o.SetOwnerReferences(nil)
	o.SetFinalizers(nil)
	var c corev1.PersistentVolumeClaim
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &c); err != nil {
		return nil, fmt.Errorf("PVC %s/%s of the backup: %w", t.vol.Namespace, t.vol.PVC, err)
	}
	return &c, nil
}

func dryRunData(res *Result, targets []dataTarget, cfg DataConfig) {
	for i := range targets {
		t := &targets[i]
		if res.Volumes[t.item].Action != "" {
			continue
		}
		into := "the existing claim, if it is empty"
		if t.claim != nil {
			into = "a new claim (StorageClass " + orText(ptrString(t.claim.Spec.StorageClassName), "default") + ")"
			res.Items = append(res.Items, Item{Resource: "persistentvolumeclaims", Namespace: t.ns, Name: t.pvc, Action: WouldCreate})
			res.Summary[WouldCreate]++
		}
		from := "from Kopia snapshot " + t.vol.KopiaSnapshot
		if t.kept {
			from = "from VolumeSnapshot " + t.vol.Namespace + "/" + t.vol.VolumeSnapshot
		}
		setVolume(res, t, WouldRestore, from+" into "+into+orEmpty(", only ", cfg.IncludePath))
	}
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// fillData creates the new claims, fills every claim, and deletes a new claim whose fill failed.
func fillData(ctx context.Context, d DataDeps, cfg DataConfig, res *Result, targets []dataTarget) error {
	var items []volumes.RestoreItem
	var which []*dataTarget
	for i := range targets {
		t := &targets[i]
		if res.Volumes[t.item].Action != "" {
			continue
		}
		if t.claim != nil {
			if _, err := d.Kube.CoreV1().PersistentVolumeClaims(t.ns).Create(ctx, t.claim, metav1.CreateOptions{}); err != nil {
				setVolume(res, t, Failed, fmt.Sprintf("create PVC %s/%s: %v", t.ns, t.pvc, err))
				res.Items = append(res.Items, Item{Resource: "persistentvolumeclaims", Namespace: t.ns, Name: t.pvc, Action: Failed, Reason: reason(err)})
				res.Summary[Failed]++
				continue
			}
			res.Items = append(res.Items, Item{Resource: "persistentvolumeclaims", Namespace: t.ns, Name: t.pvc, Action: Created})
			res.Summary[Created]++
		}
		if t.kept {
			// The CSI driver fills it from the snapshot when it provisions it: no mover.
			setVolume(res, t, FromSnapshot, "VolumeSnapshot "+t.vol.Namespace+"/"+t.vol.VolumeSnapshot+" (the claim binds once the driver has provisioned it)")
			continue
		}
		items = append(items, volumes.RestoreItem{Namespace: t.ns, SourceNamespace: t.vol.Namespace, PVC: t.pvc, KopiaSnapshot: t.vol.KopiaSnapshot,
			RequireEmpty: t.claim == nil, SubPath: cfg.IncludePath, Block: t.vol.IsBlock()})
		which = append(which, t)
	}
	if len(items) == 0 {
		return nil
	}
	if d.Volumes == nil {
		return errors.New("volume data cannot be restored: no mover configuration")
	}
	outs, err := d.Volumes.Restore(ctx, items)
	for i, t := range which {
		it := &res.Volumes[t.item]
		var o volumes.RestoreOutcome
		if i < len(outs) {
			o = outs[i]
		}
		if !it.apply(ctx, o, Restored) && t.claim != nil {
			dropClaim(ctx, d.Kube, res, t)
		}
	}
	return err
}

// dropClaim deletes a claim this restore created and could not fill: nothing is left changed.
func dropClaim(ctx context.Context, kube kubernetes.Interface, res *Result, t *dataTarget) {
	cctx, cancel := cleanup.Context(ctx, cleanup.Object)
	defer cancel()
	if err := kube.CoreV1().PersistentVolumeClaims(t.ns).Delete(cctx, t.pvc, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("PVC %s/%s was created and could not be filled; deleting it failed: %v (delete it with kubectl delete pvc -n %s %s)", t.ns, t.pvc, err, t.ns, t.pvc))
		return
	}
	res.Warnings = append(res.Warnings, fmt.Sprintf("PVC %s/%s was created, could not be filled, and was deleted again", t.ns, t.pvc))
}
