package velero

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestCheckEntryName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"resources/pods/namespaces/a/b.json", true},
		{"resources/clusterroles.rbac.authorization.k8s.io/cluster/system:admin.json", true},
		{"metadata/version", true},
		{"resources/", true},
		{"", false},
		{"/etc/passwd", false},
		{"resources/../../x.json", false},
		{"resources/pods/namespaces/../b.json", false},
		{"resources//pods/x.json", false},
		{"resources/./pods/x.json", false},
		{`resources\pods\x.json`, false},
		{"resources/pods/namespaces/a/b\x1b[31m.json", false},
		{"resources/pods/namespaces/a/b\n.json", false},
		{"resources/pods/namespaces/a/\xff.json", false},
		{strings.Repeat("a/", 3000), false},
	} {
		err := checkEntryName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("checkEntryName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestParseEntryPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want entryPath
		ok   bool
		bad  bool
	}{
		{path: "resources/pods/namespaces/shop/web-0.json", want: entryPath{gr: schema.GroupResource{Resource: "pods"}, namespace: "shop", name: "web-0"}, ok: true},
		{path: "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json", want: entryPath{gr: schema.GroupResource{Group: "apps", Resource: "deployments"}, version: "v1-preferredversion", namespace: "shop", name: "web"}, ok: true},
		{path: "resources/persistentvolumes/cluster/pvc-1.json", want: entryPath{gr: schema.GroupResource{Resource: "persistentvolumes"}, name: "pvc-1"}, ok: true},
		{path: "resources/storageclasses.storage.k8s.io/v1-preferredversion/cluster/csi.json", want: entryPath{gr: schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, version: "v1-preferredversion", name: "csi"}, ok: true},
		{path: "metadata/version"},
		{path: "other/thing"},
		{path: "resources/pods/namespaces/shop.json", bad: true},
		{path: "resources/pods/namespaces/shop/web", bad: true},
		{path: "resources/pods/cluster/a/b.json", bad: true},
		{path: "resources/pods/v1/v2/cluster/b.json", bad: true},
		{path: "resources/pods/namespaces/shop/.json", bad: true},
		{path: "resources/.apps/cluster/x.json", bad: true},
	} {
		got, ok, err := parseEntryPath(tc.path)
		if (err != nil) != tc.bad {
			t.Errorf("parseEntryPath(%q) error %v, want error %v", tc.path, err, tc.bad)
			continue
		}
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseEntryPath(%q) = %+v %v, want %+v %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

type tarEntry struct {
	name string
	data string
	typ  byte
}

func makeTarball(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: 0o755, Size: int64(len(e.data))}
		if typ != tar.TypeReg {
			hdr.Size = 0
			hdr.Linkname = "/etc/passwd"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadTarballCopies: of an object's copies the preferred-version one is read, else the
// unversioned one, never both; other versions are ignored.
// obj is an object's JSON as Velero writes it, with a marker to tell copies apart.
func obj(apiVersion, kind, ns, name, mark string) string {
	return fmt.Sprintf(`{"apiVersion":%q,"kind":%q,"metadata":{"name":%q,"namespace":%q},"mark":%q}`, apiVersion, kind, name, ns, mark)
}

func TestReadTarballCopies(t *testing.T) {
	tb := makeTarball(t, []tarEntry{
		{name: "metadata/version", data: "1.1.0\n"},
		{name: "resources/deployments.apps/namespaces/shop/web.json", data: obj("apps/v1", "Deployment", "shop", "web", "plain")},
		{name: "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json", data: obj("apps/v1", "Deployment", "shop", "web", "preferred")},
		{name: "resources/deployments.apps/v1beta1/namespaces/shop/web.json", data: obj("apps/v1beta1", "Deployment", "shop", "web", "other")},
		// the preferred copy first, then the unversioned one
		{name: "resources/configmaps/v1-preferredversion/namespaces/shop/cm.json", data: obj("v1", "ConfigMap", "shop", "cm", "preferred")},
		{name: "resources/configmaps/namespaces/shop/cm.json", data: obj("v1", "ConfigMap", "shop", "cm", "plain")},
		// an old backup: the unversioned copy only; its version is its apiVersion's
		{name: "resources/persistentvolumes/cluster/pv-1.json", data: obj("v1", "PersistentVolume", "", "pv-1", "plain")},
		{name: "resources/", typ: tar.TypeDir},
	})
	res, err := readTarball(bytes.NewReader(tb), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if res.FormatVersion != "1.1.0" {
		t.Errorf("format %q", res.FormatVersion)
	}
	var got []string
	for _, o := range res.Objects {
		var m struct{ Mark string }
		_ = json.Unmarshal(o.Data, &m)
		got = append(got, o.GroupResource.String()+" "+o.Version+" "+o.Namespace+"/"+o.Name+" "+m.Mark)
	}
	want := []string{
		`configmaps v1 shop/cm preferred`,
		`persistentvolumes v1 /pv-1 plain`,
		`deployments.apps v1 shop/web preferred`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if res.Ignored != 3 {
		t.Errorf("ignored %d, want 3 (two replaced unversioned copies, one v1beta1)", res.Ignored)
	}
}

func TestReadTarballRefuses(t *testing.T) {
	small := DefaultLimits
	small.Entries, small.EntryBytes, small.ResourcesBytes = 3, 300, 400
	pod := func(name string) string { return obj("v1", "Pod", "", name, "") }
	padded := func(name string, n int) string { return obj("v1", "Pod", "", name, strings.Repeat("x", n)) }
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		lim     Limits
		want    string
	}{
		{"dot-dot", []tarEntry{{name: "resources/pods/namespaces/../../../etc/x.json", data: "{}"}}, DefaultLimits, "escapes"},
		{"absolute", []tarEntry{{name: "/resources/pods/cluster/x.json", data: "{}"}}, DefaultLimits, "not a relative path"},
		{"control", []tarEntry{{name: "resources/pods/cluster/\x07.json", data: "{}"}}, DefaultLimits, "control character"},
		{"symlink", []tarEntry{{name: "resources/pods/cluster/x.json", typ: tar.TypeSymlink}}, DefaultLimits, "not a regular file"},
		{"hardlink", []tarEntry{{name: "resources/pods/cluster/x.json", typ: tar.TypeLink}}, DefaultLimits, "not a regular file"},
		{"shape", []tarEntry{{name: "resources/pods/x.json", data: "{}"}}, DefaultLimits, "is not resources/"},
		{"twice", []tarEntry{{name: "resources/pods/cluster/x.json", data: pod("x")}, {name: "resources/pods/cluster/x.json", data: pod("x")}}, DefaultLimits, "appears twice"},
		{"twice-after-preferred", []tarEntry{{name: "resources/pods/cluster/x.json", data: pod("x")}, {name: "resources/pods/v1-preferredversion/cluster/x.json", data: pod("x")}, {name: "resources/pods/cluster/x.json", data: pod("x")}}, DefaultLimits, "appears twice"},
		{"entries", []tarEntry{{name: "resources/pods/cluster/1.json", data: pod("1")}, {name: "resources/pods/cluster/2.json", data: pod("2")}, {name: "resources/pods/cluster/3.json", data: pod("3")}, {name: "resources/pods/cluster/4.json", data: pod("4")}}, small, "more than 3 entries"},
		{"entry-size", []tarEntry{{name: "resources/pods/cluster/1.json", data: padded("1", 400)}}, small, "more than any object"},
		{"total-size", []tarEntry{{name: "resources/pods/cluster/1.json", data: padded("1", 100)}, {name: "resources/pods/cluster/2.json", data: padded("2", 100)}, {name: "resources/pods/cluster/3.json", data: padded("3", 100)}}, small, "more than 400 bytes"},
		{"not json", []tarEntry{{name: "resources/pods/cluster/1.json", data: "x"}}, DefaultLimits, "not a JSON object"},
		{"other name", []tarEntry{{name: "resources/pods/namespaces/shop/web.json", data: obj("v1", "Pod", "shop", "evil", "")}}, DefaultLimits, `holds object "evil" in namespace "shop"`},
		{"other namespace", []tarEntry{{name: "resources/pods/namespaces/shop/web.json", data: obj("v1", "Pod", "kube-system", "web", "")}}, DefaultLimits, `namespace "kube-system"`},
		{"other group", []tarEntry{{name: "resources/deployments.apps/namespaces/shop/web.json", data: obj("evil.io/v1", "Deployment", "shop", "web", "")}}, DefaultLimits, `group "evil.io", not "apps"`},
		{"other version", []tarEntry{{name: "resources/deployments.apps/v1-preferredversion/namespaces/shop/web.json", data: obj("apps/v2", "Deployment", "shop", "web", "")}}, DefaultLimits, `version "v2", not "v1"`},
		{"no kind", []tarEntry{{name: "resources/pods/cluster/x.json", data: `{"apiVersion":"v1","metadata":{"name":"x"}}`}}, DefaultLimits, "no kind"},
		{"version", []tarEntry{{name: "metadata/version", data: "1.1.0; rm -rf"}}, DefaultLimits, "not a version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readTarball(bytes.NewReader(makeTarball(t, tc.entries)), tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrUnreadable) {
				t.Fatalf("err = %v, want ErrUnreadable containing %q", err, tc.want)
			}
		})
	}
	if _, err := readTarball(strings.NewReader("not gzip"), DefaultLimits); !errors.Is(err, ErrUnreadable) {
		t.Errorf("not gzip: %v", err)
	}
}
