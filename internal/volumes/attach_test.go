package volumes

import (
	"context"
	"errors"
	"testing"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// A mover's Multi-Attach failure names the node the volume is attached to and the mover's own:
// the attach-detach controller's message names only the pods that hold it.
func TestExplainMultiAttach(t *testing.T) {
	ctx := context.Background()
	va := func(name, node string, attached bool) *storagev1.VolumeAttachment {
		return &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.VolumeAttachmentSpec{NodeName: node,
			Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To("pv-disk")}}, Status: storagev1.VolumeAttachmentStatus{Attached: attached}}
	}
	kube := fake.NewSimpleClientset(boundClaim("disk", "pv-disk"), va("va-b", "node-b", true), va("va-c", "node-c", false))
	claim := boundClaim("disk", "pv-disk")
	multi := errors.New(`Pod pvb-b-x: FailedAttachVolume: Multi-Attach error for volume "pv-disk" Volume is already used by pod(s) holder`)
	err := explainMultiAttach(ctx, kube, claim.Namespace, "disk", "node-c", multi)
	want := multi.Error() + ": volume pv-disk of PVC " + claim.Namespace + "/disk is attached to node node-b, and the mover pod was scheduled to node node-c; a disk that attaches to one node at a time is read only there: stop the pod that holds it and run again (a backup can use --volumes=snapshot-move)"
	if err == nil || err.Error() != want || !errors.Is(err, multi) {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	other := errors.New("Pod pvb-b-x: FailedMount: timed out")
	if got := explainMultiAttach(ctx, kube, claim.Namespace, "disk", "node-c", other); got != other {
		t.Errorf("another failure: %v", got)
	}
	if got := explainMultiAttach(ctx, fake.NewSimpleClientset(claim), claim.Namespace, "disk", "node-c", multi); got != multi {
		t.Errorf("no attachment known: %v", got)
	}
}
