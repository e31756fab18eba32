package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

func TestMain(m *testing.M) {
	SetTestCost() // TestDerivationCost measures the real one
	os.Exit(m.Run())
}

func memLocation(t *testing.T) *store.Location {
	t.Helper()
	loc := store.FromBucket(memblob.OpenBucket(nil), "mem://test")
	t.Cleanup(func() { _ = loc.Close() })
	return loc
}

// locations returns a way to open (again and again) each kind of location the tests run on.
func locations(t *testing.T) map[string]func(t *testing.T) *store.Location {
	dir := "file://" + filepath.Join(t.TempDir(), "loc")
	srv := s3server.Fake(t)
	srv.SetEnv(t)
	s3url := srv.URL("team/prod")
	open := func(url string) func(t *testing.T) *store.Location {
		return func(t *testing.T) *store.Location {
			loc, err := store.Open(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = loc.Close() })
			return loc
		}
	}
	return map[string]func(t *testing.T) *store.Location{"file": open(dir), "s3": open(s3url)}
}

func TestCreateOpen(t *testing.T) {
	ctx := context.Background()
	loc := memLocation(t)
	if _, err := Open(ctx, loc, "pw"); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open of an empty location: %v, want ErrNoKey", err)
	}
	k1, err := Create(ctx, loc, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Open(ctx, loc, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if repoPassword(t, k1, "a") != repoPassword(t, k2, "a") || archiveKey(t, k1) != archiveKey(t, k2) {
		t.Fatal("the same location gives other keys on a second open")
	}
	seen := map[string]string{}
	for _, s := range []struct{ name, v string }{
		{"repo a", repoPassword(t, k1, "a")}, {"repo b", repoPassword(t, k1, "b")}, {"repo ab", repoPassword(t, k1, "ab")},
		{"archive", archiveKey(t, k1)}, {"password", "correct horse"},
	} {
		if other, dup := seen[s.v]; dup {
			t.Errorf("%s and %s are the same secret", s.name, other)
		}
		seen[s.v] = s.name
		if s.name != "password" && len(s.v) != 43 {
			t.Errorf("%s is %d characters, want 43 (256 bits)", s.name, len(s.v))
		}
	}
	// A wrong password is an error, never a new key, for Open and Create alike.
	for name, f := range map[string]func(context.Context, *store.Location, string) (*Keyring, error){"Open": Open, "Create": Create} {
		_, err := f(ctx, loc, "wrong")
		if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "mem://test") || !strings.Contains(err.Error(), "PVBACKUP_PASSWORD") {
			t.Errorf("%s with a wrong password: %v", name, err)
		}
	}
	if k3, err := Open(ctx, loc, "correct horse"); err != nil || archiveKey(t, k3) != archiveKey(t, k1) {
		t.Fatalf("the key changed after wrong-password attempts: %v", err)
	}
}

// TestCreateRace: first uses at once, from separate processes' worth of handles, all end up
// with the one key in the bucket.
func TestCreateRace(t *testing.T) {
	for name, open := range locations(t) {
		t.Run(name, func(t *testing.T) {
			const n = 6
			got := make([]string, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				loc := open(t)
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					k, err := Create(context.Background(), loc, "pw")
					if err == nil {
						got[i] = repoPassword(t, k, "a")
					}
					errs[i] = err
				}()
			}
			close(start)
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("create %d: %v", i, errs[i])
				}
				if got[i] != got[0] {
					t.Fatalf("create %d got another key than create 0", i)
				}
			}
			k, err := Open(context.Background(), open(t), "pw")
			if err != nil || repoPassword(t, k, "a") != got[0] {
				t.Fatalf("the stored key is not the one the creates use: %v", err)
			}
		})
	}
}

// TestOldFormat: a location with backups or repositories but no key file is refused, by Open and
// Create, never given a new key.
func TestOldFormat(t *testing.T) {
	ctx := context.Background()
	for _, key := range []string{"backups/b1/backup.json", "kopia/shop/kopia.repository.f"} {
		loc := memLocation(t)
		if err := loc.Bucket().WriteAll(ctx, key, []byte("{}"), nil); err != nil {
			t.Fatal(err)
		}
		for name, f := range map[string]func(context.Context, *store.Location, string) (*Keyring, error){"Open": Open, "Create": Create} {
			if _, err := f(ctx, loc, "pw"); !errors.Is(err, ErrOldFormat) || !strings.Contains(err.Error(), "new location or prefix") {
				t.Errorf("%s with %s: %v", name, key, err)
			}
		}
		if ok, _ := loc.Bucket().Exists(ctx, KeyFile); ok {
			t.Errorf("a key was written to a location holding %s", key)
		}
	}
}

// TestHostileKeyFile: a bucket writer cannot make a command spend minutes deriving a key (in
// the Argon2id stanza, or the scrypt one of older key files), nor feed it an oversized or
// damaged key.
func TestHostileKeyFile(t *testing.T) {
	ctx := context.Background()
	good, err := wrap(make([]byte, keyLen), "pw")
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(golden.Path("keyring/location-scrypt.age"))
	if err != nil {
		t.Fatal(err)
	}
	// The header's MAC is checked only after the derivation ran: the cap must stop it before.
	tamper := func(data []byte, from, to string) []byte {
		if !bytes.Contains(data, []byte(from)) {
			t.Fatalf("no %q in the header:\n%.120s", from, data)
		}
		return bytes.Replace(data, []byte(from), []byte(to), 1)
	}
	argon := fmt.Sprintf(" %d %d %d\n", cost.Time, cost.Memory, cost.Threads)
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"argon2id 4 GiB", "above what kubectl-pvbackup writes", tamper(good, argon, " 1 4194304 1\n")},
		{"argon2id 100 passes", "above what kubectl-pvbackup writes", tamper(good, argon, " 100 64 1\n")},
		{"argon2id 16 passes of 1 GiB", "above what kubectl-pvbackup writes", tamper(good, argon, " 16 1048576 4\n")},
		{"argon2id 64 lanes", "above what kubectl-pvbackup writes", tamper(good, argon, " 1 1024 64\n")},
		{"argon2id zero passes", "invalid argon2id cost", tamper(good, argon, " 0 64 1\n")},
		{"argon2id padded number", "invalid argon2id cost", tamper(good, argon, " 01 64 1\n")},
		{"scrypt work factor 22", "work factor", tamper(old, " 10\n", " 22\n")},
		{"unknown wrapping", "which this kubectl-pvbackup does not know", tamper(good, "-> "+argon2Type+" ", "-> future-kdf ")},
		{"huge", "larger than", bytes.Repeat([]byte("x"), maxKeyFile+1)},
		{"not age", "damaged", []byte("hello")},
		{"truncated", "damaged", good[:len(good)-10]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc := memLocation(t)
			if err := loc.Bucket().WriteAll(ctx, KeyFile, tc.data, nil); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err := Create(ctx, loc, "pw")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// TestScryptKeyFile: a location made before Argon2id (its key file wrapped with age's scrypt)
// still opens, to the same keys, and a password change rewraps it with Argon2id.
func TestScryptKeyFile(t *testing.T) {
	ctx := context.Background()
	old, err := os.ReadFile(golden.Path("keyring/location-scrypt.age"))
	if err != nil {
		t.Fatal(err)
	}
	loc := memLocation(t)
	if err := loc.Bucket().WriteAll(ctx, KeyFile, old, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, loc, "wrong"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("a wrong password: %v", err)
	}
	k, err := Open(ctx, loc, "pw")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file holds the key 00 01 … 1f.
	want := &Keyring{key: make([]byte, keyLen)}
	for i := range want.key {
		want.key[i] = byte(i)
	}
	if repoPassword(t, k, "shop") != repoPassword(t, want, "shop") || archiveKey(t, k) != archiveKey(t, want) {
		t.Fatal("the scrypt key file opened to another key")
	}
	if _, err := ChangePassword(ctx, loc, "pw", "pw2", ChangeOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := loc.Bucket().ReadAll(ctx, KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("\n-> "+argon2Type+" ")) || bytes.Contains(data, []byte("-> scrypt")) {
		t.Fatalf("after the password change the key file is not wrapped with Argon2id:\n%.120s", data)
	}
	if k2, err := Open(ctx, loc, "pw2"); err != nil || archiveKey(t, k2) != archiveKey(t, want) {
		t.Fatalf("after the change: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()
	loc := memLocation(t)
	k, err := Create(ctx, loc, "old")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ChangePassword(ctx, loc, "old", "new", ChangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("change-password took %.2fs", res.Seconds)
	if _, err := Open(ctx, loc, "old"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("the old password still opens: %v", err)
	}
	kn, err := Open(ctx, loc, "new")
	if err != nil || archiveKey(t, kn) != archiveKey(t, k) || repoPassword(t, kn, "a") != repoPassword(t, k, "a") {
		t.Fatalf("the new password opens another key: %v", err)
	}
	if ok, _ := loc.Bucket().Exists(ctx, NextFile); ok {
		t.Error(NextFile + " left behind")
	}
	for _, tc := range []struct{ cur, next, want string }{
		{"new", "new", "is the current one"}, {"new", "", "empty"}, {"old", "newer", "wrong repository password"},
	} {
		if _, err := ChangePassword(ctx, loc, tc.cur, tc.next, ChangeOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("change %q → %q: %v, want %q", tc.cur, tc.next, err, tc.want)
		}
	}
}

// TestChangePasswordCrash stops the change after each step, as a crash would: every point
// opens with the old or the new password, to the same key, and running the same change again
// finishes it (the old password opens nothing after).
func TestChangePasswordCrash(t *testing.T) {
	ctx := context.Background()
	for _, stop := range []string{StepNextWritten, StepSwitched, StepCleaned} {
		t.Run(stop, func(t *testing.T) {
			loc := memLocation(t)
			k, err := Create(ctx, loc, "old")
			if err != nil {
				t.Fatal(err)
			}
			crash := errors.New("crash")
			_, err = ChangePassword(ctx, loc, "old", "new", ChangeOptions{AfterStep: func(step string) error {
				if step == stop {
					return crash
				}
				return nil
			}})
			if !errors.Is(err, crash) {
				t.Fatalf("stop after %s: %v", stop, err)
			}
			opened := 0
			for _, pw := range []string{"old", "new"} {
				if kk, err := Open(ctx, loc, pw); err == nil {
					opened++
					if archiveKey(t, kk) != archiveKey(t, k) {
						t.Fatalf("after %s, %s opens another key", stop, pw)
					}
				}
			}
			if opened == 0 {
				t.Fatalf("after %s neither password opens the location", stop)
			}
			res, err := ChangePassword(ctx, loc, "old", "new", ChangeOptions{})
			if err != nil {
				t.Fatalf("run again after %s: %v", stop, err)
			}
			if stop == StepNextWritten && !res.Resumed {
				t.Error("the rerun did not notice the unfinished change")
			}
			if _, err := Open(ctx, loc, "old"); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("after the rerun the old password still opens: %v", err)
			}
			if kk, err := Open(ctx, loc, "new"); err != nil || archiveKey(t, kk) != archiveKey(t, k) {
				t.Fatalf("after the rerun: %v", err)
			}
			if ok, _ := loc.Bucket().Exists(ctx, NextFile); ok {
				t.Error(NextFile + " left behind")
			}
		})
	}
}

// TestDerivationCost measures what each command pays for its keys (reported, not asserted
// beyond a loose bound: the machine is shared).
func TestDerivationCost(t *testing.T) {
	cost = DefaultCost
	defer SetTestCost()
	ctx := context.Background()
	loc := memLocation(t)
	start := time.Now()
	if _, err := Create(ctx, loc, "pw"); err != nil {
		t.Fatal(err)
	}
	create := time.Since(start)
	start = time.Now()
	cpu0 := cpuTime()
	k, err := Open(ctx, loc, "pw")
	if err != nil {
		t.Fatal(err)
	}
	open := time.Since(start)
	t.Logf("open used %s of CPU (the wall time below depends on the machine's load)", cpuTime()-cpu0)
	start = time.Now()
	for i := range 1000 {
		repoPassword(t, k, fmt.Sprint("ns-", i))
	}
	derive := time.Since(start) / 1000
	res, err := ChangePassword(ctx, loc, "pw", "pw2", ChangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first use (make + wrap + read back): %s; open (unwrap, %s): %s; one HKDF derivation: %s; change-password: %.2fs", create, DefaultCost, open, derive, res.Seconds)
	if open > 20*time.Second {
		t.Errorf("open took %s", open)
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A key file whose Argon2id cost is not the one this plugin writes (raised by a bucket writer,
// within MaxCost) is still opened by the password, but a wrong password is reported as what it
// may be: an unusual cost in the key file.
func TestUnusualCost(t *testing.T) {
	ctx := context.Background()
	loc := memLocation(t)
	defer func(c Cost) { cost = c }(cost)
	cost = Cost{Time: 2, Memory: 128, Threads: 1}
	k, err := Create(ctx, loc, "pw")
	if err != nil {
		t.Fatal(err)
	}
	SetTestCost()
	if got, err := Open(ctx, loc, "pw"); err != nil || archiveKey(t, got) != archiveKey(t, k) {
		t.Fatalf("open with the password: %v", err)
	}
	_, err = Open(ctx, loc, "wrong")
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "unusual key-derivation cost (Argon2id t=2 m=0 MiB p=1; this plugin writes Argon2id t=1 m=0 MiB p=1): was the key file modified?") || !strings.Contains(err.Error(), KeyFile) {
		t.Fatalf("wrong password on an unusual cost: %v", err)
	}
	// The cost this plugin writes: a wrong password is only that.
	loc2 := memLocation(t)
	if _, err := Create(ctx, loc2, "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, loc2, "wrong"); !errors.Is(err, ErrWrongPassword) || strings.Contains(err.Error(), "unusual") {
		t.Fatalf("wrong password: %v", err)
	}
}

// The first key of a location is refused on a store that ignores If-None-Match: two first
// backups at once could each make a key there.
func TestCreateRefusesAStoreWithoutConditionalWrites(t *testing.T) {
	srv := s3server.Fake(t)
	srv.SetEnv(t)
	ignoring := s3server.IgnoringConditional(t, srv)
	loc, err := store.Open(context.Background(), ignoring.URL("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	_, err = Create(context.Background(), loc, "pw")
	if !errors.Is(err, store.ErrNoConditionalWrites) || !strings.Contains(err.Error(), "make the key of s3://"+srv.Bucket) {
		t.Fatalf("Create on a store ignoring If-None-Match: %v", err)
	}
	if ok, _ := loc.Bucket().Exists(context.Background(), KeyFile); ok {
		t.Error("a key was written")
	}
}

// repoPassword and archiveKey derive k's secrets, failing the test on an error (which a key
// made by this package never gives). t.Error, not t.Fatal: tests call them from goroutines.
func repoPassword(t testing.TB, k *Keyring, ns string) string {
	t.Helper()
	pw, err := k.RepoPassword(ns)
	if err != nil {
		t.Error(err)
	}
	return pw
}

func archiveKey(t testing.TB, k *Keyring) string {
	t.Helper()
	key, err := k.ArchiveKey()
	if err != nil {
		t.Error(err)
	}
	return key
}
