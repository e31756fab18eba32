package maintenance

import (
	"slices"
	"testing"

	"github.com/kopia/kopia/repo/content"
)

func TestPickSparse(t *testing.T) {
	id := func(s string) content.ID {
		c, err := content.ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, c := id("aa01"), id("bb02"), id("cc03")
	for _, tc := range []struct {
		name       string
		packs      []packUse
		live, dead int64
		want       []content.ID
	}{
		{"dead within the budget: nothing copied", []packUse{{live: 95, dead: 5, ids: []content.ID{a}}}, 95, 5, nil},
		{"sparsest pack first, stop once under the budget",
			[]packUse{{live: 90, dead: 10, ids: []content.ID{a}}, {live: 20, dead: 80, ids: []content.ID{b}}, {live: 50, dead: 50, ids: []content.ID{c}}},
			160, 140, []content.ID{b, c}},
		{"every pack when all are needed",
			[]packUse{{live: 50, dead: 50, ids: []content.ID{a}}, {live: 40, dead: 60, ids: []content.ID{b}}},
			90, 110, []content.ID{b, a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pickSparse(tc.packs, tc.live, tc.dead); !slices.Equal(got, tc.want) {
				t.Errorf("pickSparse = %v, want %v", got, tc.want)
			}
		})
	}
}
