package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/accessmodes"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Attacher answers the VolumeAttachments of a zonal driver as the external-attacher sidecar does
// (kubernetes-csi/external-attacher, which the module proxy does not serve): for a VolumeAttachment
// of this driver it adds the finalizer external-attacher/<driver>, runs ControllerPublishVolume and
// sets status.attached and status.attachmentMetadata, or status.attachError with the driver's
// message; once the attach-detach controller deletes it, it runs ControllerUnpublishVolume, clears
// the status (or sets status.detachError) and removes the finalizer. The attach-detach controller
// in kube-controller-manager creates the VolumeAttachments (CSIDriver attachRequired: true) and
// reports Multi-Attach for a ReadWriteOnce volume on a second node itself.
type Attacher struct {
	d      *Driver
	client kubernetes.Interface
	queue  workqueue.TypedRateLimitingInterface[string]
	lister func(name string) (*storagev1.VolumeAttachment, error)
}

// Annotations the attacher keeps on a VolumeAttachment, so a detach needs neither the PV nor the CSINode.
const (
	annotationVolumeHandle = "csi.pvbackup.io/volume-handle"
	annotationNodeID       = "csi.alpha.kubernetes.io/node-id" // as the external-attacher
)

// NewAttacher makes the attacher of driver d.
func NewAttacher(d *Driver, client kubernetes.Interface) *Attacher {
	return &Attacher{d: d, client: client, queue: workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "volumeattachments"})}
}

// FinalizerName is the finalizer the attacher puts on its VolumeAttachments, the external-attacher's.
func FinalizerName(driver string) string {
	b := []byte(driver)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if b[len(b)-1] == '-' {
		b = append(b, 'X')
	}
	return "external-attacher/" + string(b)
}

// Run watches VolumeAttachments until ctx is done.
func (a *Attacher) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(a.client, 10*time.Minute)
	inf := factory.Storage().V1().VolumeAttachments()
	enqueue := func(obj any) {
		if va, ok := obj.(*storagev1.VolumeAttachment); ok && va.Spec.Attacher == a.d.cfg.Name {
			a.queue.Add(va.Name)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	a.lister = inf.Lister().Get
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.Informer().HasSynced) {
		return ctx.Err()
	}
	a.d.cfg.Logger.Printf("attacher: watching the VolumeAttachments of %s", a.d.cfg.Name)
	go func() { <-ctx.Done(); a.queue.ShutDown() }()
	for a.next(ctx) {
	}
	return nil
}

func (a *Attacher) next(ctx context.Context) bool {
	name, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(name)
	if err := a.sync(ctx, name); err != nil {
		a.d.cfg.Logger.Printf("attacher: VolumeAttachment %s: %v (retrying)", name, err)
		a.queue.AddRateLimited(name)
		return true
	}
	a.queue.Forget(name)
	return true
}

func (a *Attacher) sync(ctx context.Context, name string) error {
	va, err := a.lister(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if va.DeletionTimestamp != nil {
		return a.detach(ctx, va)
	}
	if va.Status.Attached {
		return nil
	}
	return a.attach(ctx, va)
}

func (a *Attacher) attach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	req, err := a.publishRequest(ctx, va)
	if err == nil {
		// The finalizer first: a VolumeAttachment deleted from here on waits for the detach.
		err = a.setFinalizer(ctx, va, true, map[string]string{annotationVolumeHandle: req.VolumeId, annotationNodeID: req.NodeId})
	}
	var resp *csi.ControllerPublishVolumeResponse
	if err == nil {
		resp, err = a.d.ControllerPublishVolume(ctx, req)
	}
	if err != nil {
		if perr := a.patchStatus(ctx, va, map[string]any{"attachError": volumeError(a.d.now(), err)}); perr != nil {
			return fmt.Errorf("%v; and recording it: %v", err, perr)
		}
		return err
	}
	return a.patchStatus(ctx, va, map[string]any{"attached": true, "attachmentMetadata": resp.PublishContext, "attachError": nil})
}

// publishRequest builds ControllerPublishVolume from the VolumeAttachment's PV and its node's CSINode.
func (a *Attacher) publishRequest(ctx context.Context, va *storagev1.VolumeAttachment) (*csi.ControllerPublishVolumeRequest, error) {
	pvName := va.Spec.Source.PersistentVolumeName
	if pvName == nil {
		return nil, fmt.Errorf("VolumeAttachment %s names no PersistentVolume (inline volumes are not supported)", va.Name)
	}
	pv, err := a.client.CoreV1().PersistentVolumes().Get(ctx, *pvName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("PersistentVolume %s: %w", *pvName, err)
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != a.d.cfg.Name {
		return nil, fmt.Errorf("PersistentVolume %s is not a volume of CSI driver %s", pv.Name, a.d.cfg.Name)
	}
	nodeID, err := a.nodeID(ctx, va.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	mode, err := accessmodes.ToCSIAccessMode(pv.Spec.AccessModes, false)
	if err != nil {
		return nil, fmt.Errorf("PersistentVolume %s: %w", pv.Name, err)
	}
	return &csi.ControllerPublishVolumeRequest{
		VolumeId: pv.Spec.CSI.VolumeHandle, NodeId: nodeID, Readonly: pv.Spec.CSI.ReadOnly, VolumeContext: pv.Spec.CSI.VolumeAttributes,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: pv.Spec.CSI.FSType, MountFlags: pv.Spec.MountOptions}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		},
	}, nil
}

// nodeID is the driver's ID of a node, from its CSINode (written by the kubelet at registration).
func (a *Attacher) nodeID(ctx context.Context, node string) (string, error) {
	cn, err := a.client.StorageV1().CSINodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("CSINode %s: %w", node, err)
	}
	for _, d := range cn.Spec.Drivers {
		if d.Name == a.d.cfg.Name {
			return d.NodeID, nil
		}
	}
	return "", fmt.Errorf("CSI driver %s is not registered on node %s (CSINode %s)", a.d.cfg.Name, node, node)
}

func (a *Attacher) detach(ctx context.Context, va *storagev1.VolumeAttachment) error {
	if !hasFinalizer(va, FinalizerName(a.d.cfg.Name)) {
		return nil // never attached by us, or already detached
	}
	volumeID, nodeID := va.Annotations[annotationVolumeHandle], va.Annotations[annotationNodeID]
	if volumeID != "" {
		if _, err := a.d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: volumeID, NodeId: nodeID}); err != nil {
			if perr := a.patchStatus(ctx, va, map[string]any{"detachError": volumeError(a.d.now(), err)}); perr != nil {
				return fmt.Errorf("%v; and recording it: %v", err, perr)
			}
			return err
		}
	}
	if err := a.patchStatus(ctx, va, map[string]any{"attached": false, "attachmentMetadata": nil, "detachError": nil}); err != nil {
		return err
	}
	return a.setFinalizer(ctx, va, false, nil)
}

func volumeError(now time.Time, err error) map[string]any {
	return map[string]any{"time": metav1.NewTime(now), "message": err.Error()}
}

func (a *Attacher) patchStatus(ctx context.Context, va *storagev1.VolumeAttachment, status map[string]any) error {
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = a.client.StorageV1().VolumeAttachments().Patch(ctx, va.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

func hasFinalizer(va *storagev1.VolumeAttachment, f string) bool {
	for _, x := range va.Finalizers {
		if x == f {
			return true
		}
	}
	return false
}

// setFinalizer adds (or removes) the attacher's finalizer, with annotations, guarded by the
// resourceVersion it was read at (a conflict is retried by the queue).
func (a *Attacher) setFinalizer(ctx context.Context, va *storagev1.VolumeAttachment, add bool, annotations map[string]string) error {
	f := FinalizerName(a.d.cfg.Name)
	same := hasFinalizer(va, f) == add
	for k, v := range annotations {
		same = same && va.Annotations[k] == v
	}
	if same {
		return nil
	}
	list := []string{}
	for _, x := range va.Finalizers {
		if x != f {
			list = append(list, x)
		}
	}
	if add {
		list = append(list, f)
	}
	meta := map[string]any{"finalizers": list, "resourceVersion": va.ResourceVersion}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return err
	}
	_, err = a.client.StorageV1().VolumeAttachments().Patch(ctx, va.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
