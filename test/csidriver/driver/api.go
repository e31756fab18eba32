package driver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// API is a minimal Kubernetes API client: JSON over HTTPS with a client certificate, enough for
// the attacher (list, watch, get, merge patch).
type API struct {
	Server string // https://host:port
	Client *http.Client
}

// NewAPI connects to server with the CA, client certificate and key in these PEM files (as
// hack/cluster.sh writes them).
func NewAPI(server, caFile, certFile, keyFile string) (*API, error) {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	return &API{Server: strings.TrimSuffix(server, "/"), Client: &http.Client{Transport: tr}}, nil
}

// APIError is a response other than 2xx.
type APIError struct {
	Code    int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message) }

// Do sends a request (body JSON-encoded unless nil) and decodes a 2xx response into out (if not nil).
func (a *API) Do(ctx context.Context, method, path, contentType string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.send(ctx, method, path, contentType, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out)
}

// MergePatch sends a JSON merge patch and decodes the patched object into out (if not nil).
func (a *API) MergePatch(ctx context.Context, path string, patch, out any) error {
	return a.Do(ctx, "PATCH", path, "application/merge-patch+json", patch, out)
}

func (a *API) send(ctx context.Context, method, path, contentType string, body any) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.Server+path, r)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var st struct {
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &st) != nil || st.Message == "" {
			st.Message = strings.TrimSpace(string(b))
		}
		return nil, &APIError{Code: resp.StatusCode, Message: st.Message}
	}
	return resp, nil
}

// Watch streams the watch events of path (which asks for watch=1) to fn until the server ends
// the watch, fn fails or ctx is done.
func (a *API) Watch(ctx context.Context, path string, fn func(typ string, object json.RawMessage) error) error {
	resp, err := a.send(ctx, "GET", path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err == io.EOF || ctx.Err() != nil {
			return nil
		} else if err != nil {
			return fmt.Errorf("read watch: %w", err)
		}
		if err := fn(ev.Type, ev.Object); err != nil {
			return err
		}
	}
}

// The parts of API objects the attacher reads.

type objectMeta struct {
	Name              string            `json:"name"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	DeletionTimestamp *string           `json:"deletionTimestamp,omitempty"`
	Finalizers        []string          `json:"finalizers,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
}

type volumeError struct {
	Time    string `json:"time,omitempty"`
	Message string `json:"message"`
}

type volumeAttachment struct {
	Metadata objectMeta `json:"metadata"`
	Spec     struct {
		Attacher string `json:"attacher"`
		NodeName string `json:"nodeName"`
		Source   struct {
			PersistentVolumeName *string `json:"persistentVolumeName,omitempty"`
		} `json:"source"`
	} `json:"spec"`
	Status struct {
		Attached           bool              `json:"attached"`
		AttachmentMetadata map[string]string `json:"attachmentMetadata,omitempty"`
		AttachError        *volumeError      `json:"attachError,omitempty"`
		DetachError        *volumeError      `json:"detachError,omitempty"`
	} `json:"status"`
}

// fingerprint is va without its resourceVersion and its attach and detach errors.
func (va *volumeAttachment) fingerprint() string {
	c := *va
	c.Metadata.ResourceVersion = ""
	c.Status.AttachError, c.Status.DetachError = nil, nil
	b, _ := json.Marshal(c)
	return string(b)
}

func (va *volumeAttachment) hasFinalizer(f string) bool {
	for _, x := range va.Metadata.Finalizers {
		if x == f {
			return true
		}
	}
	return false
}

type persistentVolume struct {
	Spec struct {
		AccessModes  []string `json:"accessModes"`
		MountOptions []string `json:"mountOptions,omitempty"`
		CSI          *struct {
			Driver           string            `json:"driver"`
			VolumeHandle     string            `json:"volumeHandle"`
			FSType           string            `json:"fsType,omitempty"`
			ReadOnly         bool              `json:"readOnly,omitempty"`
			VolumeAttributes map[string]string `json:"volumeAttributes,omitempty"`
		} `json:"csi,omitempty"`
	} `json:"spec"`
}

type csiNode struct {
	Spec struct {
		Drivers []struct {
			Name   string `json:"name"`
			NodeID string `json:"nodeID"`
		} `json:"drivers"`
	} `json:"spec"`
}
