// Command bench-format measures, on this machine, the candidates for a new repository's format
// (Kopia's hash functions, encryption algorithms and splitters) and its compressors, on random and
// on compressible data, so that the defaults in internal/repo are chosen from figures:
//
//	go run ./hack/bench-format [-mib 64]
//
// Each figure is MB of input per CPU-second (user+system time of this process, best of -reps),
// not per wall second: on a shared, busy machine CPU time is what stays comparable; a mover runs one
// such stream per core. Compare figures only within one run. Not part of make test.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	kopiarepo "github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/encryption"
	"github.com/kopia/kopia/repo/hashing"
	"github.com/kopia/kopia/repo/object"
	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
)

func main() {
	mib := flag.Int("mib", 32, "MiB of each kind of data")
	flag.IntVar(&reps, "reps", 3, "runs of each measure; the best counts")
	flag.Parse()
	ctx := context.Background()
	random := make([]byte, *mib<<20)
	_, _ = rand.Read(random)
	data := []struct {
		name string
		b    []byte
	}{{"random", random}, {"compressible", Compressible(*mib << 20)}}
	def := repo.Config{Hash: repo.DefaultHash, Encryption: repo.DefaultEncryption, Splitter: repo.DefaultSplitter}
	for _, d := range data {
		fmt.Printf("== %s data, %d MiB (MB of input per CPU-second, best of %d; stored = bucket bytes / input)\n", d.name, *mib, reps)
		for _, h := range sorted(hashing.SupportedAlgorithms()) {
			c := def
			c.Hash = h
			run(ctx, "hash "+h, c, "", d.b)
		}
		for _, e := range sorted(encryption.SupportedAlgorithms(false)) {
			c := def
			c.Encryption = e
			run(ctx, "encryption "+e, c, "", d.b)
		}
		for _, s := range []string{"DYNAMIC-4M-BUZHASH", "DYNAMIC-4M-RABINKARP", "DYNAMIC-8M-BUZHASH", "FIXED-4M"} {
			c := def
			c.Splitter = s
			run(ctx, "splitter "+s, c, "", d.b)
		}
		for _, n := range compressors() {
			run(ctx, "compression "+n, def, compression.Name(n), d.b)
		}
	}
}

var reps int

// run measures write reps times and prints the best throughput and the stored fraction.
func run(ctx context.Context, what string, cfg repo.Config, comp compression.Name, b []byte) {
	best, stored := 0.0, 0.0
	for range reps {
		cpu, st := write(ctx, cfg, comp, b)
		best, stored = max(best, float64(len(b))/1e6/cpu), st
	}
	fmt.Printf("  %-44s %7.0f MB/cpu-s  stored %.3f\n", what, best, stored)
}

// cpuSeconds is the user and system time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// write writes b as one object into a new in-memory repository of format cfg, compressed with
// comp, and returns the CPU seconds it took and the stored fraction.
func write(ctx context.Context, cfg repo.Config, comp compression.Name, b []byte) (float64, float64) {
	runtime.GC()
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	cfg.Password, cfg.Create = "bench", true
	r, err := repo.Open(ctx, bucket, "mem", cfg)
	fail(err)
	defer r.Close(ctx)
	before := r.UploadedBytes()
	start := cpuSeconds()
	err = kopiarepo.WriteSession(ctx, r, kopiarepo.WriteSessionOptions{Purpose: "bench"}, func(ctx context.Context, w kopiarepo.RepositoryWriter) error {
		ow := w.NewObjectWriter(ctx, object.WriterOptions{Compressor: comp})
		defer ow.Close()
		for rest := b; len(rest) > 0; {
			n := min(len(rest), 1<<20)
			if _, err := ow.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		_, err := ow.Result()
		return err
	})
	fail(err)
	return cpuSeconds() - start, float64(r.UploadedBytes()-before) / float64(len(b))
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

func compressors() []string {
	var names []string
	for n, c := range compression.ByName {
		if !compression.IsDeprecated[n] && c != nil {
			names = append(names, string(n))
		}
	}
	return sorted(names)
}

// Compressible is n bytes of what a volume of an application holds: JSON log lines and plain text.
func Compressible(n int) []byte {
	r := mrand.New(mrand.NewPCG(1, 2))
	var w bytes.Buffer
	levels := []string{"info", "info", "info", "debug", "warn", "error"}
	words := strings.Fields("the request was served from the cache after the upstream answered slowly while the pool of connections was busy and the client retried")
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for w.Len() < n {
		t = t.Add(time.Duration(r.IntN(900)) * time.Millisecond)
		fmt.Fprintf(&w, `{"ts":%q,"level":%q,"msg":"%s %s %s","user":%d,"latency_ms":%d,"trace":"%016x"}`+"\n",
			t.Format(time.RFC3339Nano), levels[r.IntN(len(levels))], words[r.IntN(len(words))], words[r.IntN(len(words))],
			words[r.IntN(len(words))], r.IntN(5000), r.IntN(2000), r.Uint64())
	}
	return w.Bytes()[:n]
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
