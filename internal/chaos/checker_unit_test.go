package chaos

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"
	"time"
)

// The checker's own tests: small hand-made histories, each with the one
// violation (or the absence of one) it must report.

const testSeed = 42

func s(n int) time.Duration { return time.Duration(n) * time.Second }

type hist struct{ ops []*op }

func (h *hist) add(o *op) *op {
	o.seq = len(h.ops)
	h.ops = append(h.ops, o)
	return o
}

func (h *hist) put(key string, wid uint64, size int64, start, end int, out outcome) *op {
	g := newBody(testSeed, wid, size)
	return h.add(&op{kind: opPut, key: key, wid: wid, size: size, sum: g.sum(), start: s(start), end: s(end), out: out})
}

func (h *hist) del(key string, start, end int, out outcome) *op {
	return h.add(&op{kind: opDelete, key: key, start: s(start), end: s(end), out: out})
}

// get records a whole read that returned write wid's body (0: absent).
func (h *hist) get(key string, wid uint64, size int64, start, end int) *op {
	o := &op{kind: opGet, key: key, start: s(start), end: s(end), out: outOK, n: -1}
	if wid == 0 {
		o.absent, o.out = true, outFailed
	} else {
		b := newBody(testSeed, wid, size).slice(0, size)
		o.gotLen, o.gotSum, o.gotHead = size, sha256.Sum256(b), b[:min(64, len(b))]
	}
	return h.add(o)
}

func (h *hist) check() []violation {
	return buildModel(testSeed, h.ops).check(h.ops)
}

func wantClasses(t *testing.T, vs []violation, want ...string) {
	t.Helper()
	var got []string
	for _, v := range vs {
		got = append(got, v.class)
	}
	if len(got) != len(want) {
		t.Fatalf("violations %v, want %v:\n%v", got, want, vs)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("violations %v, want %v", got, want)
		}
	}
}

func TestChecker_ReadAfterWrite(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.get("k", 1, 100, 2, 3) // sees it: fine
	h.put("k", 2, 50, 4, 5, outOK)
	h.get("k", 1, 100, 6, 7) // the older value after the newer was acked
	wantClasses(t, h.check(), "lost")
}

func TestChecker_ConcurrentWriteMayBeEither(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 2, 5, outOK)
	h.get("k", 1, 100, 3, 4) // overlaps the second put: either value
	h.get("k", 2, 50, 3, 4)
	wantClasses(t, h.check())
}

func TestChecker_LostAckedWrite(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.get("k", 0, 0, 2, 3) // absent: lost
	wantClasses(t, h.check(), "lost")
}

func TestChecker_UnknownWriteMayApplyLate(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 10, 2, 3, outUnknown)
	h.get("k", 1, 100, 4, 5)
	h.get("k", 2, 10, 6, 7) // the unknown one took effect late
	h.get("k", 1, 100, 8, 9)
	// Jepsen's semantics: an unknown write may take effect at any
	// time after it began, once; reading 1 after 2 would need a second
	// apply. The register check is per read, not a full linearization,
	// so it accepts this history: it catches lost and invented data,
	// not every reordering.
	wantClasses(t, h.check())
}

func TestChecker_RefusedWriteMustNotApply(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 10, 2, 3, outFailed)
	h.get("k", 2, 10, 4, 5)
	wantClasses(t, h.check(), "refused-applied")
}

func TestChecker_DeleteThenRead(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.del("k", 2, 3, outOK)
	h.get("k", 0, 0, 4, 5)
	h.get("k", 1, 100, 6, 7) // resurrected
	wantClasses(t, h.check(), "lost")
}

func TestChecker_WrongBytes(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	o := h.get("k", 1, 100, 2, 3)
	b := newBody(testSeed, 1, 100).slice(0, 100)
	b[50] ^= 1
	o.gotSum = sha256.Sum256(b)
	// A torn write: half of write 2's body.
	h.put("k", 2, 100, 4, 5, outUnknown)
	o2 := h.get("k", 0, 0, 6, 7)
	o2.absent, o2.out = false, outOK
	half := newBody(testSeed, 2, 100).slice(0, 50)
	o2.gotLen, o2.gotSum = 50, sha256.Sum256(half)
	wantClasses(t, h.check(), "wrong-bytes", "wrong-bytes")
}

func TestChecker_Range(t *testing.T) {
	var h hist
	h.put("k", 1, 10000, 0, 1, outOK)
	good := h.add(&op{kind: opRange, key: "k", start: s(2), end: s(3), out: outOK, off: 5000, n: 100})
	good.gotBytes = newBody(testSeed, 1, 10000).slice(5000, 100)
	shifted := h.add(&op{kind: opRange, key: "k", start: s(2), end: s(3), out: outOK, off: 5000, n: 100})
	shifted.gotBytes = newBody(testSeed, 1, 10000).slice(5001, 100)
	tail := h.add(&op{kind: opRange, key: "k", start: s(2), end: s(3), out: outOK, off: 9950, n: 100})
	tail.gotBytes = newBody(testSeed, 1, 10000).slice(9950, 100) // 50 bytes: cut at the end
	past := h.add(&op{kind: opRange, key: "k", start: s(2), end: s(3), out: outOK, off: 20000, n: 100, badRange: true})
	_ = past
	wantClasses(t, h.check(), "wrong-bytes")
}

func TestChecker_ListAfterWrite(t *testing.T) {
	var h hist
	h.put("k/1", 1, 100, 0, 1, outOK)
	h.put("k/2", 2, 100, 0, 1, outOK)
	h.del("k/2", 2, 3, outOK)
	h.add(&op{kind: opList, key: "k/", listFirst: "k/", start: s(4), end: s(5), out: outOK,
		listed: map[string]int64{"k/1": 100}})
	h.add(&op{kind: opList, key: "k/", listFirst: "k/", start: s(4), end: s(5), out: outOK,
		listed: map[string]int64{"k/2": 100}}) // misses k/1, shows the deleted k/2
	wantClasses(t, h.check(), "list", "list")
}

func TestChecker_Copy(t *testing.T) {
	var h hist
	h.put("k/1", 1, 100, 0, 1, outOK)
	h.add(&op{kind: opCopy, key: "c/1", src: "k/1", start: s(2), end: s(3), out: outOK})
	h.get("c/1", 1, 100, 4, 5) // the source's value: fine
	h.put("k/1", 2, 100, 6, 7, outOK)
	h.get("c/1", 2, 100, 8, 9) // a value the source had only after the copy
	wantClasses(t, h.check(), "lost")
}

func TestChecker_FinalReadMustSucceed(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.add(&op{kind: opFinal, key: "k", start: s(2), end: s(3), out: outUnknown, err: "503", n: -1})
	wantClasses(t, h.check(), "unreadable")
}

func TestBody_Deterministic(t *testing.T) {
	for _, size := range []int64{0, 5, 31, 4096, 4097, 100000} {
		g := newBody(testSeed, 7, size)
		all, err := io.ReadAll(g.reader())
		if err != nil || int64(len(all)) != size {
			t.Fatalf("size %d: read %d bytes, %v", size, len(all), err)
		}
		if sha256.Sum256(all) != g.sum() {
			t.Fatalf("size %d: sum differs from the streamed bytes", size)
		}
		for _, r := range [][2]int64{{0, 10}, {3, 5000}, {size / 2, 77}, {size - 1, 10}} {
			if r[0] < 0 || r[0] >= size {
				continue
			}
			want := all[r[0]:min(size, r[0]+r[1])]
			if got := g.slice(r[0], r[1]); !bytes.Equal(got, want) {
				t.Fatalf("size %d: slice %v differs", size, r)
			}
		}
		if size >= 16 && !bytes.HasPrefix(all, []byte("0000000000000007")) {
			t.Fatalf("size %d: body does not start with its write id: %q", size, head(all))
		}
	}
	if newBody(testSeed, 7, 1000).sum() == newBody(testSeed, 8, 1000).sum() {
		t.Fatal("two writes of one size have the same body")
	}
}

// restore records a restore during [start, end] of a backup taken during
// [bstart, bend].
func (h *hist) restore(bstart, bend, start, end int, out outcome) *op {
	return h.add(&op{kind: opRestore, start: s(start), end: s(end), bstart: s(bstart), bend: s(bend), out: out})
}

func TestChecker_RestoreBringsBackAnOldValue(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 4, 5, outOK) // after the backup
	h.del("d", 0, 1, outOK)
	h.put("d", 3, 70, 4, 5, outOK) // a key absent at the backup
	h.restore(2, 3, 6, 7, outOK)
	h.get("k", 1, 100, 8, 9) // the backup's value: fine
	h.get("d", 0, 0, 8, 9)   // absent, as in the backup: fine
	wantClasses(t, h.check())
}

func TestChecker_RestoreOfAValueNeverCurrentInTheBackup(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 2, 3, outOK)
	h.put("k", 3, 60, 8, 9, outOK) // after the backup
	h.restore(4, 5, 10, 11, outOK)
	h.get("k", 1, 100, 12, 13) // replaced before the backup: not allowed
	h.get("k", 3, 60, 14, 15)  // written after the backup, rewound: not allowed
	h.get("k", 2, 50, 16, 17)  // the backup's: fine
	wantClasses(t, h.check(), "lost", "lost")
}

func TestChecker_RestoreWindowAllowsConcurrentValues(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 2, 5, outOK) // during the backup: in it or not
	h.restore(3, 4, 6, 7, outOK)
	h.get("k", 1, 100, 8, 9)
	h.get("k", 2, 50, 10, 11)
	wantClasses(t, h.check())
}

func TestChecker_WriteAckedAfterRestoreMustBeSeen(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.restore(2, 3, 4, 5, outOK)
	h.put("k", 2, 50, 6, 7, outOK)
	h.get("k", 1, 100, 8, 9) // the restore's value after a later acked write
	h.get("k", 0, 0, 10, 11) // absent after the acked write
	wantClasses(t, h.check(), "lost", "lost")
}

func TestChecker_ConcurrentRestoreMayUndoAWrite(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.restore(2, 3, 4, 8, outOK)
	h.put("k", 2, 50, 5, 6, outOK) // acked during the restore
	h.get("k", 1, 100, 9, 10)      // the restore came last: fine
	wantClasses(t, h.check())
}

func TestChecker_FailedRestoreChangesNothing(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 4, 5, outOK)
	h.restore(2, 3, 6, 7, outFailed)
	h.get("k", 1, 100, 8, 9) // a refused restore brought nothing back
	wantClasses(t, h.check(), "lost")
}

func TestChecker_RestoreOfARestore(t *testing.T) {
	var h hist
	h.put("k", 1, 100, 0, 1, outOK)
	h.put("k", 2, 50, 4, 5, outOK)
	h.restore(2, 3, 6, 7, outOK)   // back to 1
	h.restore(8, 9, 12, 13, outOK) // a backup taken after the first restore: 1
	h.put("k", 3, 60, 10, 11, outOK)
	h.get("k", 1, 100, 14, 15)
	h.get("k", 2, 50, 16, 17) // 2 was current in neither backup
	wantClasses(t, h.check(), "lost")
}

func TestChecker_RestoreAndCopy(t *testing.T) {
	var h hist
	h.put("k/1", 1, 100, 0, 1, outOK)
	h.add(&op{kind: opCopy, key: "c/1", src: "k/1", start: s(2), end: s(3), out: outOK})
	h.put("k/1", 2, 50, 4, 5, outOK)
	h.add(&op{kind: opCopy, key: "c/1", src: "k/1", start: s(6), end: s(7), out: outOK})
	h.restore(3, 4, 8, 9, outOK) // c/1 held the first copy, of write 1
	h.get("c/1", 1, 100, 10, 11)
	h.get("c/1", 2, 50, 12, 13) // the second copy is rewound
	wantClasses(t, h.check(), "lost")
}

func TestChecker_ListAfterRestore(t *testing.T) {
	var h hist
	h.put("k/1", 1, 100, 0, 1, outOK)
	h.put("k/2", 2, 50, 4, 5, outOK) // after the backup
	h.restore(2, 3, 6, 7, outOK)
	h.add(&op{kind: opList, key: "k/", listFirst: "k/", start: s(8), end: s(9), out: outOK,
		listed: map[string]int64{"k/1": 100}})
	h.add(&op{kind: opList, key: "k/", listFirst: "k/", start: s(8), end: s(9), out: outOK,
		listed: map[string]int64{"k/1": 100, "k/2": 50}}) // shows the rewound k/2
	wantClasses(t, h.check(), "list")
}
