package volumes

import (
	"context"
	"errors"
	"strings"
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

// A restore mover refused the volume's files ("permission denied": root's files, the mover runs
// as 65532) says what to rerun with; a privileged mover's error is left as it is.
func TestRestorePermissionDeniedHint(t *testing.T) {
	for _, privileged := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s := newSim(t, boundClaim("data", "pv1"), csiPV("pv1", "dir.csi"))
		s.moverError = "restore into /data: open /data/pg_hba.conf: permission denied"
		s.run(ctx)
		cfg := testConfig(ModeFS)
		cfg.Mover.Privileged = privileged
		items := []RestoreItem{{Namespace: "app", SourceNamespace: "app", PVC: "data", KopiaSnapshot: "k1", Sync: true}}
		out, err := Restore(ctx, Deps{Kube: s.kube, Snap: snapFake{s.snap}, Discovery: s.kube.Discovery()}, cfg, items)
		cancel()
		if err != nil || out[0].Err == nil {
			t.Fatalf("privileged %v: %v %v", privileged, err, out[0].Err)
		}
		msg := out[0].Err.Error()
		hinted := strings.Contains(msg, "the mover runs as user 65532") && strings.Contains(msg, "rerun with --mover-privileged") && strings.Contains(msg, "--mover-run-as")
		if !strings.Contains(msg, "open /data/pg_hba.conf: permission denied") || hinted == privileged {
			t.Errorf("privileged %v: %s", privileged, msg)
		}
	}
}

func TestPermissionHint(t *testing.T) {
	uid := int64(1000)
	err := permissionHint(errors.New("mover pod app/m failed: open /data/x: permission denied"), &MoverConfig{RunAsUser: &uid})
	if want := "mover pod app/m failed: open /data/x: permission denied (the mover runs as user 1000, and the volume holds files it may not write: rerun with --mover-privileged to write them as root, owners restored, or with --mover-run-as UID of the files' owner)"; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	if permissionHint(nil, &MoverConfig{}) != nil || permissionHint(errors.New("no space left on device"), &MoverConfig{}).Error() != "no space left on device" {
		t.Error("hint where none applies")
	}
}
