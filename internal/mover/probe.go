package mover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// OpProbe is doctor's live probe: write (or read back) a file in the mounted volume, and reach
// the backup location from inside the cluster.
const OpProbe = "probe"

// ProbeFile is the file the probe writes at the volume's root.
const ProbeFile = ".pvbackup-probe"

// ProbeConfig says what the probe does.
type ProbeConfig struct {
	Target string // the mounted volume
	Token  string // content written, or expected when Verify
	Verify bool   // read the file back (a volume restored from a snapshot) instead of writing it
}

// RunProbe runs the probe and reports its Result like backup and restore do. It needs no
// repository key: it opens no repository, and writes its marker (store.CheckWritable) below the
// repository prefix of s.Namespace.
func RunProbe(ctx context.Context, s Settings, cfg ProbeConfig, sink Sink) (*Result, error) {
	start := time.Now()
	res := &Result{Op: OpProbe}
	err := probe(ctx, s, cfg)
	res.DurationSeconds = time.Since(start).Seconds()
	return finish(sink, res, err)
}

func probe(ctx context.Context, s Settings, cfg ProbeConfig) error {
	if cfg.Target == "" || cfg.Token == "" {
		return errors.New("probe needs a target directory and a token")
	}
	path := filepath.Join(cfg.Target, ProbeFile)
	if cfg.Verify {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read back %s from the volume restored from the snapshot: %w", ProbeFile, err)
		}
		if got := strings.TrimSpace(string(b)); got != cfg.Token {
			return fmt.Errorf("the volume restored from the snapshot holds %q in %s, want %q: the snapshot did not keep the data", got, ProbeFile, cfg.Token)
		}
	} else if err := writeSynced(path, cfg.Token+"\n"); err != nil {
		return fmt.Errorf("write %s into the volume: %w", ProbeFile, err)
	}
	if s.Location == "" {
		return nil
	}
	// Reached as a mover reaches it: at the namespace's repository prefix and nowhere else, so a
	// bucket policy that limits movers to <prefix>/kopia/<ns>/ passes the probe as it passes them.
	prefix, err := repo.NamespacePrefix(s.Namespace)
	if err != nil {
		return err
	}
	loc, err := store.Open(ctx, store.WithPrefix(s.Location, prefix))
	if err != nil {
		return fmt.Errorf("from inside the cluster: %w", err)
	}
	defer loc.Close()
	if err := store.CheckWritable(ctx, loc); err != nil {
		return fmt.Errorf("from inside the cluster: %w", err)
	}
	return nil
}

func writeSynced(path, content string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
