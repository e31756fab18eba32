package volumes

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
)

// hookWindow is the pods with hooks whose volumes are cut together: one pod and the planned
// volumes it mounts, or, when their volumes belong to volume groups, every such pod of the groups
// with the groups' members, so that the hooks run once around the group cut.
type hookWindow struct {
	pods   []hookPod
	vols   []int          // indexes into the plan
	groups []*VolumeGroup // cut inside the window
}

// hookPod is a pod of a window with its hooks.
type hookPod struct {
	pod       corev1.Pod
	pre, post *hooks.Hook
}

func (w *hookWindow) names() string {
	var n []string
	for _, p := range w.pods {
		n = append(n, p.pod.Name)
	}
	return strings.Join(n, ", ")
}

// groupCutter creates a group's VolumeGroupSnapshot and waits until it is cut (backupRun.startGroup).
type groupCutter func(ctx context.Context, g *VolumeGroup, cut bool) error

// hookWindows runs, window by window, the pre hooks, then creates the VolumeSnapshots of the
// pods' snapshot volumes and the window's VolumeGroupSnapshots (and uploads its fs volumes), waits
// until they are cut (status.creationTime), then runs the post hooks — after the cut, not after
// readiness. The rest of each volume (waiting, moving) runs afterwards in parallel. A volume
// mounted by several hooked pods belongs to the first (by name).
func (e *engine) hookWindows(ctx context.Context, plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, pods *podIndex, groups []*VolumeGroup, cut groupCutter) error {
	windows, err := e.podWindows(ctx, plan, pods)
	if err != nil {
		return err
	}
	for _, w := range mergeGroupWindows(windows, groups) {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.runWindow(ctx, w, plan, claims, pods, cut)
	}
	return nil
}

// podWindows is one window per pod with hooks that mounts planned volumes, by namespace and name.
func (e *engine) podWindows(ctx context.Context, plan []catalog.Volume, pods *podIndex) ([]*hookWindow, error) {
	owner := map[int]bool{}
	var windows []*hookWindow
	byNS := map[string][]int{}
	for i, v := range plan {
		if v.Status == "" {
			byNS[v.Namespace] = append(byNS[v.Namespace], i)
		}
	}
	nss := make([]string, 0, len(byNS))
	for ns := range byNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		users, names, err := podUsers(ctx, pods, ns, byNS[ns], plan)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			w := users[n]
			hp := &w.pods[0]
			var err error
			if hp.pre, err = hooks.ForPod(&hp.pod, hooks.Pre, e.cfg.HookFlags); err == nil {
				hp.post, err = hooks.ForPod(&hp.pod, hooks.Post, e.cfg.HookFlags)
			}
			var mine []int
			for _, i := range w.vols {
				if !owner[i] {
					mine = append(mine, i)
				}
			}
			if err != nil {
				for _, i := range mine {
					owner[i] = true
					plan[i].Status, plan[i].Error = catalog.VolumeFailed, err.Error()
				}
				continue
			}
			if (hp.pre == nil && hp.post == nil) || len(mine) == 0 {
				continue
			}
			for _, i := range mine {
				owner[i] = true
			}
			w.vols = mine
			windows = append(windows, w)
		}
	}
	return windows, nil
}

// podUsers is a window for each pod of namespace ns that mounts one of the planned volumes idx,
// with the volumes it mounts, and the pods' names in order.
func podUsers(ctx context.Context, pods *podIndex, ns string, idx []int, plan []catalog.Volume) (map[string]*hookWindow, []string, error) {
	users := map[string]*hookWindow{}
	var names []string
	for _, i := range idx {
		list, err := pods.using(ctx, ns, plan[i].PVC)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range list {
			w := users[p.Name]
			if w == nil {
				w = &hookWindow{pods: []hookPod{{pod: p}}}
				users[p.Name] = w
				names = append(names, p.Name)
			}
			w.vols = append(w.vols, i)
		}
	}
	sort.Strings(names)
	return users, names, nil
}

// mergeGroupWindows joins the windows whose volumes are members of one volume group (and, in
// turn, the groups they touch) into one window that also holds every member of those groups:
// all their pods are quiesced while the groups are cut.
func mergeGroupWindows(windows []*hookWindow, groups []*VolumeGroup) []*hookWindow {
	groupOf := map[int]int{} // plan index → group index
	for gi, g := range groups {
		for _, i := range g.Members {
			groupOf[i] = gi
		}
	}
	parent := make([]int, len(windows))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			i = parent[i]
		}
		return i
	}
	first := map[int]int{} // group index → first window that touches it
	for wi, w := range windows {
		for _, i := range w.vols {
			gi, ok := groupOf[i]
			if !ok {
				continue
			}
			if o, seen := first[gi]; seen {
				if a, b := find(o), find(wi); a != b {
					parent[max(a, b)] = min(a, b)
				}
			} else {
				first[gi] = wi
			}
		}
	}
	merged := map[int]*hookWindow{}
	var out []*hookWindow
	for wi, w := range windows {
		root := find(wi)
		m := merged[root]
		if m == nil {
			m = &hookWindow{}
			merged[root] = m
			out = append(out, m)
		}
		m.pods = append(m.pods, w.pods...)
		m.vols = append(m.vols, w.vols...)
	}
	for gi, g := range groups {
		if wi, ok := first[gi]; ok {
			m := merged[find(wi)]
			m.groups = append(m.groups, g)
			m.vols = appendMissing(m.vols, g.Members)
		}
	}
	return out
}

func appendMissing(to, add []int) []int {
	for _, i := range add {
		if !slices.Contains(to, i) {
			to = append(to, i)
		}
	}
	return to
}

func (e *engine) runHook(ctx context.Context, h *hooks.Hook, plan []catalog.Volume, vols []int) error {
	done := e.d.Progress.Start(h.String())
	out, err := e.d.Hooks.Run(ctx, *h)
	msg := fmt.Sprintf("%s hook in pod %s (container %s, %s): ", h.Phase, h.Pod, h.Container, h.Source)
	if err != nil {
		msg += "failed: " + err.Error()
	} else {
		msg += "ok"
	}
	if s := strings.TrimSpace(out.Stdout + out.Stderr); s != "" {
		if len(s) > 1000 {
			s = s[:1000] + "..."
		}
		msg += "; output: " + s
	}
	for _, i := range vols {
		plan[i].Hooks = append(plan[i].Hooks, msg)
	}
	if err != nil && h.OnError == hooks.OnErrorContinue {
		done("", fmt.Errorf("%w (on-error Continue)", err))
		for _, i := range vols {
			plan[i].Warnings = append(plan[i].Warnings, msg)
		}
		return nil
	}
	done("", err)
	return err
}

func (e *engine) runWindow(ctx context.Context, w *hookWindow, plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, pods *podIndex, cut groupCutter) {
	fail := func(i int, err error) {
		plan[i].Status, plan[i].Error = catalog.VolumeFailed, err.Error()
	}
	ran, preFailed := e.runPreHooks(ctx, w, plan)
	inGroup := e.cutWindowGroups(ctx, w, plan, preFailed, cut)
	var made []int
	for _, i := range w.vols {
		if preFailed {
			break
		}
		if !inGroup[i] {
			made = e.cutInWindow(ctx, w, i, plan, claims, pods, made)
		}
	}
	// The post hook follows the cut of the snapshots (status.creationTime), not their readiness.
	for _, i := range made {
		v := &plan[i]
		t := e.backupTask(v)
		if err := e.waitCut(ctx, t, v, Mode(v.Mode) == ModeSnapshot); err != nil {
			fail(i, err)
		}
	}
	e.runPostHooks(ctx, w, plan, ran)
	// A snapshot whose volume failed is not left behind. One that cannot be deleted now stays
	// precreated: the backup's last sweep (dropUnstarted) tries again and records why it failed.
	for _, i := range made {
		if plan[i].Status == catalog.VolumeFailed {
			t := e.backupTask(&plan[i])
			cctx, cancel := cleanup.Context(ctx, cleanup.Object)
			if err := e.cleanup(cctx, t, &createdObjects{snapshot: true}, true); err == nil {
				delete(e.precreated, plan[i].Namespace+"/"+plan[i].PVC)
			}
			cancel()
		}
	}
}

// runPreHooks runs the window's pre hooks, pod by pod, until one fails (the pods after it are
// not quiesced, nor released); ran is how many pods had their turn.
func (e *engine) runPreHooks(ctx context.Context, w *hookWindow, plan []catalog.Volume) (ran int, failed bool) {
	for _, p := range w.pods {
		ran++
		if p.pre == nil {
			continue
		}
		if err := e.runHook(ctx, p.pre, plan, w.vols); err != nil {
			for _, i := range w.vols {
				plan[i].Status, plan[i].Error = catalog.VolumeFailed, fmt.Errorf("pre hook failed, volume not backed up: %w", err).Error()
			}
			return ran, true
		}
	}
	return ran, false
}

// cutWindowGroups cuts the window's volume groups while its pods are quiesced (not after a
// failed pre hook); it returns the members, which get no snapshot of their own.
func (e *engine) cutWindowGroups(ctx context.Context, w *hookWindow, plan []catalog.Volume, preFailed bool, cut groupCutter) map[int]bool {
	inGroup := map[int]bool{}
	for _, g := range w.groups {
		for _, i := range g.Members {
			inGroup[i] = true
		}
		if preFailed {
			continue
		}
		done := e.d.Progress.Start(fmt.Sprintf("volume group %s (%s, VolumeGroupSnapshotClass %s, inside the hooks of pods %s)", g.Name(), progress.Plural(len(g.Members), "claim", "claims"), g.Class, w.names()))
		err := cut(ctx, g, true)
		done("", err)
		if err != nil {
			for _, i := range g.Members {
				plan[i].Status, plan[i].Error = catalog.VolumeFailed, err.Error()
			}
		}
	}
	return inGroup
}

// cutInWindow creates volume i's VolumeSnapshot (fs: uploads it) inside the window; made gains
// the volumes whose snapshot is to be waited for.
func (e *engine) cutInWindow(ctx context.Context, w *hookWindow, i int, plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, pods *podIndex, made []int) []int {
	v := &plan[i]
	if v.Status != "" {
		return made
	}
	t := e.backupTask(v)
	switch Mode(v.Mode) {
	case ModeSnapshot, ModeSnapshotMove:
		var c createdObjects
		if err := e.createSnapshot(ctx, t, v, &c, Mode(v.Mode) == ModeSnapshot); err != nil {
			v.Status, v.Error = catalog.VolumeFailed, err.Error()
			return made
		}
		e.precreated[v.Namespace+"/"+v.PVC] = true
		return append(made, i)
	case ModeFS:
		done := e.d.Progress.Start(fmt.Sprintf("volume %s/%s (fs, inside the hooks of pod %s)", v.Namespace, v.PVC, w.names()))
		start := time.Now()
		err := e.backupOne(ctx, v, claims[v.Namespace+"/"+v.PVC], pods)
		v.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
		e.done[v.Namespace+"/"+v.PVC] = true
		if err != nil {
			v.Status, v.Error = catalog.VolumeFailed, err.Error()
			done("", err)
		} else {
			v.Status = catalog.VolumeCompleted
			done(fmt.Sprintf("%s, %s", progress.Plural(int(v.Files), "file", "files"), progress.Bytes(v.Bytes)), nil)
		}
	}
	return made
}

// runPostHooks runs the post hooks of the window's first ran pods, whatever happened, a failed
// pre hook included: the application must not stay (partly) quiesced.
func (e *engine) runPostHooks(ctx context.Context, w *hookWindow, plan []catalog.Volume, ran int) {
	for _, p := range w.pods[:ran] {
		if p.post == nil {
			continue
		}
		pctx, cancel := cleanup.Context(ctx, p.post.Timeout+10*time.Second)
		if err := e.runHook(pctx, p.post, plan, w.vols); err != nil {
			for _, i := range w.vols {
				plan[i].Warnings = append(plan[i].Warnings, "post hook failed: "+err.Error())
			}
		}
		cancel()
	}
}
