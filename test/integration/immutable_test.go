//go:build integration

package integration

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/immutable"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

const lockPeriod = 72 * time.Hour

// TestImmutableLocation makes a location immutable on SeaweedFS (a bucket created with Object
// Lock), backs up resources and a volume, and checks every object is locked; delete and prune
// refuse the backups; full maintenance extends the volume data's locks. Then, with the
// location's own credentials and the plain S3 API, an attacker overwrites objects, tries to
// delete every locked version (refused) and deletes every object (delete markers): the backups
// are gone from list, and `repo recover` brings them back, restorable with every checksum equal.
func TestImmutableLocation(t *testing.T) {
	srv := s3server.SeaweedFSLocked(t)
	srv.SetEnv(t)
	url := srv.URL("locked")
	t.Setenv("PVBACKUP_PASSWORD", "immutable")
	t.Setenv("PVBACKUP_LOCATION", url)

	refusals(t, srv)
	if r := run(t, "repo", "init", "--immutable-for", "3d"); r.code != 0 || !strings.Contains(r.out, "is immutable") {
		t.Fatalf("repo init: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "repo", "init", "--immutable-for", "3d"); r.code == 0 || !strings.Contains(r.err, "already holds") {
		t.Fatalf("repo init of a location that holds objects: exit %d\n%s%s", r.code, r.out, r.err)
	}
	ns := "immutable-src"
	createNamespace(t, ns, "one", "two")
	if r := run(t, "create", "res-1", "-n", ns); r.code != 0 {
		t.Fatalf("create: exit %d\n%s%s", r.code, r.out, r.err)
	}
	src := writeTree(t, 30)
	volumeBackup(t, url, "immutable", ns, "vol-1", src, time.Now().Add(time.Second))
	wantLocked(t, srv, "locked/", time.Now().Add(lockPeriod-time.Hour))

	if r := run(t, "describe", "vol-1"); r.code != 0 || !strings.Contains(r.out, "Locked:       until ") {
		t.Fatalf("describe: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "delete", "vol-1", "--force"); r.code == 0 || !strings.Contains(r.err, `backup ["vol-1" until `) || !strings.Contains(r.err, "nothing was deleted") {
		t.Fatalf("delete of a locked backup: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "prune", "--keep-last", "1"); r.code != 0 || !strings.Contains(r.out, "locked until") || !strings.Contains(r.err, "0 removed") && strings.Contains(r.err, "remove") {
		t.Fatalf("prune of locked backups: exit %d\n%s%s", r.code, r.out, r.err)
	}
	expiryAllowsDelete(t, url)
	maintenanceExtends(t, srv)
	if r := run(t, "repo", "status"); r.code != 0 || !strings.Contains(r.out, "Immutable: every object is locked (COMPLIANCE) for 72h0m0s") || strings.Contains(r.out, "warning") {
		t.Fatalf("repo status: exit %d\n%s%s", r.code, r.out, r.err)
	}

	asOf := time.Now().UTC().Truncate(time.Second)
	time.Sleep(time.Until(asOf.Add(1100 * time.Millisecond))) // S3 times have whole seconds: the attack starts in the next one
	attack(t, srv, "locked/")
	if r := run(t, "list"); r.code != 0 || strings.Contains(r.out, "vol-1") || strings.Contains(r.out, "res-1") {
		t.Fatalf("list after every object was deleted: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "repo", "recover", "--as-of", asOf.Format(time.RFC3339)); r.code != 0 || !strings.Contains(r.out, "were brought back") {
		t.Fatalf("repo recover: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, "verify", "vol-1", "res-1", "--read-data", "100"); r.code != 0 {
		t.Fatalf("verify after recovery: exit %d\n%s%s", r.code, r.out, r.err)
	}
	dst := filepath.Join(t.TempDir(), "restored")
	if r := run(t, "cp", "vol-1", ns+"/data", dst); r.code != 0 {
		t.Fatalf("cp after recovery: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if want, got := treeSums(t, src), treeSums(t, dst); !maps.Equal(want, got) {
		t.Fatalf("after recovery cp brought back %d files whose checksums differ from the %d backed up", len(got), len(want))
	}
	if r := run(t, "restore", "res-1", "--namespace-mapping", ns+":immutable-dst"); r.code != 0 {
		t.Fatalf("restore after recovery: exit %d\n%s%s", r.code, r.out, r.err)
	}
	wantLocked(t, srv, "locked/", time.Now().Add(lockPeriod-time.Hour)) // what came back is locked again
	passwordChangeLocked(t, srv)
}

// passwordChangeLocked: the key file that repo change-password rewrites is locked too (an
// unlocked current version could be deleted for good, leaving only older versions' passwords).
func passwordChangeLocked(t *testing.T, srv *s3server.Server) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "new")
	if err := os.WriteFile(pw, []byte("immutable-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if r := run(t, "repo", "change-password", "--new-password-file", pw); r.code != 0 {
		t.Fatalf("repo change-password: exit %d\n%s%s", r.code, r.out, r.err)
	}
	h, err := s3server.Client(srv).HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("locked/" + keyring.KeyFile)})
	if err != nil {
		t.Fatal(err)
	}
	if h.LastModified == nil || h.LastModified.Before(start.Add(-time.Second)) || h.ObjectLockMode != store.Compliance || h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(time.Now().Add(lockPeriod-time.Hour)) {
		t.Fatalf("%s after change-password: written %v, lock %q until %v; want rewritten and COMPLIANCE until after %v", keyring.KeyFile, h.LastModified, h.ObjectLockMode, h.ObjectLockRetainUntilDate, time.Now().Add(lockPeriod-time.Hour))
	}
}

// refusals: a location that cannot lock is refused with the reason, and so is a lock shorter
// than full maintenance can keep up.
func refusals(t *testing.T, srv *s3server.Server) {
	plain := *srv
	plain.Bucket = srv.Bucket + "-plain"
	if _, err := s3server.Client(&plain).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(plain.Bucket)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ url, period, want string }{
		{"file://" + t.TempDir(), "3d", "a directory (or memory) of this machine"},
		{plain.URL("plain"), "3d", "has no Object Lock"},
		{srv.URL("short"), "1d", "shorter than 48h0m0s"},
	} {
		if r := run(t, "repo", "init", "--to", tc.url, "--immutable-for", tc.period); r.code == 0 || !strings.Contains(r.err, tc.want) {
			t.Errorf("repo init --to %s --immutable-for %s: exit %d, want %q\n%s%s", tc.url, tc.period, r.code, tc.want, r.out, r.err)
		}
	}
}

// wantLocked checks that the current version of every object under prefix is locked until after min.
func wantLocked(t *testing.T, srv *s3server.Server, prefix string, min time.Time) {
	t.Helper()
	c := s3server.Client(srv)
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			if strings.Contains(aws.ToString(o.Key), ".pvbackup-lease") {
				continue // the maintenance lease is taken and given back: never locked
			}
			h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			n++
			if h.ObjectLockMode != store.Compliance || h.ObjectLockRetainUntilDate == nil || h.ObjectLockRetainUntilDate.Before(min) {
				t.Errorf("%s: lock %q until %v; want COMPLIANCE until after %v", aws.ToString(o.Key), h.ObjectLockMode, h.ObjectLockRetainUntilDate, min)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d objects under %s", n, prefix)
	}
	t.Logf("%d objects under %s, each locked until after %s", n, prefix, min.Format(time.RFC3339))
}

// expiryAllowsDelete: once a backup's files unlock, nothing refuses its deletion any more.
func expiryAllowsDelete(t *testing.T, url string) {
	ctx := context.Background()
	loc, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	cat := catalog.New(loc)
	until, err := immutable.LockedUntil(ctx, cat, "vol-1")
	if err != nil || until.Before(time.Now().Add(lockPeriod-time.Hour)) {
		t.Fatalf("vol-1 locked until %v, %v", until, err)
	}
	if err := immutable.RefuseLocked(ctx, cat, until.Add(-time.Second), "vol-1"); !errors.Is(err, immutable.ErrLocked) {
		t.Errorf("a second before it unlocks: %v; want ErrLocked", err)
	}
	if err := immutable.RefuseLocked(ctx, cat, until.Add(time.Second), "vol-1", "res-1"); err != nil {
		t.Errorf("once unlocked: %v; want deletable", err)
	}
}

// retainUntil maps every current object under prefix to when it unlocks.
func retainUntil(t *testing.T, srv *s3server.Server, prefix string) map[string]time.Time {
	t.Helper()
	c := s3server.Client(srv)
	out := map[string]time.Time{}
	for _, key := range currentKeys(t, srv, prefix) {
		h, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		out[key] = aws.ToTime(h.ObjectLockRetainUntilDate)
	}
	return out
}

func currentKeys(t *testing.T, srv *s3server.Server, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s3server.Client(srv), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// maintenanceExtends: full maintenance moves the lock of the volume data still in use later
// (Kopia's extend-blob-retention-time, on the adapter's S3 retention).
func maintenanceExtends(t *testing.T, srv *s3server.Server) {
	prefix := "locked/kopia/immutable-src/p"
	before := retainUntil(t, srv, prefix)
	if len(before) == 0 {
		t.Fatalf("no pack blobs under %s", prefix)
	}
	time.Sleep(1100 * time.Millisecond) // the store keeps lock dates to the second: extended means a later second
	if r := run(t, "repo", "maintain", "--full"); r.code != 0 {
		t.Fatalf("repo maintain --full: exit %d\n%s%s", r.code, r.out, r.err)
	}
	after := retainUntil(t, srv, prefix)
	for k, b := range before {
		if a, ok := after[k]; ok && !a.After(b) {
			t.Errorf("%s: locked until %v after full maintenance, %v before; want it extended", k, a, b)
		}
	}
}

// attack does, with the location's own credentials and the plain S3 API, what ransomware would:
// overwrite objects, delete every version it can (the locked ones must be refused), then delete
// every object (delete markers).
func attack(t *testing.T, srv *s3server.Server, prefix string) {
	ctx := context.Background()
	c := s3server.Client(srv)
	keys := currentKeys(t, srv, prefix)
	mine := map[string]bool{} // versions the attacker wrote: not locked, deletable
	for _, k := range keys {
		if !strings.HasSuffix(k, "/"+catalog.ManifestFile) && !strings.HasSuffix(k, "location.age") && !strings.Contains(k, "/kopia/immutable-src/p") {
			continue
		}
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(k), Body: strings.NewReader("encrypted by ransomware")})
		if err != nil {
			t.Fatalf("overwrite %s: %v", k, err)
		}
		mine[aws.ToString(out.VersionId)] = true
	}
	refused := 0
	p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: v.Key, VersionId: v.VersionId})
			switch {
			case mine[aws.ToString(v.VersionId)] || strings.Contains(aws.ToString(v.Key), ".pvbackup-"):
			case err == nil:
				t.Errorf("the locked version %s of %s was deleted", aws.ToString(v.VersionId), aws.ToString(v.Key))
			default:
				refused++
			}
		}
	}
	for _, k := range currentKeys(t, srv, prefix) {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(k)}); err != nil {
			t.Fatalf("delete %s: %v", k, err)
		}
	}
	if left := currentKeys(t, srv, prefix); len(left) != 0 || refused < 20 {
		t.Fatalf("after the attack: %d objects visible, %d versioned deletes refused", len(left), refused)
	}
	t.Logf("attack: %d objects overwritten, %d versioned deletes refused, %d objects deleted (delete markers)", len(mine), refused, len(keys))
}
