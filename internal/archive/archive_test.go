package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "pw")
	if err != nil {
		t.Fatal(err)
	}
	keys := []Key{
		{GVR: schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, Namespace: "shop", Name: "db"},
		{GVR: schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, Name: "system:view"},
	}
	for i, k := range keys {
		if err := w.Add(k, []byte(`{"n":`+string(rune('0'+i))+`,"secret":"in-clear-text"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("in-clear-text")) || bytes.Contains(buf.Bytes(), []byte("secrets/shop")) {
		t.Fatal("the archive holds data or names in clear")
	}
	if _, err := NewReader(bytes.NewReader(buf.Bytes()), "wrong"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: got %v, want ErrWrongPassword", err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()), "pw")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range keys {
		k, data, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if k != want || !strings.Contains(string(data), `"n":`+string(rune('0'+i))) {
			t.Fatalf("entry %d: got %v %s", i, k, data)
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestPaths(t *testing.T) {
	for _, tc := range []struct {
		path    string
		want    Key
		wantErr string
	}{
		{path: "core/v1/configmaps/shop/app.json", want: Key{GVR: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Namespace: "shop", Name: "app"}},
		{path: "apps/v1/deployments/_cluster/x.json", want: Key{GVR: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, Name: "x"}},
		{path: "core/v1/configmaps/shop/../../../../etc/passwd.json", wantErr: "not a clean relative path"},
		{path: "/core/v1/configmaps/shop/a.json", wantErr: "not a clean relative path"},
		{path: "core/v1/configmaps/../a.json", wantErr: "not a clean relative path"},
		{path: "core/v1/configmaps/shop/...json", wantErr: "escapes its directory"},
		{path: "core/v1/configmaps/a.json", wantErr: "is not <group>"},
		{path: "core/v1/configmaps/shop/a.yaml", wantErr: "is not <group>"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			k, err := ParsePath(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v (%v)", tc.wantErr, err, k)
				}
				return
			}
			if err != nil || k != tc.want {
				t.Fatalf("got %v %v, want %v", k, err, tc.want)
			}
			if k.Path() != tc.path {
				t.Fatalf("Path() = %s, want %s", k.Path(), tc.path)
			}
		})
	}
}

// TestReaderRefusesEscapingEntry builds, with the right password, an archive whose entry
// names a path outside its directory, as a tampered bucket could hold.
func TestReaderRefusesEscapingEntry(t *testing.T) {
	var buf bytes.Buffer
	rcp, _ := age.NewScryptRecipient("pw")
	enc, _ := age.Encrypt(&buf, rcp)
	gz := gzip.NewWriter(enc)
	tw := tar.NewWriter(gz)
	_ = tw.WriteHeader(&tar.Header{Name: "../../etc/cron.d/x.json", Mode: 0o600, Size: 2, Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte("{}"))
	_ = tw.Close()
	_ = gz.Close()
	_ = enc.Close()
	r, err := NewReader(&buf, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), `archive entry "../../etc/cron.d/x.json" escapes its directory`) {
		t.Fatalf("want the escaping entry refused, got %v", err)
	}
}

// TestWorkFactorCapped: the scrypt cost comes from the archive's header, which a bucket writer
// controls. Work factor 22 would make NewReader spend about 4 GiB and half a minute before
// failing; it must fail at once.
func TestWorkFactorCapped(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf(" %d\n", WorkFactor)
	i := bytes.Index(buf.Bytes(), []byte(header))
	if i < 0 || !bytes.HasPrefix(buf.Bytes()[bytes.LastIndex(buf.Bytes()[:i], []byte("\n"))+1:], []byte("-> scrypt ")) {
		t.Fatalf("no scrypt stanza with work factor %d in the header:\n%.200s", WorkFactor, buf.Bytes())
	}
	tampered := append(append(append([]byte{}, buf.Bytes()[:i]...), " 22\n"...), buf.Bytes()[i+len(header):]...)
	start := time.Now()
	_, err = NewReader(bytes.NewReader(tampered), "pw")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("scrypt work factor above %d", MaxWorkFactor)) {
		t.Fatalf("got %v; want the work factor refused", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refusing took %s", d)
	}
}
