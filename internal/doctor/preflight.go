package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// CreatePlan is what create is about to do: its preflight checks that and nothing more.
type CreatePlan struct {
	Namespaces    []string
	AllNamespaces bool
	// ListNamespaces: the namespaces were chosen by pattern, which needs the right to list them.
	ListNamespaces bool
	// Volumes are the decisions of volumes.Plan (nil: resources only).
	Volumes []catalog.Volume
	Hooks   bool
	// Resources are the namespaced resource types the backup lists ("secrets", "deployments.apps"):
	// only their list rights are checked.
	Resources []string
	// ClusterNeeds: the backup fetches the cluster objects the selected ones refer to.
	ClusterNeeds bool
	// Groups: the backup cuts volume groups with VolumeGroupSnapshots (volumes.GroupsToCut);
	// AutoGroups: one of them is --volume-groups=auto's, whose members it labels.
	Groups, AutoGroups bool
}

// CreatePreflight runs the static checks that concern a backup's plan: the volume decisions, the
// snapshot controller when snapshots are taken, the caller's rights for what the plan does, the
// location (reachable, writable, its key) and the admission of the mover pod in the namespaces
// that get one. cfg carries the location and mover configuration, d.Keys the key create opened.
func CreatePreflight(ctx context.Context, d Deps, cfg Config, plan CreatePlan) *Report {
	cfg.Namespaces, cfg.AllNamespaces = plan.Namespaces, plan.AllNamespaces
	needs := []string{"resources"}
	if plan.ListNamespaces {
		needs = append(needs, "namespaces")
	}
	moverNS := map[string]bool{}
	snapshots := false
	for _, v := range plan.Volumes {
		if v.Status != "" {
			continue // skipped, or failed: the plan step names it
		}
		switch volumes.Mode(v.Mode) {
		case volumes.ModeSnapshotMove:
			moverNS[v.Namespace], snapshots = true, true
		case volumes.ModeFS:
			moverNS[v.Namespace] = true
		case volumes.ModeSnapshot:
			snapshots = true
		}
	}
	if len(moverNS) > 0 {
		needs = append(needs, "volumes")
	}
	if snapshots {
		needs = append(needs, "snapshots")
	}
	if plan.Groups {
		needs = append(needs, "groups") // the rights doctor checks, required here: the run cuts groups
	}
	if plan.AutoGroups {
		needs = append(needs, "auto-groups")
	}
	if plan.Hooks {
		needs = append(needs, "hooks")
	}
	if plan.ClusterNeeds {
		needs = append(needs, "needed-cluster")
	}
	cfg.Commands, cfg.Resources = needs, plan.Resources
	if cfg.Resources == nil {
		cfg.Resources = []string{} // a plan with no resource type lists none
	}
	steps := []Step{{"volume plan", func(context.Context, *Deps, *Config) []Result { return judgePlan(plan.Volumes) }}}
	if snapshots {
		steps = append(steps, Step{"snapshot controller", checkSnapshotController})
	}
	steps = append(steps, Step{"rights", checkRights}, Step{"location", checkLocation})
	if len(moverNS) > 0 {
		nss := sortedNames(moverNS)
		steps = append(steps, Step{"mover admission", func(ctx context.Context, d *Deps, cfg *Config) []Result {
			c := *cfg
			c.Namespaces, c.AllNamespaces = nss, false
			return checkAdmission(ctx, d, &c)
		}})
	}
	cfg.Probe = false
	// The namespaces' repositories are not opened: create has just unwrapped the location's key
	// their keys derive from, and opening one costs Kopia's key derivation and index reads (about
	// a second here) on every backup; the volume engine opens them before the first mover anyway.
	d.OpenRepository = nil
	return Run(ctx, d, cfg, steps)
}

// judgePlan turns volumes the plan cannot back up into failures.
func judgePlan(vols []catalog.Volume) []Result {
	var bad []string
	n := 0
	for _, v := range vols {
		if v.Status == catalog.VolumeFailed {
			msg := v.Error
			if !strings.Contains(msg, v.Namespace+"/"+v.PVC) { // the engine's errors name it already
				msg = fmt.Sprintf("PVC %s/%s: %s", v.Namespace, v.PVC, msg)
			}
			bad = append(bad, msg)
		}
		if v.Status == "" {
			n++
		}
	}
	if len(bad) > 0 {
		return []Result{fail("volume plan", strings.Join(bad, "; "), "fix the cause, choose another --volumes mode (or annotate the PVC "+volumes.AnnotationMode+"), or pass --skip-preflight to back up the rest")}
	}
	return []Result{ok("volume plan", ofAll(n, len(vols), "volume", "volumes")+" to back up")}
}

// RestorePlan is the target of a restore.
type RestorePlan struct {
	// Namespaces are the target namespaces (after --namespace-mapping).
	Namespaces []string
	// StorageClasses are the classes the restored PVCs will have (after --storage-class-mapping),
	// each with the backup's class it comes from.
	StorageClasses map[string]string
}

// RestorePreflight checks a restore's target: the StorageClasses of its PVCs exist, a node can
// run the mover, and the namespaces' admission (Pod Security, quotas) takes the restore mover.
func RestorePreflight(ctx context.Context, d Deps, cfg Config, plan RestorePlan) *Report {
	cfg.Namespaces, cfg.AllNamespaces, cfg.MoverOp, cfg.Probe = plan.Namespaces, false, "restore", false
	steps := []Step{
		{"storage classes", func(ctx context.Context, d *Deps, _ *Config) []Result {
			return judgeTargetClasses(ctx, d, plan.StorageClasses)
		}},
		{"mover scheduling", checkScheduling},
		{"mover admission", checkAdmission},
	}
	return Run(ctx, d, cfg, steps)
}

func judgeTargetClasses(ctx context.Context, d *Deps, classes map[string]string) []Result {
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Result
	for _, n := range names {
		check := storageClassCheck + n
		_, err := d.Kube.StorageV1().StorageClasses().Get(ctx, n, metav1.GetOptions{})
		from := ""
		if classes[n] != n {
			from = " (mapped from the backup's " + classes[n] + ")"
		}
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, fail(check, "StorageClass "+n+from+" does not exist: the restored PVCs would stay Pending",
				"map it to an existing class: --storage-class-mapping "+classes[n]+":NEW (see `kubectl get storageclass`)"))
		case err != nil:
			out = append(out, warn(check, "cannot read StorageClass "+n+": "+err.Error(), ""))
		default:
			out = append(out, ok(check, "StorageClass "+n+from+" exists"))
		}
	}
	return out
}

// ofAll counts n of all: "1 volume" when that is all of them, "2 of 3 volumes" otherwise.
func ofAll(n, all int, one, many string) string {
	if n == all {
		return progress.Plural(n, one, many)
	}
	return fmt.Sprintf("%d of %s", n, progress.Plural(all, one, many))
}
