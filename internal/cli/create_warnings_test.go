package cli

import (
	"bytes"
	"context"
	"testing"

	"gocloud.dev/blob/memblob"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/catalog"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/kube"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/store"
)

// TestAPIWarningsGoToTheLog: during create, the apiserver's warnings (the deprecation of v1
// Endpoints, listed with every served type) go to the backup's log, not the terminal.
func TestAPIWarningsGoToTheLog(t *testing.T) {
	var stderr bytes.Buffer
	h := kube.InstallWarnings(&stderr)
	log := catalog.NewLog()
	restore := kube.RouteWarnings(apiWarnings(log))
	h.HandleWarningHeader(299, "", "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
	restore()
	if stderr.Len() != 0 {
		t.Errorf("printed on the terminal: %q", stderr.String())
	}
	ctx := context.Background()
	cat := catalog.New(store.FromBucket(memblob.OpenBucket(nil), "mem://"))
	if err := cat.WriteLog(ctx, "b", log); err != nil {
		t.Fatal(err)
	}
	entries, err := cat.ReadLog(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Level != "warning" || entries[0].Message != "apiserver: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice" {
		t.Errorf("log %+v", entries)
	}
}
