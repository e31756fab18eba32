package volumes

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// Backup backs up the data of claims, cfg.Parallel volumes at a time. Every volume gets a record
// (Completed, Failed with the reason, or Skipped with why); the error is only for problems that
// stop every volume (the cluster cannot be read, the context was cancelled).
//
// A backup is a sequence of named steps over the plan (see backupSteps); each step records its
// per-volume failures in the plan and returns an error only to stop the run.
func Backup(ctx context.Context, d Deps, cfg Config, claims []*corev1.PersistentVolumeClaim) ([]catalog.Volume, error) {
	cfg.defaults()
	if d.Progress == nil {
		d.Progress = progress.Discard{}
	}
	plan, err := Plan(ctx, d, cfg, claims)
	if err != nil {
		return nil, err
	}
	r := &backupRun{
		engine:  &engine{d: d, cfg: cfg, precreated: map[string]bool{}, done: map[string]bool{}, members: map[string]string{}},
		plan:    plan,
		claims:  map[string]*corev1.PersistentVolumeClaim{},
		pods:    &podIndex{kube: d.Kube, byNS: map[string][]corev1.Pod{}},
		started: make([]bool, len(plan)),
	}
	for _, c := range claims {
		r.claims[c.Namespace+"/"+c.Name] = c
	}
	defer explainErrors(ctx, plan) // first in, last out: after dropUnstarted's reasons
	// Snapshots requested but never waited for (Ctrl-C before their volume's turn) are not left behind.
	defer r.dropUnstarted(ctx, plan, r.started)
	defer r.deleteGroups(ctx) // after the movers: their temporary claims are made from the members
	defer r.unlabelAll(ctx)   // claims labelled for an automatic group whose cut did not end
	for _, s := range r.steps() {
		if err := s.run(ctx); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// backupRun is one Backup's state, shared by its steps.
type backupRun struct {
	*engine
	plan    []catalog.Volume
	claims  map[string]*corev1.PersistentVolumeClaim // by ns/name
	pods    *podIndex
	started []bool      // plan[i] had its turn in moveVolumes
	groups  []*cutGroup // VolumeGroupSnapshots made, deleted at the end
	// groupFacts and volGroups are the served group API and the plan's volume groups.
	groupFacts *GroupFacts
	volGroups  []*VolumeGroup
	// labelled are the claims labelled LabelGroupRun for an automatic group, until unlabelled.
	labelled []labelledClaim
}

// step is one named phase of a run.
type step struct {
	name string
	run  func(context.Context) error
}

// steps are the phases of a backup, in order.
func (r *backupRun) steps() []step {
	return []step{
		{"create repositories", r.ensureRepositories},
		{"plan volume groups", r.planVolumeGroups},
		{"run hooks around snapshots", r.runHooks},
		{"cut volume groups", r.cutGroups},
		{"request snapshots", func(ctx context.Context) error { r.requestSnapshots(ctx, r.plan); return nil }},
		{"move volumes", r.moveVolumes},
	}
}

// ensureRepositories creates each namespace's repository once, before its movers run in parallel.
func (r *backupRun) ensureRepositories(ctx context.Context) error {
	if r.d.EnsureRepository == nil {
		return nil
	}
	ready := map[string]error{}
	for i := range r.plan {
		v := &r.plan[i]
		if v.Status != "" || (Mode(v.Mode) != ModeSnapshotMove && Mode(v.Mode) != ModeFS) {
			continue
		}
		if _, done := ready[v.Namespace]; !done {
			ready[v.Namespace] = r.d.EnsureRepository(ctx, v.Namespace)
		}
		if err := ready[v.Namespace]; err != nil {
			v.Status, v.Error = catalog.VolumeFailed, fmt.Sprintf("repository of namespace %s: %v", v.Namespace, err)
		}
	}
	return nil
}

// runHooks runs the pods' hooks around their volumes' snapshots (hooks.go).
func (r *backupRun) runHooks(ctx context.Context) error {
	if r.d.Hooks == nil {
		return nil
	}
	return r.hookWindows(ctx, r.plan, r.claims, r.pods, r.volGroups, r.startGroup)
}

// moveVolumes finishes every volume still to do, cfg.Parallel at a time, those whose snapshot
// is ready first (turns).
func (r *backupRun) moveVolumes(ctx context.Context) error {
	tctx, stop := context.WithCancel(ctx)
	defer stop()
	order := r.backupTurns(tctx)
	return r.forEach(ctx, len(r.plan), func(ctx context.Context, _ int) {
		i := order.next()
		if i < 0 {
			return
		}
		v := &r.plan[i]
		if v.Status != "" || r.done[v.Namespace+"/"+v.PVC] { // decided (skipped, failed) or done in a hook window
			return
		}
		r.started[i] = true
		claim := r.claims[v.Namespace+"/"+v.PVC]
		done := r.d.Progress.Start(fmt.Sprintf("volume %s/%s (%s)", v.Namespace, v.PVC, v.Mode))
		start := time.Now()
		err := r.backupOne(ctx, v, claim, r.pods)
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
			detail = fmt.Sprintf("%s, %s, %s uploaded", progress.Plural(int(v.Files), "file", "files"), progress.Bytes(v.Bytes), progress.Bytes(v.UploadedBytes))
		case v.VolumeSnapshot != "":
			detail = "kept as VolumeSnapshot " + v.VolumeSnapshot
		}
		done(detail, nil)
	})
}

// requestSnapshots creates the VolumeSnapshots of every volume still to do at once, before any
// mover runs, so that an application's volumes are cut at nearly the same moment rather than one
// volume's run apart. They are created requestConcurrency at a time: one after the other, 60
// creations took seconds of a loaded apiserver's round trips before the first mover could start.
// A snapshot that cannot be created here is created, and its error reported, in the volume's turn.
func (e *engine) requestSnapshots(ctx context.Context, plan []catalog.Volume) {
	var todo []int
	for i := range plan {
		v := &plan[i]
		key := v.Namespace + "/" + v.PVC
		if v.Status != "" || e.precreated[key] || e.done[key] || e.members[key] != "" || (Mode(v.Mode) != ModeSnapshotMove && Mode(v.Mode) != ModeSnapshot) {
			continue
		}
		todo = append(todo, i)
	}
	made := make([]bool, len(todo))
	sem := make(chan struct{}, requestConcurrency)
	var wg sync.WaitGroup
	for k, i := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(k int, v *catalog.Volume) {
			defer wg.Done()
			defer func() { <-sem }()
			made[k] = e.createSnapshot(ctx, e.backupTask(v), v, &createdObjects{}, Mode(v.Mode) == ModeSnapshot) == nil
		}(k, &plan[i])
	}
	wg.Wait()
	for k, i := range todo {
		if made[k] {
			e.precreated[plan[i].Namespace+"/"+plan[i].PVC] = true
		}
	}
}

// requestConcurrency is how many API requests a run's step makes at once (snapshots requested
// ahead, a volume's cleanup): the plugin's client has no rate limit of its own (kube.FromConfig).
const requestConcurrency = 16

// dropUnstarted deletes the snapshots created ahead for volumes whose turn never came.
func (e *engine) dropUnstarted(ctx context.Context, plan []catalog.Volume, started []bool) {
	cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
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
	return Task{Backup: e.cfg.Backup, Op: mover.OpBackup, Namespace: v.Namespace, SourceNamespace: v.Namespace, PVC: v.PVC, Run: e.cfg.RunID,
		Compression: v.Compression, Block: v.IsBlock(), GroupMember: e.members[v.Namespace+"/"+v.PVC]}
}

func (e *engine) backupOne(ctx context.Context, v *catalog.Volume, claim *corev1.PersistentVolumeClaim, pods *podIndex) (err error) {
	t := e.backupTask(v)
	var created createdObjects
	defer func() {
		// A fresh bounded context: the backup's own may be cancelled (Ctrl-C) and cleanup must still run.
		cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
		defer cancel()
		if cerr := e.cleanup(cctx, t, &created, err != nil || Mode(v.Mode) != ModeSnapshot); cerr != nil {
			v.Warnings = append(v.Warnings, "cleanup: "+cerr.Error())
		}
	}()
	switch Mode(v.Mode) {
	case ModeSnapshot:
		return e.backupKept(ctx, t, v, &created)
	case ModeSnapshotMove:
		return e.backupSnapshotMove(ctx, t, v, claim, pods, &created)
	case ModeFS:
		return e.backupFS(ctx, t, v, claim, pods, &created)
	}
	return fmt.Errorf("volume mode %s cannot be backed up", v.Mode)
}

// backupKept is snapshot mode: a VolumeSnapshot that stays, older ones pruned.
func (e *engine) backupKept(ctx context.Context, t Task, v *catalog.Volume, created *createdObjects) error {
	vs, err := e.snapshot(ctx, t, v, created, true)
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
}

// backupSnapshotMove snapshots the claim, restores the snapshot into a temporary PVC and uploads that.
func (e *engine) backupSnapshotMove(ctx context.Context, t Task, v *catalog.Volume, claim *corev1.PersistentVolumeClaim, pods *podIndex, created *createdObjects) error {
	users, err := pods.using(ctx, t.Namespace, t.PVC)
	if err != nil {
		return err
	}
	place, err := e.placeBackup(ctx, ModeSnapshotMove, claim, users)
	if err != nil {
		return err
	}
	vs, err := e.snapshot(ctx, t, v, created, false)
	if err != nil {
		return err
	}
	var size = vs.Status.RestoreSize
	pvc := t.TempPVCSpec(claim, size, e.cfg.Mover.StorageClassMapping)
	if _, err := e.d.Kube.CoreV1().PersistentVolumeClaims(t.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create temporary PVC %s/%s from VolumeSnapshot %s: %w", t.Namespace, pvc.Name, vs.Name, err)
	}
	created.tempPVC = true
	res, node, err := e.runMover(ctx, t, created, pvc.Name, "", place)
	fill(v, res, node)
	return err
}

// backupFS uploads the live claim, on the node of the pod that mounts it when it is RWO.
func (e *engine) backupFS(ctx context.Context, t Task, v *catalog.Volume, claim *corev1.PersistentVolumeClaim, pods *podIndex, created *createdObjects) error {
	users, err := pods.using(ctx, t.Namespace, t.PVC)
	if err != nil {
		return err
	}
	if err := directBlock(v, claim, users); err != nil {
		return err
	}
	place, err := e.placeBackup(ctx, ModeFS, claim, users)
	if err != nil {
		return err
	}
	res, node, err := e.runMover(ctx, t, created, t.PVC, "", place)
	fill(v, res, node)
	return err
}

// directBlock says whether a raw block claim may be read directly (fs mode: the live claim's
// device through volumeDevices): when no running pod uses it, or when it is ReadWriteMany (a
// shared disk), then with a warning that the image is read while the pods may write. A
// ReadWriteOnce device a pod uses is refused: its writes would tear the image, and only a
// snapshot cuts it at one instant.
func directBlock(v *catalog.Volume, claim *corev1.PersistentVolumeClaim, users []corev1.Pod) error {
	users = running(users)
	if !isBlock(claim) || len(users) == 0 {
		return nil
	}
	if !hasMode(claim, corev1.ReadWriteMany) {
		return fmt.Errorf("PVC %s is a raw block volume in use by pod %s: a direct read of a device being written is no consistent image; use --volumes=snapshot-move (or annotate the PVC %s=snapshot-move), or stop the pod", describeClaim(claim.Namespace, claim.Name), users[0].Name, AnnotationMode)
	}
	v.Warnings = append(v.Warnings, fmt.Sprintf("PVC %s is a ReadWriteMany raw block volume in use by pod %s: its device is read while it may be written (crash-consistent at best; hooks that freeze the writer, or snapshot-move, make it consistent)", describeClaim(claim.Namespace, claim.Name), users[0].Name))
	return nil
}

// running keeps the pods that run: a pod still Pending (a rolling update's new pod waiting on
// Multi-Attach) holds no device.
func running(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning {
			out = append(out, p)
		}
	}
	return out
}

// beside is where a mover that mounts claim while users (pods on nodes) mount it must run: on
// their node, with their tolerations, when only one node can mount the claim. The node of a
// Running user is the one the volume is attached to: a user still Pending on another node (a
// rolling update's new pod stuck on Multi-Attach) holds nothing. A ReadWriteOncePod claim in
// use cannot be mounted by a mover at all.
func beside(users []corev1.Pod, claim *corev1.PersistentVolumeClaim) (string, []corev1.Toleration, error) {
	if len(users) == 0 || hasMode(claim, corev1.ReadWriteMany) || hasMode(claim, corev1.ReadOnlyMany) {
		return "", nil, nil
	}
	holder := users[0]
	for _, u := range users {
		if u.Status.Phase == corev1.PodRunning {
			holder = u
			break
		}
	}
	if hasMode(claim, corev1.ReadWriteOncePod) {
		return "", nil, fmt.Errorf("PVC %s is ReadWriteOncePod and in use by pod %s: no other pod can mount it", describeClaim(claim.Namespace, claim.Name), holder.Name)
	}
	return holder.Spec.NodeName, holder.Spec.Tolerations, nil
}

func fill(v *catalog.Volume, r *mover.Result, node string) {
	v.MoverNode = node
	if r == nil {
		return
	}
	v.KopiaSnapshot, v.KopiaParent = r.SnapshotID, r.ParentID
	v.Bytes, v.UploadedBytes, v.Files, v.HardLinks = r.Bytes, r.UploadedBytes, r.Files, r.HardLinks
	v.Warnings = append(v.Warnings, r.Warnings...)
	v.MoverSeconds, v.MoverOpenSeconds, v.MoverDebug = r.DurationSeconds, r.OpenSeconds, r.Debug
}
