package repair

import (
	"testing"

	"depot"
)

func refs(sizes ...int64) []needleRef {
	out := make([]needleRef, len(sizes))
	for i, s := range sizes {
		out[i] = needleRef{id: depot.NeedleID(10 * (i + 1)), size: s}
	}
	return out
}

func TestSplit(t *testing.T) {
	many := make([]int64, 100)
	for i := range many {
		many[i] = int64(1000 + 37*i)
	}
	for _, tc := range []struct {
		name  string
		todo  []needleRef
		n     int
		parts int
	}{
		{"one stream", refs(many...), 1, 1},
		{"four streams", refs(many...), 4, 4},
		{"few needles", refs(many[:40]...), 4, 2},
		{"fewer than a part", refs(many[:5]...), 4, 1},
		{"one needle", refs(7), 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parts := split(tc.todo, tc.n)
			if len(parts) != tc.parts {
				t.Fatalf("%d parts, want %d", len(parts), tc.parts)
			}
			var all []needleRef
			var total int64
			for _, p := range parts {
				if len(p) == 0 {
					t.Fatal("empty part")
				}
				all = append(all, p...)
				for _, r := range p {
					total += r.size
				}
			}
			if len(all) != len(tc.todo) {
				t.Fatalf("parts hold %d needles, want %d", len(all), len(tc.todo))
			}
			for i := range all {
				if all[i] != tc.todo[i] {
					t.Fatalf("needle %d is %v, want %v: parts must be consecutive, in order", i, all[i], tc.todo[i])
				}
			}
			for _, p := range parts {
				var b int64
				for _, r := range p {
					b += r.size
				}
				// About equal: no part is more than a needle off its share.
				if share := total / int64(len(parts)); b > share+5000 || (len(parts) > 1 && b < share-5000) {
					t.Fatalf("part of %d bytes, share %d", b, share)
				}
			}
		})
	}
}

func TestCursor(t *testing.T) {
	parts := [][]needleRef{refs(1, 1, 1), refs(1, 1), refs(1)}
	// Part ids: 10 20 30 | 10 20 | 10; give the later parts their own ids.
	for p := range parts {
		for i := range parts[p] {
			parts[p][i].id += depot.NeedleID(100 * p)
		}
	}
	for _, tc := range []struct {
		done []int
		want depot.NeedleID
	}{
		{[]int{0, 0, 0}, 5},
		{[]int{0, 2, 1}, 5},   // later parts done: the cursor waits for the first
		{[]int{2, 2, 1}, 20},  // within the first part
		{[]int{3, 0, 1}, 30},  // the first part done, the second not begun
		{[]int{3, 1, 0}, 110}, // into the second
		{[]int{3, 2, 0}, 120}, // the second done, the third not begun
		{[]int{3, 2, 1}, 210}, // all done
	} {
		if got := cursor(5, parts, tc.done); got != tc.want {
			t.Errorf("done %v: cursor %d, want %d", tc.done, got, tc.want)
		}
	}
}
