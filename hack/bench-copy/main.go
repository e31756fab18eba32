// Command bench-copy measures `kubectl pvbackup copy` (package copier) from SeaweedFS (s3://) to
// fake-gcs-server (gs://): the first copy of a backup of a generated tree, then the copy of the
// next, incremental backup (a fraction of the files rewritten), whose bytes moved it compares with
// the bytes that backup's creation uploaded (its volume data and its files). `make bench-copy`.
//
//	go run ./hack/bench-copy --weed .local/bin/weed --fake-gcs .local/bin/fake-gcs-server
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/copier"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/stores"
)

const password = "bench-password-not-secret"

func main() {
	weed := flag.String("weed", ".local/bin/weed", "SeaweedFS binary (hack/tools.sh seaweedfs)")
	gcs := flag.String("fake-gcs", ".local/bin/fake-gcs-server", "fake-gcs-server binary (hack/tools.sh fakegcs)")
	work := flag.String("work", ".local/bench-copy", "work directory (emptied)")
	files := flag.Int("files", 400, "files in the tree")
	size := flag.Int("size", 512<<10, "bytes per file")
	changed := flag.Float64("changed", 0.05, "fraction of the files rewritten before the incremental backup")
	flag.Parse()
	if err := run(*weed, *gcs, *work, *files, *size, *changed); err != nil {
		fmt.Fprintln(os.Stderr, "bench-copy:", err)
		os.Exit(1)
	}
}

func run(weed, gcs, work string, files, size int, changed float64) error {
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(work, "weed"), 0o700); err != nil {
		return err
	}
	s3, stopS3, err := s3server.StartSeaweedFS(weed, filepath.Join(work, "weed"))
	if err != nil {
		return err
	}
	defer stopS3()
	g, stopGCS, err := stores.StartGCS(gcs, work, "127.0.0.1")
	if err != nil {
		return err
	}
	defer stopGCS()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": s3.AccessKey, "AWS_SECRET_ACCESS_KEY": s3.SecretKey, "AWS_REGION": "us-east-1",
		"AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true"} {
		os.Setenv(k, v)
	}
	ctx := context.Background()
	fromURL, toURL := s3.URL("first"), g.URL("second")
	tree := &tree{dir: filepath.Join(work, "tree"), size: size, rng: rand.New(rand.NewPCG(1, 2))}
	if err := tree.make(files); err != nil {
		return err
	}
	fmt.Printf("tree: %d files of %d KiB; first location %s, second %s\n", files, size>>10, "SeaweedFS (s3://)", "fake-gcs-server (gs://)")
	if _, err := backup(ctx, fromURL, tree.dir, "b1", work); err != nil {
		return err
	}
	first, err := copyAll(ctx, fromURL, toURL)
	if err != nil {
		return err
	}
	fmt.Printf("first copy:       %s in %.2fs\n", mib(first.Bytes), first.Seconds)
	if err := tree.change(changed); err != nil {
		return err
	}
	created, err := backup(ctx, fromURL, tree.dir, "b2", work)
	if err != nil {
		return err
	}
	inc, err := copyAll(ctx, fromURL, toURL)
	if err != nil {
		return err
	}
	ratio := float64(inc.Bytes) / float64(created)
	fmt.Printf("incremental copy: %s in %.2fs; its backup's creation uploaded %s: ratio %.3f (want <= 1.2)\n", mib(inc.Bytes), inc.Seconds, mib(created), ratio)
	if ratio > 1.2 {
		return fmt.Errorf("the incremental copy moved %.3fx what the backup's creation uploaded", ratio)
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n) }

func copyAll(ctx context.Context, fromURL, toURL string) (*copier.Result, error) {
	from, err := store.Open(ctx, fromURL)
	if err != nil {
		return nil, err
	}
	defer from.Close()
	to, err := store.Open(ctx, toURL)
	if err != nil {
		return nil, err
	}
	defer to.Close()
	return copier.Run(ctx, copier.Deps{From: from, To: to, Password: password}, copier.Config{All: true})
}

// backup records a backup of dir in namespace bench as create does (the mover in process), and
// returns what its creation uploaded: its volume data and its files.
func backup(ctx context.Context, url, dir, name, work string) (int64, error) {
	loc, err := store.Open(ctx, url)
	if err != nil {
		return 0, err
	}
	defer loc.Close()
	kr, err := keyring.Create(ctx, loc, password)
	if err != nil {
		return 0, err
	}
	repoPW, err := kr.RepoPassword("bench")
	if err != nil {
		return 0, err
	}
	archiveKey, err := kr.ArchiveKey()
	if err != nil {
		return 0, err
	}
	set := mover.Settings{Location: url, Namespace: "bench", Password: repoPW, CacheDir: work}
	if err := set.Repos().Ensure(ctx, set.Namespace); err != nil {
		return 0, err
	}
	res, err := mover.RunBackup(ctx, set, mover.BackupConfig{Source: dir, PVC: "data", Backup: name}, func(mover.Event) {})
	if err != nil {
		return 0, err
	}
	cat := catalog.New(loc)
	aw, _ := cat.NewWriter(ctx, name, catalog.ResourcesFile, "")
	ar, err := archive.NewWriter(aw, archiveKey)
	if err == nil {
		err = ar.Close()
	}
	if cerr := aw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	now := time.Now().UTC()
	m := &catalog.Manifest{FormatVersion: catalog.FormatVersion, KeyScheme: keyring.Scheme, Name: name, Status: catalog.Completed,
		Namespaces: []string{"bench"}, StartTime: now, CompletionTime: now, Archive: catalog.ArchiveRef{File: catalog.ResourcesFile, Encrypted: "age-scrypt"},
		Volumes: []catalog.Volume{{Namespace: "bench", PVC: "data", Mode: "fs", Status: catalog.VolumeCompleted, KopiaSnapshot: res.SnapshotID, UploadedBytes: res.UploadedBytes}}}
	if err := cat.WriteManifest(ctx, m); err != nil {
		return 0, err
	}
	files, err := filesSize(ctx, loc.Bucket(), name)
	return res.UploadedBytes + files, err
}

func filesSize(ctx context.Context, b *blob.Bucket, name string) (int64, error) {
	var n int64
	it := b.List(&blob.ListOptions{Prefix: catalog.Key(name, "")})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
		n += obj.Size
	}
}

type tree struct {
	dir   string
	size  int
	rng   *rand.Rand
	files []string
}

func (t *tree) make(n int) error {
	for i := range n {
		p := filepath.Join(t.dir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%05d.bin", i))
		t.files = append(t.files, p)
		if err := t.write(p); err != nil {
			return err
		}
	}
	return nil
}

func (t *tree) write(p string) error {
	data := make([]byte, t.size)
	for i := 0; i+8 <= len(data); i += 8 {
		v := t.rng.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

func (t *tree) change(fraction float64) error {
	for _, i := range t.rng.Perm(len(t.files))[:int(fraction*float64(len(t.files)))] {
		if err := t.write(t.files[i]); err != nil {
			return err
		}
	}
	return nil
}
