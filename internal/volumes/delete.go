package volumes

import (
	"context"
	"fmt"
	"sort"

	snapclient "github.com/kubernetes-csi/external-snapshotter/client/v6/clientset/versioned"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
)

// DeleteDataDeps are what deleting a backup's volume data needs; each is asked for only when the
// backup has data of that kind.
type DeleteDataDeps struct {
	// Location is the backup location URL.
	Location string
	// RepoPassword returns the password that opens a namespace's repository.
	RepoPassword func(namespace string) (string, error)
	// Cluster connects to the cluster that holds the VolumeSnapshots snapshot mode kept.
	Cluster func() (kubernetes.Interface, snapclient.Interface, error)
}

// DeleteData removes a backup's volume data: its Kopia snapshots (their data is freed by the
// next maintenance) and the VolumeSnapshots snapshot mode kept. It never fails: what cannot be
// removed is a line that says what is left and how to remove it, so the backup's files can
// always go. The lines are for the user, in order.
func DeleteData(ctx context.Context, d DeleteDataDeps, m *catalog.Manifest) []string {
	var notes []string
	byNS := map[string][]string{}
	kept := 0
	for _, v := range m.Volumes {
		if v.KopiaSnapshot != "" {
			byNS[v.Namespace] = append(byNS[v.Namespace], v.KopiaSnapshot)
		}
		if v.VolumeSnapshot != "" {
			kept++
		}
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	for _, ns := range namespaces {
		n, err := deleteKopiaSnapshots(ctx, d, ns, byNS[ns])
		if err != nil {
			notes = append(notes, fmt.Sprintf("warning: Kopia snapshots of namespace %s were kept: %v", ns, err))
			continue
		}
		notes = append(notes, fmt.Sprintf("deleted %s of namespace %s (their data is freed by the next `kubectl pvbackup prune`)", plural(n, "Kopia snapshot", "Kopia snapshots"), ns))
	}
	if kept > 0 {
		notes = append(notes, deleteKept(ctx, d, m.Name))
	}
	return notes
}

func deleteKopiaSnapshots(ctx context.Context, d DeleteDataDeps, ns string, ids []string) (int, error) {
	pw, err := d.RepoPassword(ns)
	if err != nil {
		return 0, err
	}
	return mover.DeleteSnapshots(ctx, mover.Settings{Location: d.Location, Namespace: ns, Password: pw}, ids)
}

func deleteKept(ctx context.Context, d DeleteDataDeps, backup string) string {
	kube, snap, err := d.Cluster()
	if err == nil {
		var objs []Object
		if objs, err = KeptSnapshots(ctx, snap, backup); err == nil {
			if err = Delete(ctx, kube, snap, objs); err == nil {
				return fmt.Sprintf("deleted %s kept by snapshot mode", plural(len(objs), "VolumeSnapshot", "VolumeSnapshots"))
			}
		}
	}
	return fmt.Sprintf("warning: VolumeSnapshots kept by this backup were not deleted (%v): delete them with kubectl delete volumesnapshots -A -l %s,%s=true", err, Selector(backup), LabelKept)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
