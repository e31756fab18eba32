package keyring

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/mover"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/volumes"
)

// TestMoverSecretOpensOnlyItsNamespace builds the mover Secrets the plugin creates, with the real
// spec and real Kopia repositories, and tries every value in them against another namespace's
// repository, the resources archive and the location key. Before the location key, the Secret
// held the user's password, which opened all three.
func TestMoverSecretOpensOnlyItsNamespace(t *testing.T) {
	ctx := context.Background()
	url := "file://" + filepath.Join(t.TempDir(), "loc")
	loc, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	const userPassword = "the user's password"
	kr, err := Create(ctx, loc, userPassword)
	if err != nil {
		t.Fatal(err)
	}
	// The repositories, made as `create` makes them (plugin side, before the movers start).
	settings := func(ns, pw string) mover.Settings {
		return mover.Settings{Location: url, Namespace: ns, Password: pw, CacheDir: t.TempDir()}
	}
	for _, ns := range []string{"a", "b"} {
		if err := settings(ns, repoPassword(t, kr, ns)).Repos().Ensure(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	// An archive, as `create` writes it.
	var arch bytes.Buffer
	aw, err := archive.NewWriter(&arch, archiveKey(t, kr))
	if err != nil {
		t.Fatal(err)
	}
	if err := aw.Add(archive.Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, Namespace: "b", Name: "db"}, []byte(`{"data":{"password":"x"}}`)); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	opens := func(ns, pw string) error {
		_, closeFn, err := settings(ns, pw).Repos().Open(ctx, ns)
		if err == nil {
			closeFn()
		}
		return err
	}
	mc := &volumes.MoverConfig{Image: "i", Location: url, RepoPassword: kr.RepoPassword,
		Env: map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk"}}
	for _, task := range []volumes.Task{
		{Backup: "b1", Op: "backup", Namespace: "a", SourceNamespace: "a", PVC: "data"},
		{Backup: "b1", Op: "restore", Namespace: "a-copy", SourceNamespace: "a", PVC: "data"}, // --namespace-mapping a:a-copy
	} {
		s, err := task.SecretSpec(mc)
		if err != nil {
			t.Fatal(err)
		}
		if err := opens("a", string(s.Data["PVBACKUP_PASSWORD"])); err != nil {
			t.Fatalf("%s mover Secret in %s does not open a's repository: %v", task.Op, task.Namespace, err)
		}
		for k, v := range s.Data {
			if err := opens("b", string(v)); !errors.Is(err, repo.ErrWrongPassword) {
				t.Errorf("%s Secret %s/%s key %s: opening b's repository gave %v, want a wrong password", task.Op, task.Namespace, s.Name, k, err)
			}
			if _, err := archive.NewReader(bytes.NewReader(arch.Bytes()), string(v)); !errors.Is(err, archive.ErrWrongPassword) {
				t.Errorf("%s Secret %s/%s key %s: the archive gave %v, want a wrong password", task.Op, task.Namespace, s.Name, k, err)
			}
			if _, err := Open(ctx, loc, string(v)); !errors.Is(err, ErrWrongPassword) {
				t.Errorf("%s Secret %s/%s key %s unwraps the location key: %v", task.Op, task.Namespace, s.Name, k, err)
			}
			for _, secret := range []string{userPassword, archiveKey(t, kr), repoPassword(t, kr, "b"), string(kr.key)} {
				if bytes.Contains(v, []byte(secret)) {
					t.Errorf("%s Secret key %s holds a secret of the location", task.Op, k)
				}
			}
		}
	}
	// The plugin side, by contrast, opens everything from the password.
	if err := opens("b", repoPassword(t, kr, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.NewReader(bytes.NewReader(arch.Bytes()), archiveKey(t, kr)); err != nil {
		t.Fatal(err)
	}
}
