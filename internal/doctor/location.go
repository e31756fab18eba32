package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/password"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// maxRepositories bounds how many existing repositories are opened (each open derives Kopia's
// key from the namespace's key: a fraction of a second).
const maxRepositories = 20

// Check names of the location step.
const (
	checkLocationName = "location"
	checkWritable     = "location writable"
	checkConditional  = "conditional writes"
	checkKey          = "location key"
	checkRepos        = "repositories"
)

func checkLocation(ctx context.Context, d *Deps, cfg *Config) []Result {
	if cfg.Location == "" {
		return []Result{warn(checkLocationName, "no backup location given: not checked", "pass --location URL or set "+store.EnvLocation)}
	}
	display := store.Redact(cfg.Location)
	loc, err := d.OpenLocation(ctx, cfg.Location)
	if err != nil {
		return []Result{fail(checkLocationName, err.Error(), "check the URL, the endpoint and the credentials ($AWS_ACCESS_KEY_ID, ...)")}
	}
	defer loc.Close()
	out := []Result{ok(checkLocationName, display+" is reachable")}
	if err := store.CheckWritable(ctx, loc); err != nil {
		out = append(out, fail(checkWritable, err.Error(), "give the credentials write and delete rights on the bucket"))
	} else {
		out = append(out, ok(checkWritable, "a marker was written and deleted"))
		if err := store.CheckConditional(ctx, loc); err != nil {
			out = append(out, fail(checkConditional, err.Error(), "use a store that supports conditional writes (AWS S3, GCS, Azure, MinIO, SeaweedFS) or file://"))
		} else {
			out = append(out, ok(checkConditional, "the store refuses a write over an existing object (If-None-Match) and a replace of a changed one (If-Match)"))
		}
	}
	return append(out, checkKeys(ctx, d, cfg, loc)...)
}

// checkKeys unwraps the location's key with the password (Deps.Keys) and opens the existing
// repositories of the namespaces in scope with their derived keys, as movers will.
func checkKeys(ctx context.Context, d *Deps, cfg *Config, loc *store.Location) []Result {
	if d.Keys == nil {
		return nil
	}
	repoKey, err := d.Keys(ctx, loc)
	var out []Result
	if errors.Is(err, keyring.ErrDamaged) && repoKey != nil {
		out = append(out, fail(checkKey, err.Error(), "put it back with `kubectl pvbackup repo import-key FILE` (your export); the next `create` writes a missing one back from the copy"))
		err = nil
	}
	switch {
	case errors.Is(err, password.ErrMissing):
		return []Result{warn(checkKey, "no password given: the location's key and repositories were not opened", "set PVBACKUP_PASSWORD or pass --password-file")}
	case errors.Is(err, keyring.ErrNoKey):
		return []Result{ok(checkKey, fmt.Sprintf("no %s yet: the first backup makes the key, wrapped by the password it is given", keyring.KeyFile))}
	case errors.Is(err, keyring.ErrWrongPassword):
		return []Result{fail(checkKey, err.Error(), "use the password the location was created with (PVBACKUP_PASSWORD or --password-file), or another location")}
	case errors.Is(err, keyring.ErrOldFormat):
		return []Result{fail(checkKey, err.Error(), "back up to a new location or prefix")}
	case errors.Is(err, keyring.ErrKeyDeleted):
		return []Result{fail(checkKey, err.Error(), "kubectl pvbackup repo import-key FILE (your export)")}
	case err != nil:
		return []Result{fail(checkKey, err.Error(), "")}
	}
	cfg.repoKey = repoKey
	if len(out) == 0 {
		out = append(out, ok(checkKey, "the password unwraps "+keyring.KeyFile))
	}
	if d.OpenRepository == nil {
		return out
	}
	return append(out, checkRepositories(ctx, d, cfg, loc, repoKey))
}

// repositories lists the namespaces that have a repository in the location.
func repositories(ctx context.Context, loc *store.Location) ([]string, error) {
	var out []string
	it := loc.Bucket().List(&blob.ListOptions{Prefix: "kopia/", Delimiter: "/"})
	for {
		o, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		if o.IsDir {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, "kopia/"), "/"))
		}
	}
}

// checkRepositories opens the existing repositories of the namespaces in scope (every one when
// all namespaces are) with their keys.
func checkRepositories(ctx context.Context, d *Deps, cfg *Config, loc *store.Location, repoKey func(string) (string, error)) Result {
	all, err := repositories(ctx, loc)
	if err != nil {
		return fail(checkRepos, "list the repositories in "+loc.String()+": "+err.Error(), "")
	}
	inScope := map[string]bool{}
	for _, ns := range cfg.Namespaces {
		inScope[ns] = true
	}
	var nss []string
	for _, ns := range all {
		if cfg.AllNamespaces || inScope[ns] {
			nss = append(nss, ns)
		}
	}
	if len(nss) == 0 {
		return ok(checkRepos, fmt.Sprintf("no repository yet for %s (%d in the location): the first backup of a namespace creates its own", namespaceScope(cfg), len(all)))
	}
	more := ""
	if len(nss) > maxRepositories {
		more = fmt.Sprintf(" (the first %d of %d)", maxRepositories, len(nss))
		nss = nss[:maxRepositories]
	}
	errs := make([]error, len(nss))
	forEach(indexes(len(nss)), 2, func(i int) []Result {
		key, err := repoKey(nss[i])
		if err == nil {
			err = d.OpenRepository(ctx, cfg.Location, nss[i], key)
		}
		errs[i] = err
		return nil
	})
	var opened, wrong, broken []string
	for i, err := range errs {
		switch {
		case err == nil:
			opened = append(opened, nss[i])
		case errors.Is(err, repo.ErrNoRepository): // a prefix without a repository: nothing to open
		case errors.Is(err, repo.ErrWrongPassword):
			wrong = append(wrong, nss[i])
		default:
			broken = append(broken, nss[i]+": "+err.Error())
		}
	}
	switch {
	case len(wrong) > 0:
		return fail(checkRepos, fmt.Sprintf("the keys derived from %s do not open the repositories of %s: they were made under another location key", keyring.KeyFile, strings.Join(wrong, ", ")),
			"was "+keyring.KeyFile+" replaced? Restore the key file it had, or back these namespaces up to another location")
	case len(broken) > 0:
		return fail(checkRepos, "cannot open "+strings.Join(broken, "; "), "")
	case len(opened) == 0:
		return ok(checkRepos, fmt.Sprintf("no repository yet for %s: the first backup of a namespace creates its own", namespaceScope(cfg)))
	}
	return ok(checkRepos, fmt.Sprintf("each namespace's key opens its repository: %s%s", strings.Join(opened, ", "), more))
}
