package mapping

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   Kind
		values []string
		want   Map
		err    string
	}{
		{name: "none", kind: Namespace},
		{name: "lists and repeats", kind: StorageClass, values: []string{"a:b,c:d", "e:f", ""}, want: map[string]string{"a": "b", "c": "d", "e": "f"}},
		{name: "two classes onto one", kind: StorageClass, values: []string{"gp2:gp3,io1:gp3"}, want: map[string]string{"gp2": "gp3", "io1": "gp3"}},
		{name: "dotted class", kind: StorageClass, values: []string{"standard:csi.example.com"}, want: map[string]string{"standard": "csi.example.com"}},
		{name: "no colon", kind: StorageClass, values: []string{"gp2"}, err: `--x "gp2": use old:new`},
		{name: "empty side", kind: Namespace, values: []string{"a:"}, err: `--x "a:": use old:new`},
		{name: "bad namespace", kind: Namespace, values: []string{"a:B_"}, err: `"B_" is not a valid namespace name`},
		{name: "dotted namespace", kind: Namespace, values: []string{"a:b.c"}, err: `"b.c" is not a valid namespace name`},
		{name: "bad class", kind: StorageClass, values: []string{"Fast:slow"}, err: `"Fast" is not a valid StorageClass name`},
		{name: "twice", kind: StorageClass, values: []string{"a:b", "a:c"}, err: `maps "a" twice (to "b" and "c")`},
		{name: "two namespaces onto one", kind: Namespace, values: []string{"a:c,b:c"}, err: `maps both "a" and "b" to "c"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("x", tc.kind, tc.values)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// Lookup renames what the mapping names and keeps the rest, also on a nil Map (no flag).
func TestLookup(t *testing.T) {
	m, err := Parse("namespace-mapping", Namespace, []string{"shop:stage"})
	if err != nil {
		t.Fatal(err)
	}
	var none Map
	for _, tc := range []struct {
		m        Map
		in, want string
	}{{m, "shop", "stage"}, {m, "blog", "blog"}, {m, "stage", "stage"}, {none, "shop", "shop"}} {
		if got := tc.m.Lookup(tc.in); got != tc.want {
			t.Errorf("%v.Lookup(%q) = %q, want %q", tc.m, tc.in, got, tc.want)
		}
	}
}
