package restore

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/archive"
)

var grCRD = schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}

// apply creates the objects phase by phase. Within a phase, resource types follow one another
// (Roles before the RoleBindings that name them: see Sort), and the objects of one type, which
// do not depend on each other, are created cfg.Parallel at a time — a restore of thousands of
// ConfigMaps waits on the apiserver's round trips, not on its own turn. Outcomes are listed in
// restore order whatever order the workers finish in.
func (r *run) apply(ctx context.Context, entries []*entry) (*Result, error) {
	r.entries = entries
	byKey := map[archive.Key]*entry{}
	var keys []archive.Key
	for _, e := range entries {
		if e.skip == "-" {
			continue
		}
		if e.skip != "" {
			r.record(e, Skipped, e.skip)
			r.commit(e)
			continue
		}
		byKey[e.key] = e
		keys = append(keys, e.key)
	}
	Sort(keys)
	if err := r.ensureNamespaces(ctx, byKey); err != nil {
		return r.res, err
	}
	for _, phase := range phases(keys, byKey) {
		if err := r.applyPhase(ctx, phase); err != nil {
			return r.res, err
		}
	}
	if !r.cfg.DryRun {
		r.linkOwners(ctx)
	}
	return r.res, nil
}

// phase is one restore phase's objects, as batches of one resource type each.
type phase struct {
	n       int
	batches [][]*entry
}

// phases groups the sorted keys by phase, and each phase by resource type.
func phases(keys []archive.Key, byKey map[archive.Key]*entry) []phase {
	var out []phase
	last, lastGR := -1, schema.GroupResource{}
	for _, k := range keys {
		p, gr := PhaseOf(k.GVR.GroupResource(), k.Namespace != ""), k.GVR.GroupResource()
		if p != last {
			out = append(out, phase{n: p})
			last, lastGR = p, schema.GroupResource{}
		}
		cur := &out[len(out)-1]
		if gr != lastGR || len(cur.batches) == 0 {
			cur.batches = append(cur.batches, nil)
			lastGR = gr
		}
		cur.batches[len(cur.batches)-1] = append(cur.batches[len(cur.batches)-1], byKey[k])
	}
	return out
}

// applyPhase creates one phase's objects, then does what must follow the phase: claims are
// filled before any workload, CRDs waited for before custom resources.
func (r *run) applyPhase(ctx context.Context, p phase) error {
	end := r.d.Progress.Start("restore " + PhaseNames[p.n])
	count := 0
	var crds []*entry
	for _, batch := range p.batches {
		if err := ctx.Err(); err != nil {
			end("", err)
			return err
		}
		create := batch
		if p.n == PhaseClaims {
			create = r.refuseUnplaceable(ctx, batch)
		}
		r.applyBatch(ctx, create)
		for _, e := range batch {
			if !e.applied() {
				continue // cut short by ctx
			}
			r.commit(e)
			count++
			switch {
			case e.gr == grPVC:
				r.claims = append(r.claims, e)
			case e.gr == grCRD && e.created:
				crds = append(crds, e)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		end("", err)
		return err
	}
	end(fmt.Sprintf("%d", count), nil)
	switch {
	case p.n == PhaseClaims:
		return r.fillClaims(ctx)
	case p.n == PhaseCRDs && len(crds) > 0 && !r.cfg.DryRun:
		r.waitCRDs(ctx, crds)
	}
	return ctx.Err()
}

// applyBatch runs applyOne for objects of one resource type, cfg.Parallel at a time.
func (r *run) applyBatch(ctx context.Context, batch []*entry) {
	workers := min(r.cfg.Parallel, len(batch))
	if workers <= 1 {
		for _, e := range batch {
			if ctx.Err() != nil {
				return
			}
			r.applyOne(ctx, e)
		}
		return
	}
	next := make(chan *entry)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range next {
				r.applyOne(ctx, e)
			}
		}()
	}
	for _, e := range batch {
		if ctx.Err() != nil {
			break
		}
		next <- e
	}
	close(next)
	wg.Wait()
}
