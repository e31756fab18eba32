package cli

import (
	"context"
	"fmt"
	"slices"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/backup"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/maintenance"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/repo"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// repos is the location's repository service with the keys of the keyring create opened.
func (o *CreateOptions) repos(repoPassword func(string) (string, error)) *repo.Service {
	return &repo.Service{Location: o.location.URL, Key: repoPassword}
}

// lockedRepos is repos whose Ensure creates repositories with lock's retention (an immutable
// location's; nil for none).
func (o *CreateOptions) lockedRepos(repoPassword func(string) (string, error), lock *store.Lock) *repo.Service {
	rs := o.repos(repoPassword)
	rs.Lock = lock
	return rs
}

// maintain runs Kopia's quick maintenance of the repositories this backup wrote to, when due
// (maintenance.Auto): a location that only ever sees create stays fast to open. A failure is a
// warning: the backup is done.
func (o *CreateOptions) maintain(ctx context.Context, deps backup.Deps, repoPassword func(string) (string, error)) {
	m, err := deps.Catalog.Manifest(ctx, o.Name)
	if err != nil || ctx.Err() != nil {
		return
	}
	var nss []string
	for _, v := range m.Volumes {
		if v.KopiaSnapshot != "" && !slices.Contains(nss, v.Namespace) {
			nss = append(nss, v.Namespace)
		}
	}
	if len(nss) == 0 {
		return
	}
	d := maintenance.Deps{Location: deps.Catalog.Location(), Repos: o.repos(repoPassword)}
	done := deps.Progress.Start("quick maintenance of the repositories written, when due")
	res, err := maintenance.Auto(ctx, d, nss)
	switch {
	case err != nil:
		done("", nil)
		deps.Progress.Warn(err.Error())
	case res.Skipped != "":
		done("skipped: "+res.Skipped, nil)
	default:
		done(fmt.Sprintf("ran for %d, not due for %d (Kopia runs it at most hourly)", len(res.Ran), len(res.NotDue)), nil)
	}
}
