// Command bench-resources measures `kubectl pvbackup create` against `kubectl get -A -o json`,
// and `kubectl pvbackup restore` against `kubectl apply --server-side` of the same objects, on a
// real kube-apiserver, in the same run: wall time and peak RSS, at 1,000, 5,000 and 10,000
// ConfigMaps of ~2 KiB across 50 namespaces. Run it with `make bench-resources`.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

func main() {
	plugin := flag.String("plugin", "bin/kubectl-pvbackup", "the plugin binary")
	kubectl := flag.String("kubectl", filepath.Join(controlplane.ToolsDir(), "kubectl"), "the kubectl binary")
	runs := flag.Int("runs", 3, "runs of each command; the median is reported")
	sizes := flag.String("sizes", "1000,5000,10000", "object counts to measure at, ascending")
	flag.Parse()
	var counts []int
	for _, f := range strings.Split(*sizes, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench-resources: bad -sizes %q\n", *sizes)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	if err := run(*plugin, *kubectl, *runs, counts); err != nil {
		fmt.Fprintln(os.Stderr, "bench-resources:", err)
		os.Exit(1)
	}
}

type sample struct {
	wall time.Duration
	rss  int64 // KiB
}

func measure(name string, args []string, env []string, stdout string) (sample, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if stdout != "" {
		f, err := os.Create(stdout)
		if err != nil {
			return sample{}, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return sample{}, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errBuf.String())
	}
	return sample{wall: time.Since(start), rss: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss}, nil
}

func median(s []sample) sample {
	// Few runs: a sort by wall time, reporting that run's wall and the highest RSS seen.
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].wall < s[i].wall {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	m := s[len(s)/2]
	for _, x := range s {
		m.rss = max(m.rss, x.rss)
	}
	return m
}

func run(plugin, kubectl string, runs int, counts []int) error {
	ctx := context.Background()
	for _, p := range []string{plugin, kubectl} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%v (run `make build` and `hack/tools.sh kube`)", err)
		}
	}
	dir, err := os.MkdirTemp("", "pvbackup-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cp, err := controlplane.Start(ctx, dir)
	if err != nil {
		return err
	}
	defer cp.Stop()
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	payload := strings.Repeat("x", 2000)
	fmt.Printf("resource backup vs kubectl get -A -o json, real kube-apiserver, median of %d runs\n", runs)
	fmt.Printf("%-8s %-10s %-10s %-7s %-10s %-10s %-7s\n", "objects", "create", "kubectl", "ratio", "create RSS", "kubectl RSS", "ratio")
	created := 0
	var rss []int64
	var restores []restoreRow
	for _, target := range counts {
		if err := populate(ctx, cs, created, target, payload); err != nil {
			return err
		}
		created = target
		var p, k []sample
		for i := 0; i < runs; i++ {
			loc := fmt.Sprintf("file://%s/loc-%d-%d", dir, target, i)
			s, err := measure(plugin, []string{"create", fmt.Sprintf("b-%d", i), "--kubeconfig", cp.Kubeconfig, "--to", loc, "--include-resources", "configmaps", "--include-namespaces", "bench-*"},
				[]string{"PVBACKUP_PASSWORD=bench-password"}, os.DevNull)
			if err != nil {
				return err
			}
			p = append(p, s)
			s, err = measure(kubectl, []string{"--kubeconfig", cp.Kubeconfig, "get", "configmaps", "-A", "-o", "json"}, nil, filepath.Join(dir, "kubectl.json"))
			if err != nil {
				return err
			}
			k = append(k, s)
		}
		mp, mk := median(p), median(k)
		rss = append(rss, mp.rss)
		fmt.Printf("%-8d %-10s %-10s %-7.2f %-10s %-10s %-7.2f\n", target, mp.wall.Round(time.Millisecond), mk.wall.Round(time.Millisecond),
			mp.wall.Seconds()/mk.wall.Seconds(), fmt.Sprintf("%d MiB", mp.rss/1024), fmt.Sprintf("%d MiB", mk.rss/1024), float64(mp.rss)/float64(mk.rss))
		restores = append(restores, restoreRow{target: target, loc: fmt.Sprintf("file://%s/loc-%d-0", dir, target)})
	}
	fmt.Printf("create time goal: ratio <= 1.5; create peak RSS at %d vs %d objects: %.2fx (goal: flat, the archive is streamed)\n", counts[len(counts)-1], counts[0], float64(rss[len(rss)-1])/float64(rss[0]))
	return benchRestore(ctx, cs, cp.Kubeconfig, plugin, kubectl, dir, runs, restores)
}

// populate creates ConfigMaps from index from to to, spread over 50 namespaces.
func populate(ctx context.Context, cs kubernetes.Interface, from, to int, payload string) error {
	for i := 0; i < 50; i++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%02d", i)}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			return err
		}
	}
	work := make(chan int)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%05d", i), Labels: map[string]string{"bench": "true"}}, Data: map[string]string{"payload": payload}}
				if _, err := cs.CoreV1().ConfigMaps(fmt.Sprintf("bench-%02d", i%50)).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return fmt.Errorf("create ConfigMaps: %w", err)
	default:
		return nil
	}
}
