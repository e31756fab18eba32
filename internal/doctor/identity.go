package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

const checkIdentityName = "mover service account"

// identityAnnotations are the ServiceAccount annotations of the workload identity systems
// (docs/install.md has one section per cloud).
var identityAnnotations = map[string]string{
	"eks.amazonaws.com/role-arn":        "EKS IRSA",
	"iam.gke.io/gcp-service-account":    "GKE Workload Identity",
	"azure.workload.identity/client-id": "Azure Workload Identity",
}

// checkServiceAccount checks that --mover-service-account exists in each namespace in scope (a
// mover Job under a missing account never starts a pod), and says which workload identity it
// carries. EKS Pod Identity binds a role to an account outside the account itself: no annotation
// is not a failure.
func checkServiceAccount(ctx context.Context, d *Deps, cfg *Config) []Result {
	sa := cfg.Mover.ServiceAccount
	if sa == "" {
		return nil
	}
	if cfg.AllNamespaces || len(cfg.Namespaces) == 0 {
		return []Result{warn(checkIdentityName, "movers run as ServiceAccount "+sa+" in each namespace backed up; with every namespace in scope it is not checked in each", "name the namespaces with -n or --include-namespaces")}
	}
	var out []Result
	for _, ns := range cfg.Namespaces {
		got, err := d.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			out = append(out, fail(checkIdentityName+" "+ns, fmt.Sprintf("ServiceAccount %s/%s does not exist: the movers of %s cannot start", ns, sa, ns),
				fmt.Sprintf("create it (kubectl create serviceaccount %s -n %s) with your cloud's workload identity annotation (docs/install.md)", sa, ns)))
		case err != nil:
			out = append(out, warn(checkIdentityName+" "+ns, fmt.Sprintf("read ServiceAccount %s/%s: %v", ns, sa, err), "the caller needs get on serviceaccounts"))
		default:
			var ids []string
			for k, v := range got.Annotations {
				if what, ok := identityAnnotations[k]; ok {
					ids = append(ids, fmt.Sprintf("%s (%s=%s)", what, k, v))
				}
			}
			sort.Strings(ids)
			detail := fmt.Sprintf("ServiceAccount %s/%s exists", ns, sa)
			if len(ids) > 0 {
				detail += ": " + strings.Join(ids, ", ")
			} else {
				detail += " (no workload identity annotation: EKS Pod Identity, or the node's identity)"
			}
			out = append(out, ok(checkIdentityName+" "+ns, detail))
		}
	}
	return out
}

// reachAs runs one mover, without a volume, in the first namespace in scope under the movers'
// ServiceAccount and with their credentials (none, with --mover-credentials=identity): it reaches
// the location exactly as that namespace's movers will.
func (p *prober) reachAs(ctx context.Context) (string, error) {
	ns := p.cfg.Namespaces[0]
	t := volumes.Task{Backup: p.backup(), Op: volumes.OpProbe, Namespace: ns, SourceNamespace: ns, PVC: "identity", Run: p.id,
		ProbeToken: "pvbackup-probe-" + volumes.NewRunID()}
	if _, err := p.engineFor(p.cfg.Mover).Mover(ctx, t, ""); err != nil {
		return "", fmt.Errorf("a mover in %s running as ServiceAccount %s: %w", ns, p.cfg.Mover.ServiceAccount, err)
	}
	return fmt.Sprintf("a mover in %s running as ServiceAccount %s wrote and deleted a marker in %s", ns, p.cfg.Mover.ServiceAccount, store.Redact(p.cfg.Mover.Location)), nil
}
