package doctor

import "testing"

// TestOfAll: no "1 of 1 volumes" in the checks' details.
func TestOfAll(t *testing.T) {
	for _, tc := range []struct {
		n, all int
		want   string
	}{{1, 1, "1 volume"}, {3, 3, "3 volumes"}, {1, 2, "1 of 2 volumes"}, {0, 1, "0 of 1 volume"}} {
		if got := ofAll(tc.n, tc.all, "volume", "volumes"); got != tc.want {
			t.Errorf("ofAll(%d, %d) = %q, want %q", tc.n, tc.all, got, tc.want)
		}
	}
}
