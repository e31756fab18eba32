package driver

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The attacher answers VolumeAttachments as the external-attacher does: finalizer, attached and
// attachmentMetadata on success; attachError with the driver's reason for a second node; on
// deletion a detach, then the status cleared and the finalizer removed.
func TestAttacherAnswersVolumeAttachments(t *testing.T) {
	d := newTypedDriver(t, TypeZonal, 10<<30)
	v, err := createIn(t, d, "v", nil, topo(d.topologyKey(), "zone-b"))
	if err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv"}, Spec: corev1.PersistentVolumeSpec{
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: d.cfg.Name, VolumeHandle: v.VolumeId}}}},
		csiNode(d.cfg.Name, "b"), csiNode(d.cfg.Name, "c"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewAttacher(d, client).Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	vas := client.StorageV1().VolumeAttachments()
	for _, node := range []string{"b", "c"} {
		pv := "pv"
		if _, err := vas.Create(ctx, &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: "va-" + node},
			Spec: storagev1.VolumeAttachmentSpec{Attacher: d.cfg.Name, NodeName: node, Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: &pv}}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if node == "b" {
			waitVA(t, ctx, client, "va-b", func(va *storagev1.VolumeAttachment) bool {
				return va.Status.Attached && va.Status.AttachmentMetadata[PublishContextNode] == "b" && hasFinalizer(va, "external-attacher/test-csi-pvbackup-io")
			})
		}
	}
	waitVA(t, ctx, client, "va-c", func(va *storagev1.VolumeAttachment) bool {
		return !va.Status.Attached && va.Status.AttachError != nil && strings.Contains(va.Status.AttachError.Message, "already attached to node b")
	})

	// The attach-detach controller deletes va-b (the fake client keeps it with its finalizer).
	va, _ := vas.Get(ctx, "va-b", metav1.GetOptions{})
	va.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if _, err := vas.Update(ctx, va, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitVA(t, ctx, client, "va-b", func(va *storagev1.VolumeAttachment) bool { return !va.Status.Attached && len(va.Finalizers) == 0 })
	// va-c is retried with backoff and attaches once b let go.
	waitVA(t, ctx, client, "va-c", func(va *storagev1.VolumeAttachment) bool { return va.Status.Attached && va.Status.AttachError == nil })
}

func csiNode(driver, node string) *storagev1.CSINode {
	return &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: node},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{Name: driver, NodeID: node}}}}
}

func waitVA(t *testing.T, ctx context.Context, client *fake.Clientset, name string, ok func(*storagev1.VolumeAttachment) bool) {
	t.Helper()
	var va *storagev1.VolumeAttachment
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if va, err = client.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{}); err == nil && ok(va) {
			return
		}
	}
	t.Fatalf("VolumeAttachment %s did not reach the wanted state: %+v %+v", name, va.ObjectMeta, va.Status)
}
