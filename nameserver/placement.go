package nameserver

import (
	"cmp"
	"fmt"
	"slices"

	"depot"
)

// candidate is a dataserver that placement may use.
type candidate struct {
	ID      string
	Addr    string
	Rack    string
	Free    uint64
	Volumes int // volumes it is already a member of
}

// score orders candidates: free space per hosted volume, so that placement
// prefers free space but does not pile every new volume onto the same
// emptiest nodes before their free space (reported by gossip) moves.
func (c candidate) score() float64 { return float64(c.Free) / float64(c.Volumes+1) }

func better(a, b candidate) int {
	if c := cmp.Compare(b.score(), a.score()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Volumes, b.Volumes); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// place chooses k+m distinct dataservers among alive ones for a new volume
// and returns them as its members, shard index i on the i-th.
//
// When the candidates name racks, members are taken round robin across the
// racks (racks ordered by their best candidate), best candidate first within
// each rack, so a volume spans as many racks as possible; candidates without
// a rack form one rack of their own. Without racks, the best k+m candidates
// are taken. It returns an error wrapping depot.ErrNotEnoughNodes when there
// are fewer than k+m candidates.
func place(k, m int, alive []candidate) ([]depot.Member, error) {
	n := k + m
	if len(alive) < n {
		return nil, fmt.Errorf("%w: a %d+%d volume needs %d alive dataservers, %d alive",
			depot.ErrNotEnoughNodes, k, m, n, len(alive))
	}
	byRack := make(map[string][]candidate)
	for _, c := range alive {
		byRack[c.Rack] = append(byRack[c.Rack], c)
	}
	racks := make([][]candidate, 0, len(byRack))
	for _, cs := range byRack {
		slices.SortFunc(cs, better)
		racks = append(racks, cs)
	}
	slices.SortFunc(racks, func(a, b []candidate) int { return better(a[0], b[0]) })

	members := make([]depot.Member, 0, n)
	for round := 0; len(members) < n; round++ {
		for _, cs := range racks {
			if round < len(cs) && len(members) < n {
				c := cs[round]
				members = append(members, depot.Member{Index: len(members), Node: c.ID, Addr: c.Addr})
			}
		}
	}
	return members, nil
}
