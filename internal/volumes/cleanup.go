package volumes

import (
	"context"
	"errors"
	"fmt"
	"sort"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Object names one object the plugin created.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Leftovers lists the temporary objects of a backup ("" = of every backup) in every namespace:
// Jobs, pods, PVCs, VolumeSnapshots (not those kept by snapshot mode), Secrets, and the namespaces of
// doctor's probes, in deletion order.
func Leftovers(ctx context.Context, kube kubernetes.Interface, snap snapclient.Interface, backup string) ([]Object, error) {
	opts := metav1.ListOptions{LabelSelector: Selector(backup)}
	var out []Object
	add := func(kind string, ns, name string) { out = append(out, Object{Kind: kind, Namespace: ns, Name: name}) }
	jobs, err := kube.BatchV1().Jobs("").List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list Jobs labelled %s: %w", opts.LabelSelector, err)
	}
	for _, j := range jobs.Items {
		add("Job", j.Namespace, j.Name)
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list pods labelled %s: %w", opts.LabelSelector, err)
	}
	for _, p := range pods.Items {
		add("Pod", p.Namespace, p.Name)
	}
	pvcs, err := kube.CoreV1().PersistentVolumeClaims("").List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list PVCs labelled %s: %w", opts.LabelSelector, err)
	}
	for _, p := range pvcs.Items {
		add("PersistentVolumeClaim", p.Namespace, p.Name)
	}
	if snap != nil {
		vss, err := snap.SnapshotV1().VolumeSnapshots("").List(ctx, metav1.ListOptions{LabelSelector: opts.LabelSelector + "," + LabelKept + "!=true"})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("list VolumeSnapshots labelled %s: %w", opts.LabelSelector, err)
		}
		if err == nil {
			for _, v := range vss.Items {
				add("VolumeSnapshot", v.Namespace, v.Name)
			}
		}
	}
	secrets, err := kube.CoreV1().Secrets("").List(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("list Secrets labelled %s: %w", opts.LabelSelector, err)
	}
	for _, s := range secrets.Items {
		add("Secret", s.Namespace, s.Name)
	}
	// Doctor's probe runs in a namespace of its own, labelled like the objects in it.
	nss, err := kube.CoreV1().Namespaces().List(ctx, opts)
	switch {
	case apierrors.IsForbidden(err): // a caller who cannot list namespaces cannot have run a probe either
	case err != nil:
		return nil, fmt.Errorf("list namespaces labelled %s: %w", opts.LabelSelector, err)
	default:
		for _, n := range nss.Items {
			add("Namespace", "", n.Name)
		}
	}
	order := map[string]int{"Job": 0, "Pod": 1, "PersistentVolumeClaim": 2, "VolumeSnapshot": 3, "Secret": 4, "Namespace": 5}
	sort.SliceStable(out, func(i, j int) bool { return order[out[i].Kind] < order[out[j].Kind] })
	return out, nil
}

// Delete removes objects listed by Leftovers or KeptSnapshots: PVs of temporary claims and the
// contents of VolumeSnapshots go with them whatever their policies.
func Delete(ctx context.Context, kube kubernetes.Interface, snap snapclient.Interface, objs []Object) error {
	var errs []error
	for _, o := range objs {
		var err error
		switch o.Kind {
		case "Job":
			err = kube.BatchV1().Jobs(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)})
		case "Pod":
			err = kube.CoreV1().Pods(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))})
		case "PersistentVolumeClaim":
			err = deleteClaim(ctx, kube, o.Namespace, o.Name)
		case "VolumeSnapshot":
			err = deleteSnapshot(ctx, snap, o.Namespace, o.Name)
		case "Secret":
			err = kube.CoreV1().Secrets(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		case "Namespace":
			err = kube.CoreV1().Namespaces().Delete(ctx, o.Name, metav1.DeleteOptions{})
		default:
			err = fmt.Errorf("unknown kind")
		}
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", o, err))
		}
	}
	return errors.Join(errs...)
}

// KeptSnapshots lists the VolumeSnapshots snapshot mode kept for a backup.
func KeptSnapshots(ctx context.Context, snap snapclient.Interface, backup string) ([]Object, error) {
	vss, err := snap.SnapshotV1().VolumeSnapshots("").List(ctx, metav1.ListOptions{LabelSelector: Selector(backup) + "," + LabelKept + "=true"})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list VolumeSnapshots of backup %s: %w", backup, err)
	}
	var out []Object
	for _, v := range vss.Items {
		out = append(out, Object{Kind: "VolumeSnapshot", Namespace: v.Namespace, Name: v.Name})
	}
	return out, nil
}
