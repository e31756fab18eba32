package cli

import (
	"bytes"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/restore"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/golden"
)

// TestRestorePrint: a real restore lists what was not simply created, and what was created with
// something to know (a finished Job that runs again, a suspended Job, a modified object).
func TestRestorePrint(t *testing.T) {
	res := &restore.Result{Backup: "shop-1", Items: []restore.Item{
		{Resource: "namespaces", Name: "shop", Action: restore.Created},
		{Resource: "storageclasses.storage.k8s.io", Name: "standard", Action: restore.Skipped, Reason: "--storage-class-mapping standard:fast: the restored claims use fast instead"},
		{Resource: "configmaps", Namespace: "shop", Name: "settings", Action: restore.Created, Reason: "changed by resourceModifierRules[0]"},
		{Resource: "jobs.batch", Namespace: "shop", Name: "seed", Action: restore.Skipped, Reason: "finished Job (Complete): restoring it would run it again; --include-finished-jobs restores it"},
		{Resource: "jobs.batch", Namespace: "shop", Name: "reindex", Action: restore.Created, Reason: "running at backup time: restored suspended; resume it with kubectl patch job reindex -n shop -p '{\"spec\":{\"suspend\":false}}' (--running-jobs)"},
	}, Summary: map[restore.Action]int{restore.Created: 3, restore.Skipped: 2}}
	var out bytes.Buffer
	o := &RestoreOptions{streams: genericiooptions.IOStreams{Out: &out}}
	if err := o.print(res); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "cli/restore.golden", out.Bytes())
}

// TestRestorePrintInPlace: an in-place restore creates no objects; its volumes carry the result.
func TestRestorePrintInPlace(t *testing.T) {
	res := &restore.Result{Backup: "shop-1", Summary: map[restore.Action]int{}, Volumes: []restore.VolumeItem{
		{Namespace: "shop", PVC: "data-db-0", From: "shop/data-db-0", Mode: "snapshot-move", Action: restore.Synced, Files: 120, Bytes: 5 << 20, Seconds: 3.2,
			Reason: "3 added, 2 changed, 1 removed"},
		{Namespace: "shop", PVC: "uploads", From: "shop/uploads", Mode: "fs", Action: restore.Synced, Files: 7, Bytes: 1 << 10, Seconds: 1.1},
		{Namespace: "shop", PVC: "scratch", From: "shop/scratch", Mode: "fs", Action: restore.Failed, Seconds: 0.2,
			Reason: "pod shop/debug mounts the claim and has no owner: stop it yourself (delete it) and run again"},
	}}
	var out bytes.Buffer
	o := &RestoreOptions{streams: genericiooptions.IOStreams{Out: &out}}
	if err := o.print(res); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "cli/restore-in-place.golden", out.Bytes())
}
