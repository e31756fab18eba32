package volumes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/hooks"
)

// hookWindow is one pod with hooks and the planned volumes it mounts.
type hookWindow struct {
	pod       corev1.Pod
	pre, post *hooks.Hook
	vols      []int // indexes into the plan
}

// hookWindows runs, pod by pod, the pre hook, then creates the VolumeSnapshots of the pod's
// snapshot volumes (and uploads its fs volumes), waits until the snapshots are cut
// (status.creationTime), then runs the post hook — after the cut, not after readiness. The rest of each volume (waiting, moving) runs afterwards in
// parallel. A volume mounted by several hooked pods belongs to the first (by name).
func (e *engine) hookWindows(ctx context.Context, plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, pods *podIndex) error {
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
		users := map[string]*hookWindow{}
		var names []string
		for _, i := range byNS[ns] {
			list, err := pods.using(ctx, ns, plan[i].PVC)
			if err != nil {
				return err
			}
			for _, p := range list {
				w := users[p.Name]
				if w == nil {
					w = &hookWindow{pod: p}
					users[p.Name] = w
					names = append(names, p.Name)
				}
				w.vols = append(w.vols, i)
			}
		}
		sort.Strings(names)
		for _, n := range names {
			w := users[n]
			var err error
			if w.pre, err = hooks.ForPod(&w.pod, hooks.Pre, e.cfg.HookFlags); err == nil {
				w.post, err = hooks.ForPod(&w.pod, hooks.Post, e.cfg.HookFlags)
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
			if (w.pre == nil && w.post == nil) || len(mine) == 0 {
				continue
			}
			for _, i := range mine {
				owner[i] = true
			}
			w.vols = mine
			windows = append(windows, w)
		}
	}
	for _, w := range windows {
		if err := ctx.Err(); err != nil {
			return err
		}
		e.runWindow(ctx, w, plan, claims, pods)
	}
	return nil
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

func (e *engine) runWindow(ctx context.Context, w *hookWindow, plan []catalog.Volume, claims map[string]*corev1.PersistentVolumeClaim, pods *podIndex) {
	fail := func(i int, err error) {
		plan[i].Status, plan[i].Error = catalog.VolumeFailed, err.Error()
	}
	preFailed := false
	if w.pre != nil {
		if err := e.runHook(ctx, w.pre, plan, w.vols); err != nil {
			preFailed = true
			for _, i := range w.vols {
				fail(i, fmt.Errorf("pre hook failed, volume not backed up: %w", err))
			}
		}
	}
	// Snapshots are cut (fs volumes uploaded) while the application is quiesced.
	var made []int
	for _, i := range w.vols {
		if preFailed {
			break
		}
		v := &plan[i]
		t := e.backupTask(v)
		switch Mode(v.Mode) {
		case ModeSnapshot, ModeSnapshotMove:
			var c createdObjects
			if err := e.createSnapshot(ctx, t, v, &c, Mode(v.Mode) == ModeSnapshot); err != nil {
				fail(i, err)
				continue
			}
			e.precreated[v.Namespace+"/"+v.PVC] = true
			made = append(made, i)
		case ModeFS:
			done := e.d.Progress.Start(fmt.Sprintf("volume %s/%s (fs, inside the hooks of pod %s)", v.Namespace, v.PVC, w.pod.Name))
			start := time.Now()
			err := e.backupOne(ctx, v, claims[v.Namespace+"/"+v.PVC], pods)
			v.Seconds = time.Since(start).Round(time.Millisecond).Seconds()
			e.done[v.Namespace+"/"+v.PVC] = true
			if err != nil {
				fail(i, err)
				done("", err)
			} else {
				v.Status = catalog.VolumeCompleted
				done(fmt.Sprintf("%d files, %d bytes", v.Files, v.Bytes), nil)
			}
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
	if w.post != nil {
		// The post hook runs whatever happened, a failed pre hook included: the application must
		// not stay (partly) quiesced.
		pctx, cancel := cleanup.Context(ctx, w.post.Timeout+10*time.Second)
		defer cancel()
		if err := e.runHook(pctx, w.post, plan, w.vols); err != nil {
			for _, i := range w.vols {
				plan[i].Warnings = append(plan[i].Warnings, "post hook failed: "+err.Error())
			}
		}
	}
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
