package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// count walks the plan on a dry run: it counts what would be archived.
func (b *run) count(ctx context.Context) error { return b.walk(ctx, b.p, nil) }

// walk lists every planned resource and hands each object to aw (nil: count only).
func (b *run) walk(ctx context.Context, p *planned, aw *archive.Writer) error {
	b.m.Namespaces = p.namespaces
	for _, r := range p.cluster {
		list := b.listResource
		if r.GVR.Group == "" && r.GVR.Resource == "namespaces" {
			list = b.addNamespaces
		}
		if err := list(ctx, r, p, aw); err != nil {
			return err
		}
	}
	for _, r := range p.namespaced {
		if len(p.namespaces) == 0 {
			break
		}
		if err := b.listResource(ctx, r, p, aw); err != nil {
			return err
		}
	}
	if p.auto {
		if err := b.fetchNeeds(ctx, p, aw); err != nil {
			return err
		}
	}
	return nil
}

// listResource lists one resource, across the selected namespaces, and archives what matches.
// Errors of one resource (forbidden, a broken aggregated API) are warnings; archive errors stop.
func (b *run) listResource(ctx context.Context, r selection.Resource, p *planned, aw *archive.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	done := b.d.Progress.Start(r.GroupResource())
	before := b.items
	inNS := map[string]bool{}
	for _, n := range p.namespaces {
		inNS[n] = true
	}
	scopes := listScopes(r, p)
	var listErrs []string
	gone := false
	for i := 0; i < len(scopes) && !gone; i++ {
		ns := scopes[i]
		err := b.listScope(ctx, r, ns, inNS, aw)
		var ae *archiveError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			done("", ctx.Err())
			return ctx.Err()
		case errors.As(err, &ae):
			done("", err)
			return err
		case ns == metav1.NamespaceAll && r.Namespaced && apierrors.IsForbidden(err):
			// Allowed per namespace only: fall back to one list per selected namespace.
			scopes = append(scopes, p.namespaces...)
		case apierrors.IsNotFound(err) && !b.named(r):
			// The type went away after discovery (its CRD deleted while the backup ran): no
			// object of it is left to back up, which is no failure of the backup.
			gone = true
		case apierrors.IsForbidden(err) && !b.named(r):
			// A type the user may not read, and did not ask for by name: a namespace admin
			// backs up what their role lets them read; the plan says what it leaves out.
			b.deny(r, ns)
		default:
			msg := listError(r, ns, err)
			listErrs = append(listErrs, msg)
			b.warn(catalog.Warning{Resource: r.GroupResource(), Namespace: ns, Message: msg})
		}
	}
	b.listed(r, b.items-before, gone, listErrs, done)
	return nil
}

// listScopes are the namespaces to list r in: "" for a cluster-scoped resource, all at once
// for many namespaces, else one by one.
func listScopes(r selection.Resource, p *planned) []string {
	switch {
	case !r.Namespaced:
		return []string{""}
	case p.allNS || len(p.namespaces) > clusterWideAbove:
		return []string{metav1.NamespaceAll}
	default:
		return p.namespaces
	}
}

// listScope lists r in ns and adds what belongs to the selected namespaces (inNS), each object
// once: one matching several --or-selector terms is listed again.
func (b *run) listScope(ctx context.Context, r selection.Resource, ns string, inNS map[string]bool, aw *archive.Writer) error {
	isNamespaceList := !r.Namespaced && r.GVR.Group == "" && r.GVR.Resource == "namespaces"
	seen := map[types.UID]bool{}
	return b.listSelected(ctx, r, ns, isNamespaceList, func(o *unstructured.Unstructured) error {
		if r.Namespaced && !inNS[o.GetNamespace()] {
			return nil
		}
		if isNamespaceList && !inNS[o.GetName()] {
			return nil
		}
		if uid := o.GetUID(); uid != "" {
			if seen[uid] {
				return nil
			}
			seen[uid] = true
		}
		return b.add(r, o, aw)
	})
}

func listError(r selection.Resource, ns string, err error) string {
	where := ""
	if ns != "" {
		where = " in namespace " + ns
	}
	return fmt.Sprintf("list %s%s: %v", r.GroupResource(), where, err)
}

// listed ends r's progress line with the n objects taken and records the outcome: no longer
// served, not allowed in some namespaces, errors of the backup, or the count.
func (b *run) listed(r selection.Resource, n int, gone bool, listErrs []string, done func(string, error)) {
	if gone && len(listErrs) == 0 {
		b.warn(catalog.Warning{Resource: r.GroupResource(), Message: fmt.Sprintf("%s is no longer served (its CustomResourceDefinition was removed during the backup): %d of its objects backed up", r.GroupResource(), n)})
		done(fmt.Sprintf("%d; no longer served", n), nil)
		return
	}
	if nss := b.denied[r.GroupResource()]; len(nss) > 0 && len(listErrs) == 0 {
		done(fmt.Sprintf("%d; not allowed in %s", n, progress.Plural(len(nss), "namespace", "namespaces")), nil)
		return
	}
	if len(listErrs) > 0 {
		done(fmt.Sprintf("%d", n), errors.New(strings.Join(listErrs, "; ")))
		b.m.Errors = append(b.m.Errors, listErrs...)
		return
	}
	done(fmt.Sprintf("%d", n), nil)
	if n == 0 {
		// Recorded with its zero, so -o json keeps every count; text output folds them.
		b.counts[countKey{resourceID(r.GVR), ""}] += 0
	}
	if n > 0 {
		b.log.Add(catalog.LogEntry{Level: "info", Resource: r.GroupResource(), Message: fmt.Sprintf("backed up %d objects", n)})
	}
}

// listSelected lists r with the label selector, or once per --or-selector term (the API has no
// OR of selectors). Namespace objects go with the selection whatever their labels: restores need them.
func (b *run) listSelected(ctx context.Context, r selection.Resource, ns string, unfiltered bool, fn func(*unstructured.Unstructured) error) error {
	if unfiltered || len(b.cfg.OrSelectors) == 0 {
		sel := b.cfg.LabelSelector
		if unfiltered {
			sel = ""
		}
		return b.listPages(ctx, r, ns, sel, fn)
	}
	for _, sel := range b.cfg.OrSelectors {
		if err := b.listPages(ctx, r, ns, sel, fn); err != nil {
			return err
		}
	}
	return nil
}

func (b *run) listPages(ctx context.Context, r selection.Resource, ns, selector string, fn func(*unstructured.Unstructured) error) error {
	opts := metav1.ListOptions{Limit: b.cfg.PageSize, LabelSelector: selector}
	var ri dynamic.ResourceInterface = b.d.Dynamic.Resource(r.GVR)
	if r.Namespaced {
		ri = b.d.Dynamic.Resource(r.GVR).Namespace(ns)
	}
	for {
		list, err := ri.List(ctx, opts)
		if err != nil {
			return err
		}
		for i := range list.Items {
			if err := fn(&list.Items[i]); err != nil {
				return err
			}
		}
		opts.Continue = list.GetContinue()
		if opts.Continue == "" {
			return nil
		}
	}
}
