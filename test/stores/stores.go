// Package stores starts the GCS and Azure Blob servers of the tests beside SeaweedFS (package
// s3server): fake-gcs-server (a Go program, hack/tools.sh fakegcs) for gs:// and Azurite (Azure's
// own emulator, from npm, hack/tools.sh azurite) for azblob://. hack/stores-env starts one of each
// for a whole test run (as it does SeaweedFS) and names them in the environment; a test that runs
// without it starts its own.
package stores

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-pvbackup/kubectl-pvbackup/test/s3server"
)

// Environment of a test run started by hack/stores-env.
const (
	EnvGCSEndpoint   = "PVBACKUP_TEST_GCS_ENDPOINT"
	EnvAzureEndpoint = "PVBACKUP_TEST_AZURE_ENDPOINT"
	EnvAzureAccount  = "PVBACKUP_TEST_AZURE_ACCOUNT"
	EnvAzureKey      = "PVBACKUP_TEST_AZURE_KEY"
)

// Server is a running GCS or Azure Blob endpoint with one bucket (container).
type Server struct {
	Scheme   string // "gs" or "azblob"
	Endpoint string // http://ADDR:PORT
	Bucket   string
	Account  string // azblob only
	Key      string // azblob only: the account's shared key (base64)
}

// URL returns the gocloud.dev/blob URL of the bucket, with prefix as the path ("" for none),
// with the parameters each store needs for a custom endpoint (docs/install.md lists them).
func (s *Server) URL(prefix string) string {
	p := ""
	if prefix != "" {
		p = "/" + strings.Trim(prefix, "/")
	}
	host := strings.TrimPrefix(s.Endpoint, "http://")
	switch s.Scheme {
	case "gs":
		return fmt.Sprintf("gs://%s%s?endpoint=%s&anonymous=true", s.Bucket, p, s.Endpoint)
	default:
		return fmt.Sprintf("azblob://%s%s?protocol=http&domain=%s&localemu=true", s.Bucket, p, host)
	}
}

// Env is the credentials environment of the server (Azure's account and key; nothing for the
// anonymous GCS emulator), as KEY=VALUE pairs.
func (s *Server) Env() []string {
	if s.Scheme != "azblob" {
		return nil
	}
	return []string{"AZURE_STORAGE_ACCOUNT=" + s.Account, "AZURE_STORAGE_KEY=" + s.Key}
}

// SetEnv sets the server's credentials for the rest of the test, and keeps the SDKs away from the
// developer's own credentials.
func (s *Server) SetEnv(tb testing.TB) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		tb.Setenv(k, v)
	}
	tb.Setenv("GOOGLE_APPLICATION_CREDENTIALS", "")
	tb.Setenv("STORAGE_EMULATOR_HOST", "")
}

// GCS returns the fake-gcs-server named by PVBACKUP_TEST_GCS_ENDPOINT (hack/stores-env) with a
// fresh bucket on it; without it, it starts one for this test from the tools directory.
func GCS(tb testing.TB) *Server {
	tb.Helper()
	if ep := os.Getenv(EnvGCSEndpoint); ep != "" {
		s := &Server{Scheme: "gs", Endpoint: ep, Bucket: "t-" + randomHex(6)}
		if err := createGCSBucket(s); err != nil {
			tb.Fatalf("create bucket on fake-gcs-server at %s: %v", ep, err)
		}
		return s
	}
	bin := filepath.Join(s3server.ToolsDir(), "fake-gcs-server")
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("fake-gcs-server is not built (%v): run `hack/tools.sh fakegcs` or `make integration`", err)
	}
	s, stop, err := StartGCS(bin, tb.TempDir(), "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return s
}

// Azure returns the Azurite named by PVBACKUP_TEST_AZURE_ENDPOINT (hack/stores-env) with a fresh
// container on it; without it, it starts one for this test from the tools directory.
func Azure(tb testing.TB) *Server {
	tb.Helper()
	if ep := os.Getenv(EnvAzureEndpoint); ep != "" {
		s := &Server{Scheme: "azblob", Endpoint: ep, Bucket: "t-" + randomHex(6), Account: os.Getenv(EnvAzureAccount), Key: os.Getenv(EnvAzureKey)}
		if err := createContainer(s); err != nil {
			tb.Fatalf("create container on Azurite at %s: %v", ep, err)
		}
		return s
	}
	bin := filepath.Join(s3server.ToolsDir(), "azurite-blob")
	if _, err := os.Stat(bin); err != nil {
		tb.Fatalf("Azurite is not installed (%v): run `hack/tools.sh azurite` or `make integration`", err)
	}
	s, stop, err := StartAzurite(bin, tb.TempDir(), "127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return s
}

// process is a started server: its log and a stop function that waits for it to exit.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	stop    func()
}

func start(dir, name string, cmd *exec.Cmd) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: Azurite's launcher starts node, which must go with it.
	cmd.SysProcAttr = processGroup()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	p.stop = func() {
		killGroup(cmd.Process.Pid)
		<-p.done
		_ = logf.Close()
	}
	return p, nil
}

// waitReady polls ready (a process start has nothing to watch) until it succeeds, the process
// exits, or a minute passes.
func (p *process) waitReady(name string, ready func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s exited before it was ready; log:\n%s", name, tail(string(b), 2000))
		default:
		}
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.stop()
			b, _ := os.ReadFile(p.logPath)
			return fmt.Errorf("%s not ready after 60s (%v); log:\n%s", name, err, tail(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func withTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}
