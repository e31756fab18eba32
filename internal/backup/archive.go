package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/progress"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/selection"
)

// write streams the archive to the bucket. The object appears only if everything succeeded.
func (b *run) write(ctx context.Context) (err error) {
	p := b.p
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bw, err := b.d.Catalog.NewWriter(wctx, b.cfg.Name, catalog.ResourcesFile, "application/octet-stream")
	if err != nil {
		return err
	}
	cw := &countingWriter{w: bw}
	aw, err := archive.NewWriter(cw, b.cfg.ArchiveKey)
	if err != nil {
		cancel()
		_ = bw.Close()
		return err
	}
	if err := b.walk(ctx, p, aw); err != nil {
		cancel() // abandon the upload: gocloud does not create the object
		_ = bw.Close()
		return err
	}
	done := b.d.Progress.Start("upload resources archive")
	if err := aw.Close(); err != nil {
		cancel()
		_ = bw.Close()
		done("", err)
		return fmt.Errorf("finish resources archive: %w", err)
	}
	if err := bw.Close(); err != nil {
		done("", err)
		return fmt.Errorf("upload resources archive to %s: %w", b.d.Catalog.Location(), err)
	}
	done(progress.Bytes(cw.n), nil)
	b.m.Archive = catalog.ArchiveRef{File: catalog.ResourcesFile, Size: cw.n, Encrypted: "age-scrypt"}
	return nil
}

type archiveError struct{ err error }

func (e *archiveError) Error() string { return e.err.Error() }

func (e *archiveError) Unwrap() error { return e.err }

// add archives one object (aw nil: counts it) and notes what cluster objects it needs.
func (b *run) add(r selection.Resource, o *unstructured.Unstructured, aw *archive.Writer) error {
	lbls := o.GetLabels()
	if label := selection.ExcludedBy(lbls); label != "" {
		b.m.Excluded = append(b.m.Excluded, catalog.Excluded{Resource: r.GroupResource(), Namespace: o.GetNamespace(), Name: o.GetName(), Label: label})
		b.log.Add(catalog.LogEntry{Level: "info", Resource: r.GroupResource(), Namespace: o.GetNamespace(), Name: o.GetName(), Message: "left out: labelled " + label})
		return nil
	}
	for k, v := range selection.ControllerManagedLabels {
		if lbls[k] == v {
			return nil
		}
	}
	if b.needs != nil && r.Namespaced {
		b.noteNeeds(r, o)
	}
	if r.Namespaced && r.GVR.Group == "" && r.GVR.Resource == "persistentvolumeclaims" && b.d.Volumes != nil {
		var c corev1.PersistentVolumeClaim
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &c); err != nil {
			return fmt.Errorf("decode PVC %s/%s: %w", o.GetNamespace(), o.GetName(), err)
		}
		b.claims = append(b.claims, &c)
	}
	if aw != nil {
		// managedFields only say which client last wrote each field; restore drops them anyway.
		o.SetManagedFields(nil)
		data, err := json.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("encode %s %s/%s: %w", r.GroupResource(), o.GetNamespace(), o.GetName(), err)
		}
		k := archive.Key{GVR: r.GVR, Namespace: o.GetNamespace(), Name: o.GetName()}
		if err := aw.Add(k, data); err != nil {
			return &archiveError{err}
		}
	}
	b.items++
	b.counts[countKey{resourceID(r.GVR), o.GetNamespace()}]++
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
