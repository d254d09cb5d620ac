package chaos

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The checker. Each key is a register whose writes are puts (a value: one
// write id), deletes (the value "absent") and copies (any value the source
// may have held while the copy ran); before its first write a key is
// absent. A read [rs, re] may return the value of a write w when
//
//   - w was not refused (ok or unknown),
//   - w began before the read ended, and
//   - no acknowledged write w2 on the key began after w ended and ended
//     before the read began (then w2 certainly replaced w first).
//
// A write whose outcome is unknown never ends: it may take effect at any
// time after it began.
//
// A restore of the nameserver from a backup taken during [bs, be], done
// during [rs, re], rewinds the namespace: it is a write of every key
// during [rs, re] whose possible values are every value a read of the key
// during [bs, be] may return, absence included. Acknowledged writes
// before the restore may so be undone, but only to a value the key could
// hold when the backup was taken; what was acknowledged after the restore
// must be seen as always. Everything else is a violation: a read that misses
// an acknowledged write (lost data, or a stale read after the write was
// acknowledged), bytes that no write produced (corruption, a torn or
// partial write, a wrong range), a listing that misses an acknowledged key
// or shows a deleted one.

// val is one possible value of a key.
type val struct {
	absent bool
	wid    uint64
}

type write struct {
	op   *op // nil: the initial absence
	vals []val
}

func (w *write) start() time.Duration {
	if w.op == nil {
		return -1
	}
	return w.op.start
}

func (w *write) end() time.Duration {
	if w.op == nil {
		return -1
	}
	return w.op.effectiveEnd()
}

func (w *write) ok() bool { return w.op == nil || w.op.out == outOK }

type keyModel struct {
	writes []*write
	// acked writes by end, with the running maximum of their starts
	ackEnd   []time.Duration
	ackStart []time.Duration
}

// maxAckedStartBefore returns the latest start of an acknowledged write
// that ended before t.
func (k *keyModel) maxAckedStartBefore(t time.Duration) time.Duration {
	i := sort.Search(len(k.ackEnd), func(i int) bool { return k.ackEnd[i] >= t })
	if i == 0 {
		return -2
	}
	return k.ackStart[i-1]
}

type model struct {
	seed   uint64
	keys   map[string]*keyModel
	writes map[uint64]*op // write id → its put
	bySum  map[[32]byte][]uint64
}

func buildModel(seed uint64, ops []*op) *model {
	m := &model{seed: seed, keys: map[string]*keyModel{}, writes: map[uint64]*op{}, bySum: map[[32]byte][]uint64{}}
	var copies, restores []*op
	for _, o := range ops {
		if o.kind == opRestore {
			restores = append(restores, o)
			continue
		}
		if !o.kind.isWrite() {
			continue
		}
		km := m.key(o.key)
		switch o.kind {
		case opDelete:
			km.writes = append(km.writes, &write{op: o, vals: []val{{absent: true}}})
		case opCopy:
			copies = append(copies, o)
		default:
			m.writes[o.wid] = o
			m.bySum[o.sum] = append(m.bySum[o.sum], o.wid)
			km.writes = append(km.writes, &write{op: o, vals: []val{{wid: o.wid}}})
		}
	}
	// Copies and restores take their values from the model (a copy: its
	// source's during the copy; a restore: each key's during the backup),
	// and are part of it. Their values are found by rounds until none
	// grows: which writes are candidates for a read depends on times and
	// outcomes only, so the values only grow, and there are finitely many.
	type derived struct {
		w        *write
		key      string
		from, to time.Duration
		absence  bool // absence is a possible value
	}
	var ds []derived
	for _, o := range copies {
		w := &write{op: o}
		m.key(o.key).writes = append(m.key(o.key).writes, w)
		ds = append(ds, derived{w: w, key: o.src, from: o.start, to: o.effectiveEnd()})
	}
	keys := make([]string, 0, len(m.keys))
	for k := range m.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, o := range restores {
		for _, k := range keys {
			w := &write{op: o}
			m.key(k).writes = append(m.key(k).writes, w)
			ds = append(ds, derived{w: w, key: k, from: o.bstart, to: o.bend, absence: true})
		}
	}
	m.index()
	for grew := true; grew; {
		grew = false
		for _, d := range ds {
			have := make(map[val]bool, len(d.w.vals))
			for _, v := range d.w.vals {
				have[v] = true
			}
			for _, v := range m.allowed(d.key, d.from, d.to) {
				if (v.absent && !d.absence) || have[v] {
					continue
				}
				have[v] = true
				d.w.vals = append(d.w.vals, v)
				grew = true
			}
		}
	}
	return m
}

func (m *model) key(k string) *keyModel {
	km := m.keys[k]
	if km == nil {
		km = &keyModel{writes: []*write{{vals: []val{{absent: true}}}}}
		m.keys[k] = km
	}
	return km
}

func (m *model) index() {
	for _, km := range m.keys {
		var acked []*write
		for _, w := range km.writes {
			if w.ok() {
				acked = append(acked, w)
			}
		}
		sort.Slice(acked, func(i, j int) bool { return acked[i].end() < acked[j].end() })
		km.ackEnd, km.ackStart = km.ackEnd[:0], km.ackStart[:0]
		mx := time.Duration(-2)
		for _, w := range acked {
			mx = max(mx, w.start())
			km.ackEnd = append(km.ackEnd, w.end())
			km.ackStart = append(km.ackStart, mx)
		}
	}
}

// candidates returns the writes whose values a read of key during
// [rs, re] may return.
func (m *model) candidates(key string, rs, re time.Duration) []*write {
	km := m.key(key)
	floor := km.maxAckedStartBefore(rs)
	var out []*write
	for _, w := range km.writes {
		if w.op != nil && w.op.out == outFailed {
			continue
		}
		if w.start() >= re || floor > w.end() {
			continue
		}
		out = append(out, w)
	}
	return out
}

func (m *model) allowed(key string, rs, re time.Duration) []val {
	var out []val
	for _, w := range m.candidates(key, rs, re) {
		out = append(out, w.vals...)
	}
	return out
}

// violation is one thing the history shows that must not happen.
type violation struct {
	class string // "lost", "wrong-bytes", "list", "unreadable"
	read  *op
	msg   string
}

// check runs every read of the history against the model.
func (m *model) check(ops []*op) []violation {
	var vs []violation
	for _, o := range ops {
		switch o.kind {
		case opGet, opFinal, opRange:
			if v, bad := m.checkRead(o); bad {
				vs = append(vs, v)
			}
		case opList:
			if o.out == outOK {
				vs = append(vs, m.checkList(o)...)
			}
		}
	}
	return vs
}

func (m *model) checkRead(o *op) (violation, bool) {
	allowed := m.allowed(o.key, o.start, o.end)
	bad := func(class, format string, args ...any) (violation, bool) {
		return violation{class: class, read: o, msg: fmt.Sprintf(format, args...) + "\n" + m.explain(o.key, o.start, o.end)}, true
	}
	switch {
	case o.absent:
		for _, v := range allowed {
			if v.absent {
				return violation{}, false
			}
		}
		return bad("lost", "the read found no object, but an acknowledged write must be visible")
	case o.out == outUnknown || o.out == outFailed:
		if o.kind == opFinal {
			return bad("unreadable", "the read-back after the nemesis stopped failed: %s", o.err)
		}
		return violation{}, false
	case o.badRange:
		for _, v := range allowed {
			if !v.absent && m.writes[v.wid].size <= o.off {
				return violation{}, false
			}
		}
		return bad("lost", "416 for a range from %d, but every allowed value is longer", o.off)
	case o.kind == opRange:
		for _, v := range allowed {
			if !v.absent && bytes.Equal(newBody(m.seed, v.wid, m.writes[v.wid].size).slice(o.off, o.n), o.gotBytes) {
				return violation{}, false
			}
		}
		for wid, w := range m.writes {
			if w.key == o.key && bytes.Equal(newBody(m.seed, wid, w.size).slice(o.off, o.n), o.gotBytes) {
				return bad("lost", "range [%d,+%d) returned %d bytes of write %016x, which is not allowed here", o.off, o.n, len(o.gotBytes), wid)
			}
		}
		return bad("wrong-bytes", "range [%d,+%d) returned %d bytes that no write of the key holds there (start %q)",
			o.off, o.n, len(o.gotBytes), head(o.gotBytes))
	default:
		var match []uint64
		for _, wid := range m.bySum[o.gotSum] {
			if m.writes[wid].size == o.gotLen {
				match = append(match, wid)
			}
		}
		for _, v := range allowed {
			for _, wid := range match {
				if !v.absent && v.wid == wid {
					return violation{}, false
				}
			}
		}
		if len(match) == 0 {
			return bad("wrong-bytes", "read %d bytes (sha256 %x, start %q) that no write produced", o.gotLen, o.gotSum[:8], head(o.gotHead))
		}
		if w := m.writes[match[0]]; w.out == outFailed {
			return bad("refused-applied", "read the bytes of %v, whose refusal was definite (4xx): it took effect all the same", w)
		}
		return bad("lost", "read write %016x (%d bytes), which is not allowed here (an acknowledged later write is missing)", match[0], o.gotLen)
	}
}

func (m *model) checkList(o *op) []violation {
	var vs []violation
	for key := range m.keys {
		if !strings.HasPrefix(key, o.listFirst) {
			continue
		}
		allowed := m.allowed(key, o.start, o.end)
		size, listed := o.listed[key]
		okay := false
		for _, v := range allowed {
			if (listed && !v.absent && m.writes[v.wid].size == size) || (!listed && v.absent) {
				okay = true
				break
			}
		}
		if !okay {
			what := "missing from the listing"
			if listed {
				what = fmt.Sprintf("listed with %d bytes", size)
				for wid, w := range m.writes {
					if w.key == key && w.size == size {
						what += fmt.Sprintf(" (the size of %v)", m.writes[wid])
					}
				}
			}
			vs = append(vs, violation{class: "list", read: o, msg: fmt.Sprintf("key %q %s, not allowed here\n%s", key, what, m.explain(key, o.start, o.end))})
		}
	}
	return vs
}

// explain lists the writes a read of key may see, and the last acked
// writes before it.
func (m *model) explain(key string, rs, re time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "    allowed for a read of %q during [%v..%v]:\n", key, rs.Round(time.Millisecond), re.Round(time.Millisecond))
	for _, w := range m.candidates(key, rs, re) {
		if w.op == nil {
			b.WriteString("      (initial absence)\n")
			continue
		}
		fmt.Fprintf(&b, "      %v\n", w.op)
	}
	n := 0
	km := m.key(key)
	for i := len(km.writes) - 1; i >= 0 && n < 6; i-- {
		w := km.writes[i]
		if w.op != nil && w.op.start < re && w.op.out == outOK {
			if n == 0 {
				b.WriteString("    latest acknowledged writes before it:\n")
			}
			fmt.Fprintf(&b, "      %v\n", w.op)
			n++
		}
	}
	return b.String()
}

func head(b []byte) string {
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// unknownFate says how each write with an unknown outcome resolved: seen
// by a read (applied), never seen (absent, or replaced before any read),
// or visible in the read-back at the end.
func (m *model) unknownFate(ops []*op) map[string]int {
	seen := map[uint64]bool{}
	final := map[uint64]bool{}
	for _, o := range ops {
		if (o.kind == opGet || o.kind == opFinal) && o.out == outOK {
			for _, wid := range m.bySum[o.gotSum] {
				if m.writes[wid].size == o.gotLen && m.writes[wid].key == o.key {
					seen[wid] = true
					if o.kind == opFinal {
						final[wid] = true
					}
				}
			}
		}
	}
	fate := map[string]int{}
	for _, o := range ops {
		if !o.kind.isWrite() || o.out != outUnknown {
			continue
		}
		switch {
		case o.kind == opDelete || o.kind == opCopy:
			fate[string(o.kind)+": not traced (no value of its own)"]++
		case final[o.wid]:
			fate[string(o.kind)+": applied, the current value at the end"]++
		case seen[o.wid]:
			fate[string(o.kind)+": applied, seen by a read, later replaced"]++
		default:
			fate[string(o.kind)+": never seen (absent, or replaced before any read)"]++
		}
	}
	return fate
}
