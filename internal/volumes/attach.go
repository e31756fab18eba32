package volumes

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// maxAttachments bounds the VolumeAttachments read to explain a Multi-Attach.
const maxAttachments = 5000

// explainMultiAttach adds the nodes to a mover's Multi-Attach failure: the attach-detach
// controller's message names the pods that hold the volume, not where they are. It reads the
// VolumeAttachments of the claim's volume; what it cannot read leaves err as it is.
func explainMultiAttach(ctx context.Context, kube kubernetes.Interface, ns, claim, moverNode string, err error) error {
	if err == nil || !strings.Contains(err.Error(), "Multi-Attach") {
		return err
	}
	pvc, gerr := kube.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if gerr != nil || pvc.Spec.VolumeName == "" {
		return err
	}
	// One page, bounded: this only adds to a message.
	vas, lerr := kube.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{Limit: maxAttachments})
	if lerr != nil {
		return err
	}
	var held []string
	for _, va := range vas.Items {
		if pv := va.Spec.Source.PersistentVolumeName; pv != nil && *pv == pvc.Spec.VolumeName && va.Spec.NodeName != moverNode && va.Status.Attached {
			held = append(held, va.Spec.NodeName)
		}
	}
	if len(held) == 0 {
		return err
	}
	return fmt.Errorf("%w: volume %s of PVC %s is attached to node %s, and the mover pod was scheduled to node %s; a disk that attaches to one node at a time is read only there: stop the pod that holds it and run again (a backup can use --volumes=snapshot-move)",
		err, pvc.Spec.VolumeName, describeClaim(ns, claim), strings.Join(held, ", "), orDash(moverNode))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
