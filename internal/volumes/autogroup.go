package volumes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cleanup"
)

// --volume-groups=auto: the selected snapshot-move claims of a namespace and CSI driver that no
// group label puts into a group are cut together. A VolumeGroupSnapshot selects its members by a
// label selector only, so the run labels those claims LabelGroupRun=<value> just before the cut
// and removes the label once the group is cut (and on failure or Ctrl-C, within
// cleanup.Objects); `cleanup` removes it from claims a killed run left it on. The key is this
// tool's own: nothing else sets it, so removing it takes nothing of the user's.

// LabelGroupRun labels the members of an automatic volume group for one run's cut. Its value is
// AutoGroupValue: the backup's hash, the run and the driver's hash.
const LabelGroupRun = "pvbackup.io/group-run"

// GroupsAuto is the --volume-groups value that groups claims without labels.
const GroupsAuto = "auto"

// GroupsLabels is the default --volume-groups value: only claims with a group label are grouped.
const GroupsLabels = "labels"

// AutoGroupValue is the LabelGroupRun value of a run's automatic group of a CSI driver: at most
// 63 characters whatever the names, and it starts with the backup's prefix (backupRunPrefix) so
// that `cleanup --backup` finds the claims of that backup's runs.
func AutoGroupValue(backup, runID, driver string) string {
	return backupRunPrefix(backup) + runID + "-" + shortHash(driver)
}

// backupRunPrefix begins every LabelGroupRun value of a backup's runs.
func backupRunPrefix(backup string) string { return shortHash(backup) + "-" }

func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// autoWhy says why a claim is in an automatic group.
func autoWhy(g *VolumeGroup) string {
	return fmt.Sprintf("--volume-groups=auto: the selected claims of CSI driver %s in namespace %s without a group label, labelled %s for the cut", g.Driver, g.Namespace, LabelGroupRun)
}

// labelledClaim is a claim this run labelled LabelGroupRun=value.
type labelledClaim struct{ namespace, name, value string }

// labelMembers labels the group's claims still to be backed up with its LabelGroupRun value
// (an automatic group), just before its VolumeGroupSnapshot is created.
func (r *backupRun) labelMembers(ctx context.Context, g *VolumeGroup) error {
	if !g.Auto {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{LabelGroupRun: g.Value}}})
	if err != nil {
		return err
	}
	for _, i := range g.Members {
		v := &r.plan[i]
		if v.Status != "" {
			continue
		}
		// Recorded before the patch: a patch whose answer is lost may still have been applied.
		r.labelled = append(r.labelled, labelledClaim{v.Namespace, v.PVC, g.Value})
		_, err := r.d.Kube.CoreV1().PersistentVolumeClaims(v.Namespace).Patch(ctx, v.PVC, types.MergePatchType, patch, metav1.PatchOptions{})
		if err != nil {
			return fmt.Errorf("label PVC %s/%s %s=%s for the cut of volume group %s: %w (the run needs patch on persistentvolumeclaims for --volume-groups=auto; or label the claims %s yourself)",
				v.Namespace, v.PVC, LabelGroupRun, g.Value, g.Name(), err, LabelVolumeGroup)
		}
	}
	return nil
}

// unlabel removes LabelGroupRun from the claims this run labelled for group value ("" = every
// group), each only while it still carries this run's value.
func (r *backupRun) unlabel(ctx context.Context, value string) error {
	var errs []error
	kept := r.labelled[:0]
	for _, l := range r.labelled {
		if value != "" && l.value != value {
			kept = append(kept, l)
			continue
		}
		if err := removeGroupRunLabel(ctx, r.d.Kube, l.namespace, l.name, l.value); err != nil {
			errs = append(errs, err)
			kept = append(kept, l)
		}
	}
	r.labelled = kept
	return errors.Join(errs...)
}

// unlabelAll removes every LabelGroupRun this run added (the end of a run, whatever its outcome;
// after Ctrl-C too, within cleanup.Objects).
func (r *backupRun) unlabelAll(ctx context.Context) {
	if len(r.labelled) == 0 {
		return
	}
	cctx, cancel := cleanup.Context(ctx, cleanup.Objects)
	defer cancel()
	if err := r.unlabel(cctx, ""); err != nil {
		r.d.Progress.Warn(fmt.Sprintf("cleanup: %v (run kubectl pvbackup cleanup)", err))
	}
}

// removeGroupRunLabel removes LabelGroupRun from claim ns/name if its value is value: a JSON
// patch that tests the value first, so a label another run set since is left.
func removeGroupRunLabel(ctx context.Context, kube kubernetes.Interface, ns, name, value string) error {
	path := "/metadata/labels/" + strings.ReplaceAll(LabelGroupRun, "/", "~1")
	patch, err := json.Marshal([]map[string]string{{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}})
	if err != nil {
		return err
	}
	_, err = kube.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsInvalid(err):
		return nil // the label is gone or carries another value: not this run's any more
	}
	return fmt.Errorf("remove label %s from PVC %s/%s: %w", LabelGroupRun, ns, name, err)
}

// LabelledClaim is a user's claim that carries LabelGroupRun (cleanup).
type LabelledClaim struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Value     string `json:"value"`
}

func (c LabelledClaim) String() string {
	return fmt.Sprintf("PVC %s/%s (%s=%s)", c.Namespace, c.Name, LabelGroupRun, c.Value)
}

// LabelledClaims lists the claims that carry LabelGroupRun from a run of backup ("" = of any
// backup): left by a killed run (cleanup). Only the label is this tool's; the claims are not.
func LabelledClaims(ctx context.Context, kube kubernetes.Interface, backup string) ([]LabelledClaim, error) {
	list, err := kube.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{LabelSelector: LabelGroupRun})
	if err != nil {
		return nil, fmt.Errorf("list PVCs labelled %s: %w", LabelGroupRun, err)
	}
	var out []LabelledClaim
	for _, c := range list.Items {
		if ofBackup(&c, backup) {
			out = append(out, LabelledClaim{Namespace: c.Namespace, Name: c.Name, Value: c.Labels[LabelGroupRun]})
		}
	}
	return out, nil
}

func ofBackup(c *corev1.PersistentVolumeClaim, backup string) bool {
	return backup == "" || strings.HasPrefix(c.Labels[LabelGroupRun], backupRunPrefix(backup))
}

// Unlabel removes LabelGroupRun, and nothing else, from the claims LabelledClaims listed (each
// only while it still has the value listed).
func Unlabel(ctx context.Context, kube kubernetes.Interface, claims []LabelledClaim) error {
	var errs []error
	for _, c := range claims {
		errs = append(errs, removeGroupRunLabel(ctx, kube, c.Namespace, c.Name, c.Value))
	}
	return errors.Join(errs...)
}
