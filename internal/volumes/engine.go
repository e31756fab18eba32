package volumes

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	snapv1 "github.com/kubernetes-csi/external-snapshotter/client/v6/apis/volumesnapshot/v1"
	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/policy"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// Deps are the engine's connections to the cluster and the user.
type Deps struct {
	Kube      kubernetes.Interface
	Snap      snapclient.Interface
	Discovery discovery.DiscoveryInterface
	Progress  progress.Reporter
	// OnEvent receives the movers' progress events (may be nil).
	OnEvent func(namespace, pvc string, ev mover.Event)
	// Hooks runs pre/post hooks in application pods (nil: no hooks).
	Hooks HookRunner
	// EnsureRepository creates a namespace's Kopia repository if it does not exist, before movers
	// of that namespace run in parallel (nil: the movers create it, one volume at a time).
	EnsureRepository func(ctx context.Context, namespace string) error
}

// HookRunner executes one hook (hooks.Executor in the plugin).
type HookRunner interface {
	Run(ctx context.Context, h hooks.Hook) (hooks.Output, error)
}

// Config is how volumes are backed up or restored.
type Config struct {
	Backup          string
	Mode            Mode
	SnapshotClasses []string
	// Policies are the resource policy rules that choose a mode before Mode (nil: none).
	Policies *policy.Policies
	// SnapshotMoveData makes the policy action snapshot move the data (Velero's --snapshot-move-data).
	SnapshotMoveData bool
	Mover            MoverConfig
	Parallel         int
	// Timeout bounds each wait without progress (snapshot ready, pod start, mover silent).
	Timeout time.Duration
	// ControllerTimeout bounds the wait for a snapshot controller to take up a VolumeSnapshot.
	ControllerTimeout time.Duration
	DryRun            bool
	// HookFlags are the --pre-hook/--post-hook settings; pod annotations come first.
	HookFlags hooks.Flags
	// RunID makes this run's object names unique (default: random).
	RunID string
	// KeepSnapshots > 0 keeps, per PVC, the newest N VolumeSnapshots snapshot mode made (this one
	// included) and deletes older ones made by this tool.
	KeepSnapshots int
}

func (c *Config) defaults() {
	if c.Mode == "" {
		c.Mode = ModeAuto
	}
	if c.Parallel <= 0 {
		c.Parallel = 2
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.RunID == "" {
		c.RunID = NewRunID()
	}
	if c.ControllerTimeout == 0 {
		c.ControllerTimeout = 30 * time.Second
	}
	c.Mover.Defaults()
}

// NeedsMover reports whether any decision moves data through a mover Job.
func NeedsMover(vols []catalog.Volume) bool {
	for _, v := range vols {
		if v.Status != catalog.VolumeSkipped && (v.Mode == string(ModeSnapshotMove) || v.Mode == string(ModeFS)) {
			return true
		}
	}
	return false
}

// Plan decides the mode of every claim without creating anything.
func Plan(ctx context.Context, d Deps, cfg Config, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	cfg.defaults()
	facts, err := ReadFacts(ctx, d.Discovery, d.Snap, func(ctx context.Context, n string) (*corev1.PersistentVolume, error) {
		return d.Kube.CoreV1().PersistentVolumes().Get(ctx, n, metav1.GetOptions{})
	}, claims)
	if err != nil {
		return nil, err
	}
	if err := ValidateClassFlag(cfg.SnapshotClasses, facts); err != nil {
		return nil, err
	}
	out := make([]catalog.Volume, 0, len(claims))
	for _, c := range claims {
		v := catalog.Volume{Namespace: c.Namespace, PVC: c.Name}
		if c.Spec.StorageClassName != nil {
			v.StorageClass = *c.Spec.StorageClassName
		}
		if q, ok := c.Status.Capacity[corev1.ResourceStorage]; ok {
			v.Size = q.String()
		} else if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
			v.Size = q.String()
		}
		for _, m := range c.Spec.AccessModes {
			v.AccessModes = append(v.AccessModes, string(m))
		}
		dec, err := DecideRequest(Request{Mode: cfg.Mode, Policies: cfg.Policies, SnapshotMoveData: cfg.SnapshotMoveData}, cfg.SnapshotClasses, c, facts)
		v.Mode, v.Reason, v.Driver, v.SnapshotClass, v.Warnings = string(dec.Mode), dec.Reason, dec.Driver, dec.SnapshotClass, dec.Warnings
		if err != nil {
			v.Status, v.Error = catalog.VolumeFailed, err.Error()
		} else if dec.Mode == ModeNone {
			v.Status = catalog.VolumeSkipped
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].PVC < out[j].PVC
	})
	return out, nil
}

// Backup backs up the data of claims, cfg.Parallel volumes at a time. Every volume gets a record
// (Completed, Failed with the reason, or Skipped with why); the error is only for problems that
// stop every volume (the cluster cannot be read, the context was cancelled).
func Backup(ctx context.Context, d Deps, cfg Config, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	cfg.defaults()
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	plan, err := Plan(ctx, d, cfg, claims)
	if err != nil {
		return nil, err
	}
	byKey := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range claims {
		byKey[c.Namespace+"/"+c.Name] = c
	}
	pods := &podIndex{kube: d.Kube, byNS: map[string][]corev1.Pod{}}
	e := &engine{d: d, cfg: cfg, precreated: map[string]bool{}, done: map[string]bool{}}
	if d.EnsureRepository != nil {
		ready := map[string]error{}
		for i := range plan {
			v := &plan[i]
			if v.Status != "" || (Mode(v.Mode) != ModeSnapshotMove && Mode(v.Mode) != ModeFS) {
				continue
			}
			if _, done := ready[v.Namespace]; !done {
				ready[v.Namespace] = d.EnsureRepository(ctx, v.Namespace)
			}
			if err := ready[v.Namespace]; err != nil {
				v.Status, v.Error = catalog.VolumeFailed, fmt.Sprintf("repository of namespace %s: %v", v.Namespace, err)
			}
		}
	}
	started := make([]bool, len(plan))
	// Snapshots requested but never waited for (Ctrl-C before their volume's turn) are not left behind.
	defer e.dropUnstarted(ctx, plan, started)
	if d.Hooks != nil {
		if err := e.hookWindows(ctx, plan, byKey, pods); err != nil {
			return plan, err
		}
	}
	e.requestSnapshots(ctx, plan)
	err = e.forEach(ctx, len(plan), func(ctx context.Context, i int) {
		v := &plan[i]
		if v.Status != "" || e.done[v.Namespace+"/"+v.PVC] { // decided (skipped, failed) or done in a hook window
			return
		}
		started[i] = true
		claim := byKey[v.Namespace+"/"+v.PVC]
		done := d.Progress.Start(fmt.Sprintf("volume %s/%s (%s)", v.Namespace, v.PVC, v.Mode))
		start := time.Now()
		err := e.backupOne(ctx, v, claim, pods)
		v.Seconds += time.Since(start).Round(time.Millisecond).Seconds()
		if err != nil {
			v.Status, v.Error = catalog.VolumeFailed, err.Error()
			done("", err)
			return
		}
		v.Status = catalog.VolumeCompleted
		// The phase's name already says the mode.
		detail := ""
		switch {
		case v.KopiaSnapshot != "":
			detail = fmt.Sprintf("%d files, %s, %s uploaded", v.Files, progress.Bytes(v.Bytes), progress.Bytes(v.UploadedBytes))
		case v.VolumeSnapshot != "":
			detail = "kept as VolumeSnapshot " + v.VolumeSnapshot
		}
		done(detail, nil)
	})
	return plan, err
}

// requestSnapshots creates the VolumeSnapshots of every volume still to do at once, before any
// mover runs, so that an application's volumes are cut at nearly the same moment rather than one
// volume's run apart. (It does not shorten a run: the snapshot controller's rate-limited API client
// bounds it either way; docs/volumes.md has the figures.) A snapshot that cannot be created here is
// created, and its error reported, in the volume's turn.
func (e *engine) requestSnapshots(ctx context.Context, plan []catalog.Volume) {
	for i := range plan {
		v := &plan[i]
		key := v.Namespace + "/" + v.PVC
		if v.Status != "" || e.precreated[key] || e.done[key] || (Mode(v.Mode) != ModeSnapshotMove && Mode(v.Mode) != ModeSnapshot) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err := e.createSnapshot(ctx, e.backupTask(v), v, &createdObjects{}, Mode(v.Mode) == ModeSnapshot); err == nil {
			e.precreated[key] = true
		}
	}
}

// dropUnstarted deletes the snapshots created ahead for volumes whose turn never came.
func (e *engine) dropUnstarted(ctx context.Context, plan []catalog.Volume, started []bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for i := range plan {
		v := &plan[i]
		if started[i] || !e.precreated[v.Namespace+"/"+v.PVC] || e.done[v.Namespace+"/"+v.PVC] || v.Status == catalog.VolumeCompleted {
			continue
		}
		if err := e.cleanup(cctx, e.backupTask(v), &createdObjects{snapshot: true}, true); err != nil {
			v.Warnings = append(v.Warnings, "cleanup: "+err.Error())
		}
		if v.Status == "" {
			v.Status, v.Error = catalog.VolumeFailed, "not started: "+context.Cause(ctx).Error()
		}
	}
}

// backupTask is the Task of a volume's backup.
func (e *engine) backupTask(v *catalog.Volume) Task {
	return Task{Backup: e.cfg.Backup, Op: mover.OpBackup, Namespace: v.Namespace, SourceNamespace: v.Namespace, PVC: v.PVC, Run: e.cfg.RunID}
}

type engine struct {
	d   Deps
	cfg Config
	// precreated are the claims (ns/pvc) whose VolumeSnapshot was created inside their pod's hook
	// window; written before the volumes run in parallel, read-only after.
	precreated map[string]bool
	// done are claims backed up completely inside a hook window (fs).
	done map[string]bool
}

// forEach runs fn for 0..n-1, cfg.Parallel at a time; it stops starting new ones when ctx ends.
func (e *engine) forEach(ctx context.Context, n int, fn func(context.Context, int)) error {
	sem := make(chan struct{}, e.cfg.Parallel)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, i)
		}(i)
	}
	wg.Wait()
	return ctx.Err()
}

// podIndex lists each namespace's pods once, for fs placement.
type podIndex struct {
	mu   sync.Mutex
	kube kubernetes.Interface
	byNS map[string][]corev1.Pod
}

func (p *podIndex) using(ctx context.Context, ns, claim string) ([]corev1.Pod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pods, ok := p.byNS[ns]
	if !ok {
		list, err := p.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		pods = list.Items
		p.byNS[ns] = pods
	}
	var out []corev1.Pod
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed || pod.Spec.NodeName == "" {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim {
				out = append(out, pod)
				break
			}
		}
	}
	return out, nil
}

func hasMode(c *corev1.PersistentVolumeClaim, m corev1.PersistentVolumeAccessMode) bool {
	for _, x := range c.Spec.AccessModes {
		if x == m {
			return true
		}
	}
	return false
}

func (e *engine) backupOne(ctx context.Context, v *catalog.Volume, claim *corev1.PersistentVolumeClaim, pods *podIndex) (err error) {
	t := e.backupTask(v)
	var created createdObjects
	defer func() {
		// A fresh bounded context: the backup's own may be cancelled (Ctrl-C) and cleanup must still run.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if cerr := e.cleanup(cctx, t, &created, err != nil || Mode(v.Mode) != ModeSnapshot); cerr != nil {
			v.Warnings = append(v.Warnings, "cleanup: "+cerr.Error())
		}
	}()
	switch Mode(v.Mode) {
	case ModeSnapshot:
		vs, err := e.snapshot(ctx, t, v, &created, true)
		if err != nil {
			return err
		}
		v.VolumeSnapshot = vs.Name
		if e.cfg.KeepSnapshots > 0 {
			pruned, err := e.pruneKept(ctx, t)
			if err != nil {
				v.Warnings = append(v.Warnings, err.Error())
			}
			for _, p := range pruned {
				v.Warnings = append(v.Warnings, fmt.Sprintf("deleted older VolumeSnapshot %s (--keep-snapshots %d)", p, e.cfg.KeepSnapshots))
			}
		}
		return nil
	case ModeSnapshotMove:
		vs, err := e.snapshot(ctx, t, v, &created, false)
		if err != nil {
			return err
		}
		var size = vs.Status.RestoreSize
		pvc := t.TempPVCSpec(claim, size, e.cfg.Mover.StorageClassMapping)
		if _, err := e.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create temporary PVC %s/%s from VolumeSnapshot %s: %w", t.Namespace, pvc.Name, vs.Name, err)
		}
		created.tempPVC = true
		res, err := e.runMover(ctx, t, &created, pvc.Name, "", "", nil)
		fill(v, res)
		return err
	case ModeFS:
		users, err := pods.using(ctx, t.Namespace, t.PVC)
		if err != nil {
			return err
		}
		node := ""
		var tolerations []corev1.Toleration
		if len(users) > 0 {
			if hasMode(claim, corev1.ReadWriteOncePod) {
				return fmt.Errorf("PVC %s is ReadWriteOncePod and in use by pod %s: no other pod can mount it; use --volumes=snapshot-move (annotate the PVC %s=snapshot-move) or stop the pod", describeClaim(t.Namespace, t.PVC), users[0].Name, AnnotationMode)
			}
			if !hasMode(claim, corev1.ReadWriteMany) && !hasMode(claim, corev1.ReadOnlyMany) {
				node, tolerations = users[0].Spec.NodeName, users[0].Spec.Tolerations
			}
		}
		res, err := e.runMover(ctx, t, &created, t.PVC, "", node, tolerations)
		fill(v, res)
		return err
	}
	return fmt.Errorf("volume mode %s cannot be backed up", v.Mode)
}

func named(name string) func(metav1.Object) bool {
	return func(o metav1.Object) bool { return o.GetName() == name }
}

func labelled(set map[string]string) func(metav1.Object) bool {
	sel := labels.SelectorFromSet(set)
	return func(o metav1.Object) bool { return sel.Matches(labels.Set(o.GetLabels())) }
}

func fill(v *catalog.Volume, r *mover.Result) {
	if r == nil {
		return
	}
	v.KopiaSnapshot, v.KopiaParent = r.SnapshotID, r.ParentID
	v.Bytes, v.UploadedBytes, v.Files = r.Bytes, r.UploadedBytes, r.Files
	v.MoverSeconds = r.DurationSeconds
}

// createdObjects records what a task created, for its cleanup.
type createdObjects struct {
	secret, job, tempPVC, snapshot bool
}

// snapshot creates the VolumeSnapshot and waits until it is ready, failing at once on its error.
func (e *engine) snapshot(ctx context.Context, t Task, v *catalog.Volume, created *createdObjects, kept bool) (*snapv1.VolumeSnapshot, error) {
	name := t.SnapshotName()
	if kept {
		name = t.KeptSnapshotName()
	}
	if !e.precreated[t.Namespace+"/"+t.PVC] {
		if err := e.createSnapshot(ctx, t, v, created, kept); err != nil {
			return nil, err
		}
	}
	created.snapshot = true
	var err error
	what := fmt.Sprintf("VolumeSnapshot %s/%s (class %s)", t.Namespace, name, v.SnapshotClass)
	lw := e.snapshotListWatch(t.Namespace, name)
	match := func(ref corev1.ObjectReference) bool {
		return (ref.Kind == "VolumeSnapshot" && ref.Name == name) || (ref.Kind == "PersistentVolumeClaim" && ref.Name == t.PVC)
	}
	snapErr := func(s *snapv1.VolumeSnapshot) error {
		if s.Status != nil && s.Status.Error != nil && s.Status.Error.Message != nil {
			return fmt.Errorf("%s failed: %s", what, *s.Status.Error.Message)
		}
		return nil
	}
	// A snapshot controller sets a status at once; none means none runs.
	err = until(ctx, e.d.Kube, t.Namespace, named(name), what+": waiting for a snapshot controller", e.cfg.ControllerTimeout, match, lw, &snapv1.VolumeSnapshot{},
		func(o runtime.Object, _ *stall) (bool, string, error) {
			s := o.(*snapv1.VolumeSnapshot)
			if s.Name != name {
				return false, "", nil
			}
			if err := snapErr(s); err != nil {
				return false, "", err
			}
			return s.Status != nil, "", nil
		})
	if errors.Is(err, ErrTimeout) {
		return nil, fmt.Errorf("%s has no status after %s: no snapshot controller seems to run in this cluster (install snapshot-controller, or use --volumes=fs)", what, e.cfg.ControllerTimeout)
	}
	if err != nil {
		return nil, err
	}
	var ready *snapv1.VolumeSnapshot
	err = until(ctx, e.d.Kube, t.Namespace, named(name), what+": waiting until readyToUse", e.cfg.Timeout, match, lw, &snapv1.VolumeSnapshot{},
		func(o runtime.Object, _ *stall) (bool, string, error) {
			s := o.(*snapv1.VolumeSnapshot)
			if s.Name != name {
				return false, "", nil
			}
			if err := snapErr(s); err != nil {
				return false, "", err
			}
			status := what + ": not ready"
			if s.Status != nil && s.Status.BoundVolumeSnapshotContentName != nil {
				status += ", content " + *s.Status.BoundVolumeSnapshotContentName
			}
			if s.Status != nil && ptr.Deref(s.Status.ReadyToUse, false) {
				ready = s
				return true, "", nil
			}
			return false, status, nil
		})
	if err != nil {
		return nil, err
	}
	if ready.Status.BoundVolumeSnapshotContentName != nil {
		if c, err := e.d.Snap.SnapshotV1().VolumeSnapshotContents().Get(ctx, *ready.Status.BoundVolumeSnapshotContentName, metav1.GetOptions{}); err == nil && c.Status != nil && c.Status.SnapshotHandle != nil {
			v.SnapshotHandle = *c.Status.SnapshotHandle
		}
	}
	return ready, nil
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

// snapshotListWatch lists and watches the one VolumeSnapshot ns/name.
func (e *engine) snapshotListWatch(ns, name string) cache.ListerWatcher {
	vsc := e.d.Snap.SnapshotV1().VolumeSnapshots(ns)
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return vsc.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
			return vsc.Watch(ctx, o)
		},
	}, e.d.Snap)
}

// waitCut waits until the storage system has cut the snapshot (status.creationTime set, or ready),
// failing at once on its error: the moment a post hook may run.
func (e *engine) waitCut(ctx context.Context, t Task, v *catalog.Volume, kept bool) error {
	name := t.SnapshotName()
	if kept {
		name = t.KeptSnapshotName()
	}
	lw := e.snapshotListWatch(t.Namespace, name)
	what := fmt.Sprintf("VolumeSnapshot %s/%s (class %s): waiting until it is cut", t.Namespace, name, v.SnapshotClass)
	match := func(ref corev1.ObjectReference) bool { return ref.Kind == "VolumeSnapshot" && ref.Name == name }
	return until(ctx, e.d.Kube, t.Namespace, named(name), what, e.cfg.Timeout, match, lw, &snapv1.VolumeSnapshot{},
		func(o runtime.Object, _ *stall) (bool, string, error) {
			st := o.(*snapv1.VolumeSnapshot).Status
			if st != nil && st.Error != nil && st.Error.Message != nil {
				return false, "", fmt.Errorf("VolumeSnapshot %s/%s failed: %s", t.Namespace, name, *st.Error.Message)
			}
			return st != nil && (st.CreationTime != nil || ptr.Deref(st.ReadyToUse, false)), "", nil
		})
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

// runMover creates the Secret and the Job, and follows the pod to its end.
func (e *engine) runMover(ctx context.Context, t Task, created *createdObjects, claim, snapshotID, node string, tolerations []corev1.Toleration) (*mover.Result, error) {
	mc := &e.cfg.Mover
	if mc.Secret == "" {
		if _, err := e.d.Kube.CoreV1().Secrets(t.Namespace).Create(ctx, t.SecretSpec(mc), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create temporary Secret %s/%s for the mover: %w", t.Namespace, t.SecretName(), err)
		}
		created.secret = true
	}
	job := t.JobSpec(mc, claim, snapshotID, node, tolerations)
	j, err := e.d.Kube.BatchV1().Jobs(t.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create mover Job %s/%s: %w", t.Namespace, job.Name, err)
	}
	created.job = true
	podc := e.d.Kube.CoreV1().Pods(t.Namespace)
	sel := labels.SelectorFromSet(t.Labels()).String()
	lw := cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return podc.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return podc.Watch(ctx, o)
		},
	}, e.d.Kube)
	match := func(ref corev1.ObjectReference) bool {
		switch ref.Kind {
		case "Job":
			return ref.UID == j.UID || ref.Name == j.Name
		case "Pod":
			return strings.HasPrefix(ref.Name, j.Name+"-")
		case "PersistentVolumeClaim":
			return ref.Name == claim
		}
		return false
	}
	var (
		following = map[types.UID]bool{}
		finished  *corev1.Pod
		wg        sync.WaitGroup
	)
	lctx, stopLogs := context.WithCancel(ctx)
	defer func() { stopLogs(); wg.Wait() }()
	what := fmt.Sprintf("mover Job %s/%s", t.Namespace, j.Name)
	err = until(ctx, e.d.Kube, t.Namespace, labelled(t.Labels()), what, e.cfg.Timeout, match, lw, &corev1.Pod{},
		func(o runtime.Object, st *stall) (bool, string, error) {
			p := o.(*corev1.Pod)
			done, status, err := podStatus(p)
			if err != nil {
				return false, status, err
			}
			if !following[p.UID] && (done || p.Status.Phase == corev1.PodRunning) {
				following[p.UID] = true
				wg.Add(1)
				go func() {
					defer wg.Done()
					followLogs(lctx, e.d.Kube, p.Namespace, p.Name, func(ev mover.Event) {
						st.see("", true) // the mover is alive: no stall
						if e.d.OnEvent != nil {
							e.d.OnEvent(t.Namespace, t.PVC, ev)
						}
					})
				}()
			}
			if done {
				finished = p
			}
			return done, status, nil
		})
	if err != nil {
		return nil, err
	}
	wg.Wait() // the log ends with the container
	out := readOutcome(ctx, e.d.Kube, finished, mc.Limits)
	return out.result, out.err
}

// cleanup deletes what a task created: Job (and pods), temporary PVC (and its PV whatever the
// reclaim policy), VolumeSnapshot (and its content whatever the deletion policy) unless kept,
// Secret. It waits for nothing but the API calls.
func (e *engine) cleanup(ctx context.Context, t Task, c *createdObjects, dropSnapshot bool) error {
	var errs []error
	ns := t.Namespace
	if c.job {
		if err := e.d.Kube.BatchV1().Jobs(ns).Delete(ctx, t.JobName(), metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Job %s/%s: %w", ns, t.JobName(), err))
		}
		// Pods go with the Job, but at once: they hold the volumes the next steps delete.
		pods, err := e.d.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(t.Labels()).String()})
		if err != nil {
			errs = append(errs, fmt.Errorf("list mover pods in %s: %w", ns, err))
		} else {
			for _, p := range pods.Items {
				if err := e.d.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete mover pod %s/%s: %w", ns, p.Name, err))
				}
			}
		}
	}
	if c.tempPVC {
		if err := deleteClaim(ctx, e.d.Kube, ns, t.TempPVCName()); err != nil {
			errs = append(errs, err)
		}
	}
	if c.snapshot && dropSnapshot {
		for _, n := range []string{t.SnapshotName(), t.KeptSnapshotName()} {
			if err := deleteSnapshot(ctx, e.d.Snap, ns, n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.secret {
		if err := e.d.Kube.CoreV1().Secrets(ns).Delete(ctx, t.SecretName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete Secret %s/%s: %w", ns, t.SecretName(), err))
		}
	}
	return errors.Join(errs...)
}

// deleteClaim deletes a temporary PVC, first making its PV's reclaim policy Delete so the storage
// goes too.
func deleteClaim(ctx context.Context, kube kubernetes.Interface, ns, name string) error {
	pvc, err := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get temporary PVC %s/%s: %w", ns, name, err)
	}
	if pvc.Spec.VolumeName != "" {
		patch := []byte(`{"spec":{"persistentVolumeReclaimPolicy":"Delete"}}`)
		if _, err := kube.CoreV1().PersistentVolumes().Patch(ctx, pvc.Spec.VolumeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("set reclaim policy Delete on PV %s of temporary PVC %s/%s: %w", pvc.Spec.VolumeName, ns, name, err)
		}
	}
	if err := kube.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete temporary PVC %s/%s: %w", ns, name, err)
	}
	return nil
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

// Runner binds Deps and Config for the backup and restore engines.
type Runner struct {
	Deps   Deps
	Config Config
}

// Plan implements backup.VolumeEngine.
func (r *Runner) Plan(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	return Plan(ctx, r.Deps, r.Config, claims)
}

// Backup implements backup.VolumeEngine.
func (r *Runner) Backup(ctx context.Context, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	return Backup(ctx, r.Deps, r.Config, claims)
}

// Restore fills restored claims (restore.VolumeEngine).
func (r *Runner) Restore(ctx context.Context, items []RestoreItem) ([]RestoreOutcome, error) {
	return Restore(ctx, r.Deps, r.Config, items)
}
