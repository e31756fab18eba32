package velero

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
)

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeGzipJSON(t *testing.T) {
	var v map[string][]string
	if err := decodeGzipJSON(gz(t, `{"v1/Pod":["a/b"]}`+"\n"), 1<<20, "f", &v); err != nil || len(v["v1/Pod"]) != 1 {
		t.Fatalf("valid file: %v %v", v, err)
	}
	// A bomb: 8 MiB of one JSON string, about 8 KiB compressed.
	bomb := gz(t, `{"v1/Pod":["`+strings.Repeat("A", 8<<20)+`"]}`)
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"bomb", bomb, "gzip bomb"},
		{"not-gzip", []byte(`{"v1/Pod":[]}`), "not gzip"},
		{"not-json", gz(t, `<xml/>`), "not the JSON"},
		{"two-values", gz(t, `{} {}`), "more than one JSON value"},
		{"truncated-gzip", gz(t, `{"a":["b"]}`)[:20], "not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v map[string][]string
			err := decodeGzipJSON(tc.data, 1<<20, "f", &v)
			if err == nil || !errors.Is(err, ErrUnreadable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrUnreadable containing %q", err, tc.want)
			}
		})
	}
}
