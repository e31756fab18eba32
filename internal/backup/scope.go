package backup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// Access answers whether the caller may do something (kube.Access: SelfSubjectAccessReviews).
type Access interface {
	Allowed(ctx context.Context, verb string, gr schema.GroupResource, ns string) (bool, error)
}

// allowed asks d.Access; without one, or without an answer, the request itself will tell.
func (b *run) allowed(ctx context.Context, verb string, gr schema.GroupResource, ns string) bool {
	if b.d.Access == nil {
		return true
	}
	ok, err := b.d.Access.Allowed(ctx, verb, gr, ns)
	return err != nil || ok
}

// literalNamespaces returns the namespaces --include-namespaces names when it names them all
// without patterns: they are read one by one, which a namespace admin may do for their own
// namespace, where listing every namespace needs a cluster-wide right.
func (b *run) literalNamespaces() []string {
	inc := b.cfg.Namespaces.Include
	if len(inc) == 0 {
		return nil
	}
	for _, n := range inc {
		if strings.ContainsAny(n, "*?[") {
			return nil
		}
	}
	return inc
}

// findNamespaces returns the cluster's namespaces the selection may name, as objects: those
// --include-namespaces names (read one by one), or every namespace (listed). An error names the
// namespace and the right that is missing.
func (b *run) findNamespaces(ctx context.Context, nsRes selection.Resource) ([]*unstructured.Unstructured, error) {
	ri := b.d.Dynamic.Resource(nsRes.GVR)
	if names := b.literalNamespaces(); names != nil {
		var out []*unstructured.Unstructured
		var missing []string
		for _, n := range names {
			o, err := ri.Get(ctx, n, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
				missing = append(missing, fmt.Sprintf("%q", n))
			case apierrors.IsForbidden(err):
				return nil, fmt.Errorf("namespace %q: the right to get namespaces in %s is missing (%s): back up namespaces you have rights in, or ask for a RoleBinding in %s", n, n, reason(err), n)
			case err != nil:
				return nil, fmt.Errorf("get namespace %q: %w", n, err)
			default:
				out = append(out, o)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("namespace %s not found (see `kubectl get namespaces`)", strings.Join(missing, ", "))
		}
		return out, nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if apierrors.IsForbidden(err) {
		return nil, fmt.Errorf("list namespaces: %s: selecting namespaces by pattern, or all of them, needs the right to list namespaces; name them instead (--include-namespaces a,b)", reason(err))
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	out := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// addNamespaces archives the selected namespaces' own objects, read when the plan was made.
func (b *run) addNamespaces(ctx context.Context, r selection.Resource, p *planned, aw *archive.Writer) error {
	done := b.d.Progress.Start(r.GroupResource())
	n := 0
	for _, name := range p.namespaces {
		o := p.nsObjects[name]
		if o == nil {
			continue
		}
		if err := b.add(r, o, aw); err != nil {
			done("", err)
			return err
		}
		n++
	}
	done(fmt.Sprintf("%d", n), ctx.Err())
	return ctx.Err()
}

// named reports whether the user named r in an include flag: a type they asked for and may not
// read fails the backup; others are left out with a warning.
func (b *run) named(r selection.Resource) bool {
	terms := b.cfg.Resources.Include
	if s := b.cfg.Scoped; s != nil {
		terms = append(append([]string{}, s.IncludeNamespaced...), s.IncludeCluster...)
	}
	return selection.Names(r, terms)
}

// deny notes a resource type the caller may not list in ns ("" cluster-wide).
func (b *run) deny(r selection.Resource, ns string) {
	if b.denied == nil {
		b.denied = map[string][]string{}
	}
	b.denied[r.GroupResource()] = append(b.denied[r.GroupResource()], ns)
}

// warnDenied turns the types left out for want of rights into one warning each, in the plan and
// the manifest: the backup is complete for what the user may read, and says what it lacks.
func (b *run) warnDenied() {
	types := make([]string, 0, len(b.denied))
	for t := range b.denied {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		where := "cluster-wide"
		if nss := b.denied[t]; len(nss) > 0 && nss[0] != "" {
			where = "in namespace " + strings.Join(nss, ", ")
		}
		b.warn(catalog.Warning{Resource: t, Message: fmt.Sprintf("%s: not allowed to list them %s: left out of the backup (grant list on %s to take them)", t, where, t)})
	}
}

// reason returns the apiserver's message, which names the user and the right.
func reason(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}
