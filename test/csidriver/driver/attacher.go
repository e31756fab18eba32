package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
)

// Attacher answers the VolumeAttachments of a zonal driver as the external-attacher sidecar does
// (kubernetes-csi/external-attacher, which the module proxy does not serve): for a VolumeAttachment
// of this driver it adds the finalizer external-attacher/<driver>, runs ControllerPublishVolume and
// sets status.attached and status.attachmentMetadata, or status.attachError with the driver's
// message; once the attach-detach controller deletes it, it runs ControllerUnpublishVolume, clears
// the status (or sets status.detachError) and removes the finalizer. The attach-detach controller
// in kube-controller-manager creates the VolumeAttachments (CSIDriver attachRequired: true) and
// reports Multi-Attach for a ReadWriteOnce volume on a second node itself.
//
// It lists and watches VolumeAttachments through the API's JSON (API), without client-go: the test
// driver stays a small build. A failed attach or detach is retried at the next resync, within
// RetryInterval.
type Attacher struct {
	d   *Driver
	api *API
	// RetryInterval bounds how long a failed attach or detach waits for its retry.
	RetryInterval time.Duration
	// ResyncInterval is how often everything is listed again when nothing failed.
	ResyncInterval time.Duration
	failed         bool              // a sync failed since the last resync
	seen           map[string]string // VolumeAttachment name → fingerprint of what was last synced
}

// Annotations the attacher keeps on a VolumeAttachment, so a detach needs neither the PV nor the CSINode.
const (
	annotationVolumeHandle = "csi.pvbackup.io/volume-handle"
	annotationNodeID       = "csi.alpha.kubernetes.io/node-id" // as the external-attacher
)

// NewAttacher makes the attacher of driver d, talking to the API through api.
func NewAttacher(d *Driver, api *API) *Attacher {
	return &Attacher{d: d, api: api, RetryInterval: 2 * time.Second, ResyncInterval: 5 * time.Minute, seen: map[string]string{}}
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

const vaPath = "/apis/storage.k8s.io/v1/volumeattachments"

// Run lists, syncs and watches VolumeAttachments until ctx is done.
func (a *Attacher) Run(ctx context.Context) error {
	a.d.cfg.Logger.Printf("attacher: answering the VolumeAttachments of %s", a.d.cfg.Name)
	for ctx.Err() == nil {
		rv, err := a.resync(ctx)
		if err == nil {
			err = a.watch(ctx, rv)
		}
		if err != nil && ctx.Err() == nil {
			a.d.cfg.Logger.Printf("attacher: %v (listing again)", err)
			select {
			case <-ctx.Done():
			case <-time.After(a.RetryInterval):
			}
		}
	}
	return nil
}

// resync lists every VolumeAttachment, syncs the driver's and returns the list's resourceVersion.
func (a *Attacher) resync(ctx context.Context) (string, error) {
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []volumeAttachment `json:"items"`
	}
	if err := a.api.Do(ctx, "GET", vaPath, "", nil, &list); err != nil {
		return "", fmt.Errorf("list VolumeAttachments: %w", err)
	}
	a.failed = false
	for i := range list.Items {
		a.syncLogged(ctx, &list.Items[i], false)
	}
	return list.Metadata.ResourceVersion, nil
}

// watch syncs the VolumeAttachments that change from resourceVersion rv on, until the watch ends:
// after RetryInterval if a sync failed (the resync retries it), else after ResyncInterval.
func (a *Attacher) watch(ctx context.Context, rv string) error {
	timeout := a.ResyncInterval
	if a.failed {
		timeout = a.RetryInterval
	}
	q := url.Values{"watch": {"1"}, "resourceVersion": {rv}, "allowWatchBookmarks": {"true"},
		"timeoutSeconds": {fmt.Sprint(max(1, int(timeout.Seconds())))}}
	return a.api.Watch(ctx, vaPath+"?"+q.Encode(), func(typ string, raw json.RawMessage) error {
		switch typ {
		case "ADDED", "MODIFIED":
			var va volumeAttachment
			if err := json.Unmarshal(raw, &va); err != nil {
				return fmt.Errorf("decode VolumeAttachment: %w", err)
			}
			a.syncLogged(ctx, &va, true)
		case "DELETED":
			var va volumeAttachment
			if json.Unmarshal(raw, &va) == nil {
				delete(a.seen, va.Metadata.Name)
			}
		case "ERROR":
			return fmt.Errorf("watch VolumeAttachments: %s", raw)
		}
		return nil
	})
}

// syncLogged syncs one VolumeAttachment of the driver and logs a failure. A watch event that
// changes nothing but the attach or detach error (the attacher's own report of a failure) is
// skipped, as the external-attacher does: else each failure would trigger the next at once; the
// resync retries it.
func (a *Attacher) syncLogged(ctx context.Context, va *volumeAttachment, fromWatch bool) {
	if va.Spec.Attacher != a.d.cfg.Name {
		return
	}
	fp := va.fingerprint()
	if fromWatch && a.seen[va.Metadata.Name] == fp {
		return
	}
	a.seen[va.Metadata.Name] = fp
	err := a.sync(ctx, va)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Code == 404 {
		return // deleted meanwhile (an event queued before its finalizer went): nothing left to do
	}
	if err != nil {
		a.failed = true
		a.d.cfg.Logger.Printf("attacher: VolumeAttachment %s (node %s): %v (retrying)", va.Metadata.Name, va.Spec.NodeName, err)
	}
}

func (a *Attacher) sync(ctx context.Context, va *volumeAttachment) error {
	switch {
	case va.Metadata.DeletionTimestamp != nil:
		return a.detach(ctx, va)
	case va.Status.Attached:
		return nil
	}
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
		if perr := a.patchStatus(ctx, va, map[string]any{"attachError": errorStatus(a.d.now(), err)}); perr != nil {
			return fmt.Errorf("%v; and recording it: %v", err, perr)
		}
		return err
	}
	if err := a.patchStatus(ctx, va, map[string]any{"attached": true, "attachmentMetadata": resp.PublishContext, "attachError": nil}); err != nil {
		return err
	}
	a.d.cfg.Logger.Printf("attacher: volume %s attached to node %s (VolumeAttachment %s)", req.VolumeId, req.NodeId, va.Metadata.Name)
	return nil
}

// publishRequest builds ControllerPublishVolume from the VolumeAttachment's PV and its node's CSINode.
func (a *Attacher) publishRequest(ctx context.Context, va *volumeAttachment) (*csi.ControllerPublishVolumeRequest, error) {
	pvName := va.Spec.Source.PersistentVolumeName
	if pvName == nil {
		return nil, errors.New("it names no PersistentVolume (inline volumes are not supported)")
	}
	var pv persistentVolume
	if err := a.api.Do(ctx, "GET", "/api/v1/persistentvolumes/"+url.PathEscape(*pvName), "", nil, &pv); err != nil {
		return nil, fmt.Errorf("PersistentVolume %s: %w", *pvName, err)
	}
	src := pv.Spec.CSI
	if src == nil || src.Driver != a.d.cfg.Name {
		return nil, fmt.Errorf("PersistentVolume %s is not a volume of CSI driver %s", *pvName, a.d.cfg.Name)
	}
	nodeID, err := a.nodeID(ctx, va.Spec.NodeName)
	if err != nil {
		return nil, err
	}
	mode, err := csiAccessMode(pv.Spec.AccessModes)
	if err != nil {
		return nil, fmt.Errorf("PersistentVolume %s: %w", *pvName, err)
	}
	return &csi.ControllerPublishVolumeRequest{
		VolumeId: src.VolumeHandle, NodeId: nodeID, Readonly: src.ReadOnly, VolumeContext: src.VolumeAttributes,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: src.FSType, MountFlags: pv.Spec.MountOptions}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		},
	}, nil
}

// csiAccessMode maps a PV's access modes to a CSI access mode as the external-attacher does
// (csi-lib-utils accessmodes, without SINGLE_NODE_MULTI_WRITER).
func csiAccessMode(modes []string) (csi.VolumeCapability_AccessMode_Mode, error) {
	has := map[string]bool{}
	for _, m := range modes {
		has[m] = true
	}
	switch {
	case has["ReadWriteOncePod"] && len(has) > 1:
		return 0, fmt.Errorf("ReadWriteOncePod with other access modes %v", modes)
	case has["ReadWriteOncePod"]:
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	case has["ReadWriteMany"]:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, nil
	case has["ReadOnlyMany"] && has["ReadWriteOnce"]:
		return 0, fmt.Errorf("CSI has no access mode for ReadOnlyMany with ReadWriteOnce")
	case has["ReadOnlyMany"]:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, nil
	case has["ReadWriteOnce"]:
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	}
	return 0, fmt.Errorf("unsupported access modes %v", modes)
}

// nodeID is the driver's ID of a node, from its CSINode (written by the kubelet at registration).
func (a *Attacher) nodeID(ctx context.Context, node string) (string, error) {
	var cn csiNode
	if err := a.api.Do(ctx, "GET", "/apis/storage.k8s.io/v1/csinodes/"+url.PathEscape(node), "", nil, &cn); err != nil {
		return "", fmt.Errorf("CSINode %s: %w", node, err)
	}
	for _, d := range cn.Spec.Drivers {
		if d.Name == a.d.cfg.Name {
			return d.NodeID, nil
		}
	}
	return "", fmt.Errorf("CSI driver %s is not registered on node %s (CSINode %s)", a.d.cfg.Name, node, node)
}

func (a *Attacher) detach(ctx context.Context, va *volumeAttachment) error {
	if !va.hasFinalizer(FinalizerName(a.d.cfg.Name)) {
		return nil // never attached by us, or already detached
	}
	volumeID, nodeID := va.Metadata.Annotations[annotationVolumeHandle], va.Metadata.Annotations[annotationNodeID]
	if volumeID != "" {
		if _, err := a.d.ControllerUnpublishVolume(ctx, &csi.ControllerUnpublishVolumeRequest{VolumeId: volumeID, NodeId: nodeID}); err != nil {
			if perr := a.patchStatus(ctx, va, map[string]any{"detachError": errorStatus(a.d.now(), err)}); perr != nil {
				return fmt.Errorf("%v; and recording it: %v", err, perr)
			}
			return err
		}
	}
	if err := a.patchStatus(ctx, va, map[string]any{"attached": false, "attachmentMetadata": nil, "detachError": nil}); err != nil {
		return err
	}
	if err := a.setFinalizer(ctx, va, false, nil); err != nil {
		return err
	}
	a.d.cfg.Logger.Printf("attacher: volume %s detached from node %s (VolumeAttachment %s)", volumeID, nodeID, va.Metadata.Name)
	return nil
}

func errorStatus(now time.Time, err error) map[string]any {
	return map[string]any{"time": now.UTC().Format(time.RFC3339), "message": err.Error()}
}

// patchStatus patches va's status and updates va to the result (so a later patch guarded by the
// resourceVersion does not conflict with this one).
func (a *Attacher) patchStatus(ctx context.Context, va *volumeAttachment, status map[string]any) error {
	return a.patch(ctx, va, "/status", map[string]any{"status": status})
}

func (a *Attacher) patch(ctx context.Context, va *volumeAttachment, sub string, patch any) error {
	var out volumeAttachment
	if err := a.api.MergePatch(ctx, vaPath+"/"+url.PathEscape(va.Metadata.Name)+sub, patch, &out); err != nil {
		return err
	}
	*va = out
	return nil
}

// setFinalizer adds (or removes) the attacher's finalizer, with annotations, guarded by the
// resourceVersion it was read at (a conflict is retried at the next resync).
func (a *Attacher) setFinalizer(ctx context.Context, va *volumeAttachment, add bool, annotations map[string]string) error {
	f := FinalizerName(a.d.cfg.Name)
	same := va.hasFinalizer(f) == add
	for k, v := range annotations {
		same = same && va.Metadata.Annotations[k] == v
	}
	if same {
		return nil
	}
	list := []string{}
	for _, x := range va.Metadata.Finalizers {
		if x != f {
			list = append(list, x)
		}
	}
	if add {
		list = append(list, f)
	}
	meta := map[string]any{"finalizers": list, "resourceVersion": va.Metadata.ResourceVersion}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	return a.patch(ctx, va, "", map[string]any{"metadata": meta})
}
