package volumes

import (
	"context"
	"sync"
	"testing"
	"time"
)

// phases records the phases a run starts.
type phases struct {
	mu   sync.Mutex
	seen []string
}

func (p *phases) Start(phase string) func(string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, phase)
	return func(string, error) {}
}

func (p *phases) Warn(string) {}

// A dry run's mover only compares: its line says what would be filled, not that it was.
func TestRestoreDryRunSaysWould(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"))
	s.run(ctx)
	rec := &phases{}
	items := []RestoreItem{{Namespace: "app", SourceNamespace: "app", PVC: "data", KopiaSnapshot: "k1", Sync: true, DiffOnly: true}}
	out, err := Restore(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery(), Progress: rec}, testConfig(ModeFS), items)
	if err != nil || out[0].Err != nil {
		t.Fatalf("%v %v", err, out[0].Err)
	}
	want := "would fill volume app/data from snapshot k1 (dry run: compared, nothing written)"
	if len(rec.seen) != 1 || rec.seen[0] != want {
		t.Errorf("phases %q, want %q", rec.seen, want)
	}
}
