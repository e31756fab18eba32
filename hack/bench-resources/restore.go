package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// restoreRow is one size's backup, taken while that many ConfigMaps existed; the namespaces
// then hold more (the next sizes'), so each restore first deletes every bench ConfigMap.
type restoreRow struct {
	target int
	loc    string
}

// benchRestore measures, per size, `kubectl pvbackup restore` of the backup against
// `kubectl apply --server-side` of the same objects (the backup's ConfigMaps and namespaces,
// dumped by kubectl and stripped of what the server sets), each into namespaces emptied of them.
func benchRestore(ctx context.Context, cs kubernetes.Interface, kubeconfig, plugin, kubectl, dir string, runs int, rows []restoreRow) error {
	fmt.Printf("\nresource restore vs kubectl apply --server-side, the same objects, median of %d runs\n", runs)
	fmt.Printf("%-8s %-10s %-10s %-7s %-11s %-11s %-7s\n", "objects", "restore", "kubectl", "ratio", "restore RSS", "kubectl RSS", "ratio")
	// Every manifest first: the restores below leave fewer ConfigMaps than the largest size.
	manifests := make([]string, len(rows))
	for i, row := range rows {
		var err error
		if manifests[i], err = applyManifest(ctx, cs, dir, row.target); err != nil {
			return err
		}
	}
	var rss []int64
	for i, row := range rows {
		manifest := manifests[i]
		var p, k []sample
		for i := 0; i < runs; i++ {
			if err := emptyNamespaces(ctx, cs); err != nil {
				return err
			}
			s, err := measure(plugin, []string{"restore", "b-0", "--kubeconfig", kubeconfig, "--from", row.loc, "-l", "bench=true"},
				[]string{"PVBACKUP_PASSWORD=bench-password"}, os.DevNull)
			if err != nil {
				return err
			}
			if err := countBench(ctx, cs, row.target); err != nil {
				return fmt.Errorf("after restore: %w", err)
			}
			p = append(p, s)
			if err := emptyNamespaces(ctx, cs); err != nil {
				return err
			}
			s, err = measure(kubectl, []string{"--kubeconfig", kubeconfig, "apply", "--server-side", "-f", manifest}, nil, os.DevNull)
			if err != nil {
				return err
			}
			if err := countBench(ctx, cs, row.target); err != nil {
				return fmt.Errorf("after kubectl apply: %w", err)
			}
			k = append(k, s)
		}
		mp, mk := median(p), median(k)
		rss = append(rss, mp.rss)
		fmt.Printf("%-8d %-10s %-10s %-7.2f %-11s %-11s %-7.2f\n", row.target, mp.wall.Round(time.Millisecond), mk.wall.Round(time.Millisecond),
			mp.wall.Seconds()/mk.wall.Seconds(), fmt.Sprintf("%d MiB", mp.rss/1024), fmt.Sprintf("%d MiB", mk.rss/1024), float64(mp.rss)/float64(mk.rss))
	}
	if len(rss) > 0 {
		fmt.Printf("restore time goal: ratio <= 1.0; restore peak RSS at %d vs %d objects: %.2fx\n", rows[len(rows)-1].target, rows[0].target, float64(rss[len(rss)-1])/float64(rss[0]))
	}
	return nil
}

// applyManifest writes the first n bench ConfigMaps and the 50 namespaces as one List for
// kubectl apply, without the fields the server sets (apply refuses a resourceVersion on create).
func applyManifest(ctx context.Context, cs kubernetes.Interface, dir string, n int) (string, error) {
	var items []map[string]any
	for i := 0; i < 50; i++ {
		items = append(items, map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": fmt.Sprintf("bench-%02d", i)}})
	}
	for i := 0; i < 50; i++ {
		list, err := cs.CoreV1().ConfigMaps(fmt.Sprintf("bench-%02d", i)).List(ctx, metav1.ListOptions{LabelSelector: "bench=true"})
		if err != nil {
			return "", err
		}
		for _, cm := range list.Items {
			var idx int
			if _, err := fmt.Sscanf(cm.Name, "cm-%05d", &idx); err != nil || idx >= n {
				continue
			}
			items = append(items, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": cm.Name, "namespace": cm.Namespace, "labels": cm.Labels}, "data": cm.Data})
		}
	}
	if len(items) != n+50 {
		return "", fmt.Errorf("apply manifest: %d objects, want %d", len(items), n+50)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("apply-%d.json", n))
	return path, os.WriteFile(path, b, 0o600)
}

// emptyNamespaces deletes every bench ConfigMap (the namespaces stay: both tools find them).
func emptyNamespaces(ctx context.Context, cs kubernetes.Interface) error {
	for i := 0; i < 50; i++ {
		if err := cs.CoreV1().ConfigMaps(fmt.Sprintf("bench-%02d", i)).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "bench=true"}); err != nil {
			return err
		}
	}
	return countBench(ctx, cs, 0)
}

func countBench(ctx context.Context, cs kubernetes.Interface, want int) error {
	n := 0
	for i := 0; i < 50; i++ {
		list, err := cs.CoreV1().ConfigMaps(fmt.Sprintf("bench-%02d", i)).List(ctx, metav1.ListOptions{LabelSelector: "bench=true"})
		if err != nil {
			return err
		}
		n += len(list.Items)
	}
	if n != want {
		return fmt.Errorf("%d bench ConfigMaps, want %d", n, want)
	}
	return nil
}
