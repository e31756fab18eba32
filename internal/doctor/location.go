package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"gocloud.dev/blob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// maxRepositories bounds how many existing repositories the password is tried on (each open
// derives the key: a fraction of a second).
const maxRepositories = 20

func checkLocation(ctx context.Context, d *Deps, cfg *Config) []Result {
	if cfg.Location == "" {
		return []Result{warn("location", "no backup location given: not checked", "pass --location URL or set "+store.EnvLocation)}
	}
	display := store.Redact(cfg.Location)
	loc, err := d.OpenLocation(ctx, cfg.Location)
	if err != nil {
		return []Result{fail("location", err.Error(), "check the URL, the endpoint and the credentials ($AWS_ACCESS_KEY_ID, ...)")}
	}
	defer loc.Close()
	out := []Result{ok("location", display+" is reachable")}
	if err := store.CheckWritable(ctx, loc); err != nil {
		out = append(out, fail("location writable", err.Error(), "give the credentials write and delete rights on the bucket"))
	} else {
		out = append(out, ok("location writable", "a marker was written and deleted"))
	}
	return append(out, checkRepositories(ctx, d, cfg, loc)...)
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
// all namespaces are) with the password.
func checkRepositories(ctx context.Context, d *Deps, cfg *Config, loc *store.Location) []Result {
	const check = "repository password"
	if d.OpenRepository == nil {
		return nil
	}
	if cfg.Password == "" {
		return []Result{warn(check, "no password given: the repositories were not opened", "set PVBACKUP_PASSWORD or pass --password-file")}
	}
	all, err := repositories(ctx, loc)
	if err != nil {
		return []Result{fail(check, "list the repositories in "+loc.String()+": "+err.Error(), "")}
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
		return []Result{ok(check, fmt.Sprintf("no repository yet for %s (%d in the location): the first backup creates them with this password", namespaceScope(cfg), len(all)))}
	}
	more := ""
	if len(nss) > maxRepositories {
		more = fmt.Sprintf(" (the first %d of %d)", maxRepositories, len(nss))
		nss = nss[:maxRepositories]
	}
	errs := make([]error, len(nss))
	forEach(indexes(len(nss)), 2, func(i int) []Result {
		errs[i] = d.OpenRepository(ctx, cfg.Location, nss[i], cfg.Password)
		return nil
	})
	var wrong, broken []string
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, repo.ErrWrongPassword):
			wrong = append(wrong, nss[i])
		default:
			broken = append(broken, nss[i]+": "+err.Error())
		}
	}
	switch {
	case len(wrong) > 0:
		return []Result{fail(check, fmt.Sprintf("the password does not open the repositories of %s", strings.Join(wrong, ", ")),
			"use the password they were created with (PVBACKUP_PASSWORD or --password-file), or another location")}
	case len(broken) > 0:
		return []Result{fail(check, "cannot open "+strings.Join(broken, "; "), "")}
	}
	return []Result{ok(check, fmt.Sprintf("opens the repositories of %s%s", strings.Join(nss, ", "), more))}
}
