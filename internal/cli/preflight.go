package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
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
func (o *CreateOptions) preflight(clients *kube.Clients, rep progress.Reporter, repoKey func(string) string) func(context.Context, backup.PreflightPlan) error {
	return func(ctx context.Context, p backup.PreflightPlan) error {
		start := time.Now()
		done := rep.Start("preflight checks")
		plan := doctor.CreatePlan{Namespaces: p.Namespaces, AllNamespaces: p.AllNamespaces, ListNamespaces: p.ListNamespaces, Hooks: o.PreHook != "" || o.PostHook != "", Resources: p.Resources, ClusterNeeds: p.ClusterNeeds}
		cfg := doctor.Config{Location: o.location.URL}
		deps := doctorDeps(clients)
		if repoKey != nil {
			deps.Keys = func(context.Context, *store.Location) (func(string) string, error) { return repoKey, nil }
		}
		if p.Claims && o.volCfg != nil {
			claims, err := o.claims(ctx, clients, p)
			if err != nil {
				done("", err)
				return err
			}
			vd := volumes.Deps{Kube: clients.Typed, Snap: clients.Snap, Discovery: clients.Discovery}
			if plan.Volumes, err = volumes.Plan(ctx, vd, *o.volCfg, claims); err != nil {
				done("", err)
				return err
			}
			cfg.Mover, cfg.Mode, cfg.SnapshotClasses = o.volCfg.Mover, o.volCfg.Mode, o.volCfg.SnapshotClasses
		}
		r := doctor.CreatePreflight(ctx, deps, cfg, plan)
		return judgePreflight(ctx, r, rep, done, start)
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
	done(fmt.Sprintf("%s in %s", plural(len(r.Checks), "check", "checks"), took), nil)
	return nil
}

// restorePreflight checks the restore's target before anything is restored: the StorageClasses
// of its PVCs exist, a node can run the mover, and the namespaces admit it.
func (o *RestoreOptions) restorePreflight(ctx context.Context, clients *kube.Clients, cat *catalog.Catalog, rep progress.Reporter) error {
	m, err := cat.Manifest(ctx, o.Name)
	if err != nil {
		return nil // restore reports it, with its own wording
	}
	return o.preflightVolumes(ctx, clients, m, rep)
}

// preflightVolumes checks the target of the restore of m's volumes (a manifest of ours, or the
// volume records of another tool's backup).
func (o *RestoreOptions) preflightVolumes(ctx context.Context, clients *kube.Clients, m *catalog.Manifest, rep progress.Reporter) error {
	plan := restorePlan(m, o.cfg)
	if o.DataOnly {
		plan = dataRestorePlan(m, o.cfg, o.DataVolumes, o.TargetPVC, o.InPlace)
	}
	if len(plan.StorageClasses) == 0 {
		return nil // no volume data to fill
	}
	start := time.Now()
	done := rep.Start("preflight checks")
	cfg := doctor.Config{Mover: o.volCfg.Mover}
	r := doctor.RestorePreflight(ctx, doctorDeps(clients), cfg, plan)
	return judgePreflight(ctx, r, rep, done, start)
}

// restorePlan is the restore's target: namespaces and StorageClasses after the mappings, of the
// backup's volumes the selection keeps.
func restorePlan(m *catalog.Manifest, cfg restore.Config) doctor.RestorePlan {
	return planOf(m, cfg.StorageClassMapping, func(v catalog.Volume) (string, bool) {
		if !cfg.Namespaces.Match(v.Namespace) || v.KopiaSnapshot == "" {
			return "", false
		}
		return mappedNamespace(cfg.NamespaceMapping, v.Namespace), true
	})
}

// dataRestorePlan is the target of --data-only / --in-place: the named volumes a mover fills
// (Kopia data; in place also a kept VolumeSnapshot, copied by a mover), in the namespace of
// --target-pvc or the mapped one.
func dataRestorePlan(m *catalog.Manifest, cfg restore.Config, named []string, target string, inPlace bool) doctor.RestorePlan {
	want := map[string]bool{}
	for _, n := range named {
		want[n] = true
	}
	return planOf(m, cfg.StorageClassMapping, func(v catalog.Volume) (string, bool) {
		if !want[v.Namespace+"/"+v.PVC] || (v.KopiaSnapshot == "" && !(inPlace && v.VolumeSnapshot != "")) {
			return "", false
		}
		if ns, _, ok := strings.Cut(target, "/"); ok {
			return ns, true
		}
		return mappedNamespace(cfg.NamespaceMapping, v.Namespace), true
	})
}

func mappedNamespace(mapping map[string]string, ns string) string {
	if to, ok := mapping[ns]; ok {
		return to
	}
	return ns
}

// planOf collects the namespaces and (mapped) StorageClasses of the volumes target keeps, each
// with the namespace its mover runs in.
func planOf(m *catalog.Manifest, classMap map[string]string, target func(catalog.Volume) (string, bool)) doctor.RestorePlan {
	plan := doctor.RestorePlan{StorageClasses: map[string]string{}}
	nss := map[string]bool{}
	for _, v := range m.Volumes {
		ns, ok := target(v)
		if !ok || v.StorageClass == "" {
			continue
		}
		nss[ns] = true
		to := v.StorageClass
		if n, ok := classMap[to]; ok {
			to = n
		}
		plan.StorageClasses[to] = v.StorageClass
	}
	for ns := range nss {
		plan.Namespaces = append(plan.Namespaces, ns)
	}
	sort.Strings(plan.Namespaces)
	return plan
}
