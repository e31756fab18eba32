// Package s3server starts S3 servers for tests: SeaweedFS (a real object store, started as a
// process on loopback) and gofakes3 (an in-process S3 test double for fast tests).
package s3server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Server is a running S3 endpoint with one bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	AccessKey string
	SecretKey string
}

// URL returns the gocloud.dev/blob URL of the bucket, with prefix as the path ("" for none).
// Credentials are not in the URL: callers set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (see SetEnv).
func (s *Server) URL(prefix string) string {
	p := ""
	if prefix != "" {
		p = "/" + strings.Trim(prefix, "/")
	}
	return fmt.Sprintf("s3://%s%s?endpoint=%s&region=us-east-1&use_path_style=true&disable_https=true", s.Bucket, p, s.Endpoint)
}

// SetEnv points the AWS SDK at the server's credentials for the rest of the test.
func (s *Server) SetEnv(tb testing.TB) {
	tb.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	tb.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	tb.Setenv("AWS_REGION", "us-east-1")
	// Keep the SDK away from ~/.aws and instance metadata on the developer's machine.
	tb.Setenv("AWS_CONFIG_FILE", os.DevNull)
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Fake starts gofakes3 in process with an in-memory backend and one bucket.
func Fake(tb testing.TB) *Server {
	tb.Helper()
	backend := s3mem.New()
	faker := gofakes3.New(backend)
	ts := httptest.NewServer(faker.Server())
	tb.Cleanup(ts.Close)
	bucket := "fake-" + randomHex(4)
	if err := backend.CreateBucket(bucket); err != nil {
		tb.Fatalf("create bucket on gofakes3: %v", err)
	}
	return &Server{Endpoint: ts.URL, Bucket: bucket, AccessKey: "fake", SecretKey: "fakefakefake"}
}

// SeaweedFS returns the SeaweedFS server named by PVBACKUP_TEST_S3_ENDPOINT (started once for a
// whole test run by hack/stores-env, which `make integration` runs, with
// PVBACKUP_TEST_S3_ACCESS_KEY/SECRET_KEY), creating a fresh bucket on it; without that variable
// it starts `weed mini` from the tools directory (PVBACKUP_TOOLS, default .local/bin of the
// checkout) for this test only.
func SeaweedFS(tb testing.TB) *Server {
	tb.Helper()
	if ep := os.Getenv("PVBACKUP_TEST_S3_ENDPOINT"); ep != "" {
		s := &Server{Endpoint: ep, AccessKey: os.Getenv("PVBACKUP_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("PVBACKUP_TEST_S3_SECRET_KEY")}
		s.Bucket = "t-" + randomHex(6)
		if err := createBucket(s); err != nil {
			tb.Fatalf("create bucket on SeaweedFS at %s: %v", ep, err)
		}
		return s
	}
	weed := filepath.Join(ToolsDir(), "weed")
	if _, err := os.Stat(weed); err != nil {
		tb.Fatalf("SeaweedFS is not built (%v): run `hack/tools.sh seaweedfs` or `make integration`", err)
	}
	s, stop, err := StartSeaweedFS(weed, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(stop)
	return s
}

// StartSeaweedFS starts `weed mini` on free loopback ports with its data in dir and waits for S3.
// The returned function stops it.
func StartSeaweedFS(weed, dir string) (*Server, func(), error) {
	s := &Server{AccessKey: "pvbackup", SecretKey: "pvbackup-" + randomHex(8), Bucket: "pvbackup"}
	ports, err := freePorts(10)
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(dir, "weed.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Every port is chosen here, and the extra servers weed mini starts by default (WebDAV,
	// Iceberg, Lance, the admin's legacy port) are off, so runs can overlap on one machine.
	cmd := exec.CommandContext(ctx, weed, "mini",
		"-dir="+filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
		fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]),
		fmt.Sprintf("-admin.port=%d", ports[8]), fmt.Sprintf("-admin.port.grpc=%d", ports[9]),
		"-admin.port.legacy=0", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-master.telemetry=false", // nothing leaves this machine
		// Every test's bucket is a collection of its own, and each new collection takes several
		// volumes. weed mini sizes volumes (up to 1 GiB) and their number from the free disk
		// space, so on a fuller disk a run of many tests ran out of writable volumes half-way
		// (PutObject: 500 InternalError). Small volumes, many of them: nothing is preallocated.
		"-master.volumeSizeLimitMB=64", "-volume.max=300",
		"-bucket="+s.Bucket)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+s.AccessKey, "AWS_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	_ = os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, fmt.Errorf("start weed: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() { cancel(); <-done; _ = logf.Close() }
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[6])
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			return nil, nil, fmt.Errorf("weed mini exited before S3 was ready; log:\n%s", tail(string(b), 2000))
		default:
		}
		// Ready when the bucket answers, not just the port: the filer comes up after the S3 listener.
		if err := headBucket(s); err == nil {
			return s, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(logPath)
			return nil, nil, fmt.Errorf("SeaweedFS S3 not ready after 60s; log:\n%s", tail(string(b), 2000))
		}
		time.Sleep(200 * time.Millisecond) // a process start has nothing to watch
	}
}

// ToolsDir is where hack/tools.sh puts built programs.
func ToolsDir() string {
	if d := os.Getenv("PVBACKUP_TOOLS"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".local", "bin")
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

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

func s3Client(s *Server) *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   &http.Client{Timeout: 5 * time.Second},
	})
}

func headBucket(s *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s3Client(s).HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.Bucket)})
	return err
}

func createBucket(s *Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s3Client(s).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.Bucket)})
	return err
}

// SeaweedFSLocked is SeaweedFS (as SeaweedFS finds or starts it) with a fresh bucket created with
// S3 Object Lock enabled (and so versioning), for immutable locations.
func SeaweedFSLocked(tb testing.TB) *Server {
	tb.Helper()
	s := SeaweedFS(tb)
	locked := *s
	locked.Bucket = "lock-" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Client(&locked).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(locked.Bucket), ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		tb.Fatalf("create bucket %s with object lock on %s: %v", locked.Bucket, s.Endpoint, err)
	}
	return &locked
}

// Client is an S3 client of the server with its own credentials: what anyone holding the
// location's credentials can do, through the plain S3 API.
func Client(s *Server) *s3.Client { return s3Client(s) }

// IgnoringConditional returns srv behind a proxy that drops If-None-Match and If-Match, as an
// S3-compatible store without conditional writes would ignore them.
func IgnoringConditional(tb testing.TB, srv *Server) *Server {
	tb.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // the request was signed for the proxy's host
		r.Out.Header.Del("If-None-Match")
		r.Out.Header.Del("If-Match")
	}}
	ts := httptest.NewServer(proxy)
	tb.Cleanup(ts.Close)
	s := *srv
	s.Endpoint = ts.URL
	return &s
}
