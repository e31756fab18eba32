package stores

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
)

// StartGCS starts fake-gcs-server (hack/tools.sh fakegcs) on a free port of addr, in memory,
// over plain HTTP, and creates a bucket. The returned function stops it.
func StartGCS(bin, dir, addr string) (*Server, func(), error) {
	port, err := freePort(addr)
	if err != nil {
		return nil, nil, err
	}
	hostport := net.JoinHostPort(addr, strconv.Itoa(port))
	s := &Server{Scheme: "gs", Endpoint: "http://" + hostport, Bucket: "pvbackup"}
	cmd := exec.Command(bin, "-backend", "memory", "-scheme", "http", "-host", addr, "-port", strconv.Itoa(port),
		"-public-host", hostport, "-external-url", s.Endpoint, "-log-level", "warn")
	p, err := start(dir, "fake-gcs-server", cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := p.waitReady("fake-gcs-server", func() error { return createGCSBucket(s) }); err != nil {
		return nil, nil, err
	}
	return s, p.stop, nil
}

// createGCSBucket creates s.Bucket through the JSON API (the emulator takes no credentials);
// one that exists already is fine.
func createGCSBucket(s *Server) error {
	body, _ := json.Marshal(map[string]string{"name": s.Bucket})
	ctx, cancel := withTimeout()
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/storage/v1/b?project=pvbackup", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusConflict {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	return fmt.Errorf("create bucket %s: %s: %s", s.Bucket, resp.Status, b)
}
