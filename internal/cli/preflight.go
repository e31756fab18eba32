package cli

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/doctor"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// preflight returns create's check of its plan, run by the backup engine before it writes or
// creates anything: a plan that cannot work is refused, naming the check.
// repoKey is the location's key Run already unwrapped (nil on a run without a location): the
// preflight opens the namespaces' repositories with it and never unwraps the key again.
func (o *CreateOptions) preflight(clients *kube.Clients, rep progress.Reporter, repoKey func(string) (string, error)) func(context.Context, backup.PreflightPlan) error {
	return func(ctx context.Context, p backup.PreflightPlan) error {
		start := time.Now()
		done := rep.Start("preflight checks")
		plan := doctor.CreatePlan{Namespaces: p.Namespaces, AllNamespaces: p.AllNamespaces, ListNamespaces: p.ListNamespaces, Hooks: o.PreHook != "" || o.PostHook != "", Resources: p.Resources, ClusterNeeds: p.ClusterNeeds}
		cfg := doctor.Config{Location: o.location.URL}
		deps := doctorDeps(clients)
		if repoKey != nil {
			deps.Keys = func(context.Context, *store.Location) (func(string) (string, error), error) { return repoKey, nil }
		}
		if p.Claims && o.volCfg != nil {
			claims, err := o.claims(ctx, clients, p)
			if err != nil {
				done("", err)
				return err
			}
			vd := volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery, Dynamic: clients.Dynamic}
			if plan.Volumes, err = volumes.Plan(ctx, vd, *o.volCfg, claims); err != nil {
				done("", err)
				return err
			}
			cfg.Mover, cfg.Mode, cfg.SnapshotClasses = o.volCfg.Mover, o.volCfg.Mode, o.volCfg.SnapshotClasses
		}
		r := doctor.CreatePreflight(ctx, deps, cfg, plan)
		if err := judgePreflight(ctx, r, rep, done, start); err != nil {
			return err
		}
		if o.early != nil && repoKey != nil {
			o.early.startFor(ctx, plan.Volumes) // while the resources archive is written
		}
		return nil
	}
}

// claims are the PVCs the backup will select (the engine finds the same ones while it writes).
func (o *CreateOptions) claims(ctx context.Context, clients *kube.Clients, p backup.PreflightPlan) ([]*corev1.PersistentVolumeClaim, error) {
	nss := p.Namespaces
	if p.AllNamespaces {
		nss = []string{""}
	}
	var out []*corev1.PersistentVolumeClaim
	for _, ns := range nss {
		list, err := clients.Typed.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: o.Selector})
		if err != nil {
			return nil, fmt.Errorf("preflight: list PVCs in %s: %w", ns, err)
		}
		for i := range list.Items {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// judgePreflight prints the warnings and turns failures into the error that stops the command.
func judgePreflight(ctx context.Context, r *doctor.Report, rep progress.Reporter, done func(string, error), start time.Time) error {
	if ctx.Err() != nil {
		done("", ctx.Err())
		return ctx.Err()
	}
	for _, c := range r.Problems() {
		if c.Status == doctor.Warn {
			msg := "preflight: " + c.Check + ": " + c.Detail
			if c.Fix != "" {
				msg += " (" + c.Fix + ")"
			}
			rep.Warn(msg)
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	if r.Status == doctor.Fail {
		err := fmt.Errorf("preflight: %s; nothing was created (fix it, or pass --skip-preflight to run anyway)", r.Summary())
		done("", err)
		return err
	}
	done(fmt.Sprintf("%s in %s", progress.Plural(len(r.Checks), "check", "checks"), took), nil)
	return nil
}

// restorePreflight checks the restore's target before anything is restored: the StorageClasses
// of the claims its movers fill exist, a node can run the mover, and the namespaces admit it.
// The restore engine decides which claims those are and calls it (restore.Deps.Preflight).
func (o *RestoreOptions) restorePreflight(clients *kube.Clients, rep progress.Reporter) restore.Preflight {
	return func(ctx context.Context, p restore.PreflightPlan) error {
		plan := doctorRestorePlan(p)
		if len(plan.StorageClasses) == 0 {
			return nil // no volume data to fill
		}
		start := time.Now()
		done := rep.Start("preflight checks")
		cfg := doctor.Config{Mover: o.volCfg.Mover}
		r := doctor.RestorePreflight(ctx, doctorDeps(clients), cfg, plan)
		return judgePreflight(ctx, r, rep, done, start)
	}
}

// doctorRestorePlan collects the namespaces the movers run in and the StorageClasses (here →
// as backed up) of the claims they fill; a claim without a class names neither.
func doctorRestorePlan(p restore.PreflightPlan) doctor.RestorePlan {
	plan := doctor.RestorePlan{StorageClasses: map[string]string{}}
	nss := map[string]bool{}
	for _, v := range p.Volumes {
		if v.BackedUpClass == "" {
			continue
		}
		nss[v.Namespace] = true
		plan.StorageClasses[v.StorageClass] = v.BackedUpClass
	}
	for ns := range nss {
		plan.Namespaces = append(plan.Namespaces, ns)
	}
	sort.Strings(plan.Namespaces)
	return plan
}
