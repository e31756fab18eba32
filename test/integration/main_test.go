//go:build integration

// Package integration runs the plugin's commands in process against a real kube-apiserver,
// etcd and kube-controller-manager, and real object stores.
package integration

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/cli"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/internal/keyring"
	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/controlplane"
)

var (
	cp  *controlplane.ControlPlane
	cs  kubernetes.Interface
	dyn dynamic.Interface
)

func TestMain(m *testing.M) {
	// Every create and restore here unwraps a location key (Argon2id over 64 MiB): a good part
	// of a second each on the shared test machine, and the suite runs dozens. internal/keyring
	// tests the real cost.
	keyring.SetTestCost()
	dir, err := os.MkdirTemp("", "pvbackup-it-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cp, err = controlplane.Start(ctx, dir)
	cancel()
	if err != nil {
		os.Stderr.WriteString("start control plane: " + err.Error() + "\n")
		os.Exit(1)
	}
	cs = kubernetes.NewForConfigOrDie(cp.Config)
	dyn = dynamic.NewForConfigOrDie(cp.Config)
	code := m.Run()
	cp.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a user sees from one command.
type result struct {
	out, err string
	code     int
}

// run executes `kubectl pvbackup ARGS...` in process against the control plane.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root := cli.NewRootCmd(ctx, streams)
	root.SetArgs(append([]string{"--kubeconfig", cp.Kubeconfig}, args...))
	err := root.ExecuteContext(ctx)
	r := result{out: out.String(), err: errOut.String(), code: cli.ExitCodeOf(err)}
	if err != nil {
		r.err += "error: " + err.Error() + "\n"
	}
	t.Logf("$ kubectl pvbackup %s\n%s%s(exit %d)", strings.Join(args, " "), r.out, r.err, r.code)
	return r
}
