//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	watchtools "k8s.io/client-go/tools/watch"
)

// namespaceGoneTimeout bounds the wait, after the last test, for the namespaces the tests deleted.
const namespaceGoneTimeout = 3 * time.Minute

// deleting holds the namespaces the finished tests deleted and did not wait for.
var deleting pendingNamespaces

type pendingNamespaces struct {
	mu    sync.Mutex
	names map[string]bool
}

func (p *pendingNamespaces) add(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.names == nil {
		p.names = map[string]bool{}
	}
	p.names[name] = true
}

func (p *pendingNamespaces) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]string, 0, len(p.names))
	for n := range p.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := waitNamespacesGone(deleting.list(), namespaceGoneTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		code = 1
	}
	os.Exit(code)
}

// waitNamespacesGone watches namespaces until none of names exists.
func waitNamespacesGone(names []string, timeout time.Duration) error {
	if len(names) == 0 {
		return nil
	}
	start := time.Now()
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		return fmt.Errorf("waiting for the tests' namespaces to be deleted: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	left := map[string]bool{}
	lw := kube.ListWatch(client.CoreV1().Namespaces(), client, kube.Labelled(map[string]string{"pvbackup.io/e2e": "true"}))
	_, err = watchtools.UntilWithSync(ctx, lw, &corev1.Namespace{}, func(store cache.Store) (bool, error) {
		for _, n := range names {
			if _, ok, _ := store.GetByKey(n); ok {
				left[n] = true
			}
		}
		return len(left) == 0, nil
	}, func(ev watch.Event) (bool, error) {
		if ns, ok := ev.Object.(*corev1.Namespace); ok && ev.Type == watch.Deleted {
			delete(left, ns.Name)
		}
		return len(left) == 0, nil
	})
	if err != nil {
		var last []string
		for n := range left {
			last = append(last, n)
		}
		sort.Strings(last)
		return fmt.Errorf("%d of the tests' %d namespaces were not deleted within %s: %s (their volumes may be stuck: kubectl get ns,pvc,volumeattachments)",
			len(last), len(names), timeout, strings.Join(last, ", "))
	}
	fmt.Fprintf(os.Stderr, "e2e: the tests' %d namespaces were gone %s after the last test\n", len(names), time.Since(start).Round(100*time.Millisecond))
	return nil
}
