package mover

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/object"
)

// compressorLog is a repository whose writers note the compressor each file was written with.
type compressorLog struct {
	kopiarepo.Repository
	mu   sync.Mutex
	comp map[string][]compression.Name // by file name; a big file's parts (named by UUIDs) under "parts"
}

func (l *compressorLog) NewWriter(ctx context.Context, opt kopiarepo.WriteSessionOptions) (context.Context, kopiarepo.RepositoryWriter, error) {
	ctx, w, err := l.Repository.NewWriter(ctx, opt)
	return ctx, &compressorLogWriter{RepositoryWriter: w, log: l}, err
}

type compressorLogWriter struct {
	kopiarepo.RepositoryWriter
	log *compressorLog
}

func (w *compressorLogWriter) NewObjectWriter(ctx context.Context, opt object.WriterOptions) object.Writer {
	if name, ok := strings.CutPrefix(opt.Description, "FILE:"); ok {
		if !strings.Contains(name, ".") {
			name = "parts"
		}
		w.log.mu.Lock()
		w.log.comp[name] = append(w.log.comp[name], opt.Compressor)
		w.log.mu.Unlock()
	}
	return w.RepositoryWriter.NewObjectWriter(ctx, opt)
}

// With auto (the default), a file of random data — no extension Kopia's never-compress list
// knows — is written with no compressor, so the backup does not compress it only to throw the
// result away; logs are compressed, and a big file's parts decide each for itself.
// Before the sample test, every file of 4 KiB or more was written with s2-default.
func TestAutoSkipsWhatDoesNotCompress(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	random := make([]byte, 2<<20)
	_, _ = rand.Read(random)
	logs := []byte(strings.Repeat(`{"level":"info","msg":"request served","status":200}`+"\n", 17_000)) // < 1 MiB
	files := map[string][]byte{
		"volume.bin": random[:1<<20], "app.log": logs, // one stream each
		"mixed.img": append(append([]byte(nil), random[1<<20:2<<20]...), logs...), // 1 MiB random, then logs: 2 parts
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, comp := range []string{"", repo.CompressionAuto} {
		t.Run(fmt.Sprintf("compression=%q", comp), func(t *testing.T) {
			s := fileSettings(t)
			if err := s.Repos().Ensure(ctx, s.Namespace); err != nil {
				t.Fatal(err)
			}
			r, closeFn, err := s.Repos().Open(ctx, s.Namespace)
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			log := &compressorLog{Repository: r.Repository, comp: map[string][]compression.Name{}}
			res, err := Backup(ctx, log, BackupConfig{Source: src, Namespace: "ns", PVC: "data", Compression: comp, ParallelAbove: 1 << 20}, func(Event) {})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"volume.bin": `[""]`, "app.log": `["s2-default"]`, "mixed.img": "[]", "parts": `["" "s2-default"]`}
			for name, w := range want {
				slices.Sort(log.comp[name])
				if got := fmt.Sprintf("%q", log.comp[name]); got != w {
					t.Errorf("%s written with compressors %s, want %s", name, got, w)
				}
			}
			dst := t.TempDir()
			if _, err := Restore(ctx, r, RestoreConfig{SnapshotID: res.SnapshotID, Target: dst}, func(Event) {}); err != nil {
				t.Fatal(err)
			}
			for name, data := range files {
				if got, err := os.ReadFile(filepath.Join(dst, name)); err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s restored differs (%v)", name, err)
				}
			}
		})
	}
}
