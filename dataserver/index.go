package dataserver

import "depot"

// loc is where a needle's latest record lives, packed into 64 bits so that
// an index entry costs 16 bytes:
//
//	bits  0..35  record offset / 8 (records are 8-byte aligned; 512 GiB max)
//	bits 36..62  needle size in bytes (27 bits; 128 MiB - 1 max)
//	bit  63      tombstone: the latest record deletes the needle
type loc uint64

func makeLoc(off, size int64, deleted bool) loc {
	l := loc(uint64(off)/recordAlign) | loc(uint64(size))<<36
	if deleted {
		l |= 1 << 63
	}
	return l
}

func (l loc) offset() int64 { return int64(l&(1<<36-1)) * recordAlign }
func (l loc) size() int64   { return int64(l >> 36 & (1<<27 - 1)) }
func (l loc) deleted() bool { return l>>63 != 0 }
func (l loc) valid() bool   { return l != 0 } // offset 0 is the superblock, never a record

// index maps needle ids to locations: an open-addressing hash table with
// linear probing, a power-of-two number of 16-byte slots and a load factor
// kept between 0.4 and 0.8, so a needle costs 20 to 40 bytes. Needles are
// never removed (a delete stores a tombstone location), which keeps linear
// probing simple. Id 0 marks an empty slot and is kept aside. It is not safe
// for concurrent use; shardFile guards it.
type index struct {
	keys    []uint64
	vals    []loc
	n       int // entries in keys/vals
	zero    loc // location of needle 0, if any
	hasZero bool
	// top is the highest id ever put: the nameserver keeps its needle
	// lease counter above it after a restore (FileStatus.MaxNeedle).
	top depot.NeedleID
}

func newIndex(hint int) *index {
	c := 16
	for c*4 < hint*5 {
		c *= 2
	}
	return &index{keys: make([]uint64, c), vals: make([]loc, c)}
}

func hash64(x uint64) uint64 { // splitmix64 finaliser
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Len returns the number of needles (live or deleted) in the index.
func (x *index) Len() int {
	if x.hasZero {
		return x.n + 1
	}
	return x.n
}

func (x *index) get(id depot.NeedleID) (loc, bool) {
	if id == 0 {
		return x.zero, x.hasZero
	}
	mask := uint64(len(x.keys) - 1)
	for i := hash64(uint64(id)) & mask; ; i = (i + 1) & mask {
		switch x.keys[i] {
		case uint64(id):
			return x.vals[i], true
		case 0:
			return 0, false
		}
	}
}

// put sets id's location and returns the previous one, if any.
func (x *index) put(id depot.NeedleID, l loc) (old loc, existed bool) {
	x.top = max(x.top, id)
	if id == 0 {
		old, existed = x.zero, x.hasZero
		x.zero, x.hasZero = l, true
		return old, existed
	}
	if (x.n+1)*5 > len(x.keys)*4 {
		x.grow()
	}
	mask := uint64(len(x.keys) - 1)
	for i := hash64(uint64(id)) & mask; ; i = (i + 1) & mask {
		switch x.keys[i] {
		case uint64(id):
			old = x.vals[i]
			x.vals[i] = l
			return old, true
		case 0:
			x.keys[i], x.vals[i] = uint64(id), l
			x.n++
			return 0, false
		}
	}
}

func (x *index) grow() {
	keys, vals := x.keys, x.vals
	x.keys = make([]uint64, 2*len(keys))
	x.vals = make([]loc, 2*len(vals))
	mask := uint64(len(x.keys) - 1)
	for j, k := range keys {
		if k == 0 {
			continue
		}
		i := hash64(k) & mask
		for x.keys[i] != 0 {
			i = (i + 1) & mask
		}
		x.keys[i], x.vals[i] = k, vals[j]
	}
}

// each calls fn for every entry, in no particular order.
func (x *index) each(fn func(id depot.NeedleID, l loc)) {
	if x.hasZero {
		fn(0, x.zero)
	}
	for i, k := range x.keys {
		if k != 0 {
			fn(depot.NeedleID(k), x.vals[i])
		}
	}
}
