package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// printEach writes, one value at a time, exactly what print writes for the whole list.
func TestPrintEachMatchesPrint(t *testing.T) {
	values := []any{
		map[string]any{"name": "a", "labels": map[string]string{"x": "y"}, "list": []int{1, 2}},
		map[string]any{"name": "b", "text": "two\nlines\n", "empty": []string{}, "nested": map[string]any{"deep": map[string]any{"k": 1}}},
		"a string",
	}
	for _, format := range []string{"json", "yaml"} {
		for _, vs := range [][]any{values, values[:1], {}} {
			o := &outputOptions{Format: format}
			var whole, each bytes.Buffer
			if err := o.print(&whole, vs); err != nil {
				t.Fatal(err)
			}
			err := o.printEach(&each, func(emit func(any) error) error {
				for _, v := range vs {
					if err := emit(v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if each.String() != whole.String() {
				t.Errorf("%s, %d values: printEach wrote\n%s\nprint wrote\n%s", format, len(vs), each.String(), whole.String())
			}
		}
	}
}

// bigManifest is a backup.json of about size bytes (a count per resource and namespace).
func bigManifest(name string, size int) *catalog.Manifest {
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, Name: name, Status: catalog.Completed, StartTime: time.Now().Add(-time.Hour)}
	for i := 0; i < size/80; i++ {
		m.Resources = append(m.Resources, catalog.Count{Resource: "example.com/v1/widgets", Namespace: fmt.Sprintf("namespace-%08d", i), Count: i})
	}
	return m
}

// peakHeap runs fn and returns the largest live heap seen while it ran: sampled every 5 ms, each
// time after a collection, so that garbage not yet collected is not counted.
func peakHeap(fn func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	return peak.Load()
}

// list holds one manifest at a time: listing eight large manifests takes about the memory of
// listing one (it held them all: eight near the 32 MiB cap took 3.0 GB).
func TestListMemoryIsFlatInTheNumberOfBackups(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and parses 72 MiB of manifests")
	}
	ctx := context.Background()
	measure := func(n int, format string) uint64 {
		dir := t.TempDir()
		l, err := store.Open(ctx, "file://"+dir)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for i := range n {
			if err := catalog.New(l).WriteManifest(ctx, bigManifest(fmt.Sprintf("big-%d", i), 8<<20)); err != nil {
				t.Fatal(err)
			}
		}
		out := &countWriter{pattern: "big-"} // what is printed is not kept
		o := &CatalogOptions{streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: io.Discard}, now: time.Now}
		o.output.Format = format
		var lerr error
		peak := peakHeap(func() { lerr = runList(ctx, o, catalog.New(l), labels.Everything()) })
		if lerr != nil {
			t.Fatal(lerr)
		}
		rows := out.n
		if format == "json" {
			rows /= 2 // the entry's name and its manifest's
		}
		if rows != n {
			t.Fatalf("listed %d backups of %d", rows, n)
		}
		return peak
	}
	for _, format := range []string{"", "json"} {
		one, six := measure(1, format), measure(8, format)
		t.Logf("list -o %q: peak live heap %d MiB for one 8 MiB manifest, %d MiB for eight", format, one>>20, six>>20)
		if float64(six) > 1.5*float64(one)+(16<<20) {
			t.Errorf("list -o %q: %d MiB for eight manifests, %d MiB for one: it grows with the number of backups", format, six>>20, one>>20)
		}
	}
}

// A backup.json without a status or a start time (no create writes one) is shown as such, not
// as a backup 106,751 days old with an empty status.
func TestListManifestWithoutStatus(t *testing.T) {
	dir := t.TempDir()
	b := []byte(`{"formatVersion": 2, "name": "odd", "namespaces": ["shop"]}`)
	if err := os.MkdirAll(filepath.Join(dir, "backups", "odd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "backups", "odd", catalog.ManifestFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "list", "--from", "file://"+dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "odd ") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{"Unknown", " 0s ", "backup.json has no status"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("list row lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "106751d") {
		t.Errorf("list shows a zero start time as an age:\n%s", out)
	}
}

// countWriter counts the writes that hold pattern, and keeps nothing.
type countWriter struct {
	pattern string
	n       int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += bytes.Count(p, []byte(w.pattern))
	return len(p), nil
}
