package chaos

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"depot"
)

// The nemesis injects one fault at a time, at random, from a list of
// fault kinds; faults that last (a dead or paused process) end on their
// own after a while, so several overlap. It keeps within what depot
// promises to survive:
//
//   - at most m dataservers impaired at once (killed, paused, holding
//     injected damage not yet repaired, or removed and not yet rebuilt);
//   - at most one destructive fault (bit flip, truncation, removal) not yet
//     repaired: a write acknowledged on k+1 members survives one lost
//     shard, not two;
//   - at most one nameserver of three down or paused (raft's majority);
//   - at most one gateway of two down.
//
// A fault kind whose precondition does not hold now is skipped. New kinds
// go into faultKinds.

type faultKind struct {
	name   string
	weight int
	// inject applies the fault; it returns what it did, or "" when the
	// fault cannot apply now.
	inject func(n *nemesis, ctx context.Context, rng *rand.Rand) (string, error)
}

func faultKinds() []faultKind {
	return []faultKind{
		{"kill-dataservers", 6, (*nemesis).killDataservers},
		{"pause-dataserver", 2, (*nemesis).pauseDataserver},
		{"kill-ns-leader", 2, (*nemesis).killLeader},
		{"kill-ns-follower", 2, (*nemesis).killFollower},
		{"pause-ns-leader", 1, (*nemesis).pauseLeader},
		{"kill-gateway", 2, (*nemesis).killGateway},
		{"partition-dataserver", 2, (*nemesis).partitionDataserver},
		{"disk-full", 1, (*nemesis).diskFull},
		{"bitflip", 2, (*nemesis).bitflip},
		{"truncate", 1, (*nemesis).truncate},
		{"remove-dataserver", 1, (*nemesis).removeDataserver},
		{"add-dataserver", 1, (*nemesis).addDataserver},
		{"drain-dataserver", 1, (*nemesis).drainDataserver},
		{"backup", 2, (*nemesis).backup},
		{"restore", 4, (*nemesis).restore}, // applies only within maxBackupAge of a backup
	}
}

// damage is a destructive fault until repair undid it.
type damage struct {
	kind     string
	ds       *node
	vol      depot.VolumeID
	idx      int
	needles  []needleRef
	at       time.Time
	resolved time.Time
	note     string
}

type needleRef struct {
	id     uint64
	cookie uint32
}

type nemesis struct {
	c    *cluster
	m    int
	log  func(string, ...any)
	wg   sync.WaitGroup
	mu   sync.Mutex
	dmg  []*damage
	hits map[string]int
	// lastEnd is when the last fault ended (a process back, a pause over,
	// damage injected).
	lastEnd time.Time
	maxDS   int
	only    []string // fault kinds to draw from; empty: all
	// the dataserver being drained, and the drains done
	draining *node
	drainAt  time.Time
	drained  []string
	// catch-up of restarted dataservers: one measured at a time
	measuring bool
	mwg       sync.WaitGroup
	catchUps  []time.Duration
	behind    []string // restarts not caught up within catchUpLimit
	// backups taken (GET /backup), and the restores done
	h        *history
	backups  []backupFile
	restores []string
}

// backupFile is a backup the nemesis took: where it is, and the interval
// of the request, on the history's clock and on the wall clock.
type backupFile struct {
	path         string
	bstart, bend time.Duration
	at           time.Time
}

// maxBackupAge is the age of the oldest backup the nemesis restores,
// counted from the start of its request: well inside deleteGrace, so
// that a restore is whole and every value the checker allows is there.
const maxBackupAge = 30 * time.Second

// maxRestores bounds the restores of one run: each one rewinds the
// namespace, and the run must still show acknowledged writes holding.
const maxRestores = 3

// catchUpLimit bounds one catch-up measurement.
const catchUpLimit = 60 * time.Second

// measureCatchUp measures how long a restarted dataserver takes to hold
// every needle its volumes' other members all hold (the writes it missed
// while down), unless another measurement is under way.
func (n *nemesis) measureCatchUp(d *node) {
	n.mu.Lock()
	if n.measuring || d.getState() != stateUp {
		n.mu.Unlock()
		return
	}
	n.measuring = true
	n.mu.Unlock()
	start := time.Now()
	n.mwg.Go(func() {
		defer func() {
			n.mu.Lock()
			n.measuring = false
			n.mu.Unlock()
		}()
		for time.Since(start) < catchUpLimit {
			missing, err := n.c.missingOn(d)
			if err == nil && missing == 0 {
				n.mu.Lock()
				n.catchUps = append(n.catchUps, time.Since(start))
				n.mu.Unlock()
				return
			}
			if d.getState() != stateUp {
				return // killed again: no measurement
			}
			time.Sleep(time.Second) // poll interval
		}
		missing, _ := n.c.missingOn(d)
		n.mu.Lock()
		n.behind = append(n.behind, fmt.Sprintf("%s still lacked %d needle shard(s) %v after its restart", d.id, missing, catchUpLimit))
		n.mu.Unlock()
	})
}

func newNemesis(c *cluster, m int, log func(string, ...any)) *nemesis {
	return &nemesis{c: c, m: m, log: log, hits: map[string]int{}, maxDS: len(c.nodes("dataserver")) + 3}
}

// run injects faults until ctx ends, then ends every lasting fault and
// waits for the processes to be back.
func (n *nemesis) run(ctx context.Context, rng *rand.Rand, every time.Duration) {
	var kinds []faultKind
	for _, k := range faultKinds() {
		if len(n.only) == 0 || slices.Contains(n.only, k.name) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		n.log("nemesis: no fault kind selected")
		return
	}
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(every/2 + time.Duration(rng.Int64N(int64(every)))):
		}
		if ctx.Err() != nil {
			break
		}
		n.checkDamage(ctx)
		// Draw kinds by weight until one applies now.
		left := slices.Clone(kinds)
		for len(left) > 0 {
			sum := 0
			for _, k := range left {
				sum += k.weight
			}
			r, i := rng.IntN(sum), 0
			for ; r >= left[i].weight; i++ {
				r -= left[i].weight
			}
			k := left[i]
			left = slices.Delete(left, i, i+1)
			what, err := k.inject(n, ctx, rng)
			if err != nil {
				n.log("nemesis: %s: %v", k.name, err)
			}
			if what != "" {
				n.mu.Lock()
				n.hits[k.name]++
				n.mu.Unlock()
				n.log("nemesis: %s", what)
				break
			}
		}
	}
	n.wg.Wait()
}

// later runs restore after d, or at once when ctx ends.
func (n *nemesis) later(ctx context.Context, d time.Duration, restore func()) {
	n.wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		restore()
		n.mu.Lock()
		n.lastEnd = time.Now()
		n.mu.Unlock()
	})
}

// restart starts a killed node again, retrying: a restart that fails is
// a finding too, but the run goes on.
func (n *nemesis) restart(nd *node) {
	for attempt := 1; attempt <= 5; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := n.c.start(ctx, nd)
		cancel()
		if err == nil || errors.Is(err, errNotDown) {
			return // up, or another restore started it
		}
		n.log("nemesis: restart %s (attempt %d): %v\n%s", nd.id, attempt, err, nd.tail(15))
		time.Sleep(time.Second)
	}
}

// impaired counts dataservers down, paused, or holding unrepaired damage,
// and reports whether destructive damage is outstanding.
func (n *nemesis) impaired() (int, bool) {
	bad := map[*node]bool{}
	for _, d := range n.c.nodes("dataserver") {
		if st := d.getState(); st == stateDown || st == statePaused || st == stateStarting || d.isCut() {
			bad[d] = true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	destructive := false
	for _, d := range n.dmg {
		if d.resolved.IsZero() {
			bad[d.ds] = true
			destructive = true
		}
	}
	return len(bad), destructive
}

func upNodes(nodes []*node) []*node {
	var out []*node
	for _, d := range nodes {
		if d.getState() == stateUp {
			out = append(out, d)
		}
	}
	return out
}

func allUp(nodes []*node) bool { return len(upNodes(nodes)) == len(nodes) }

func (n *nemesis) killDataservers(ctx context.Context, rng *rand.Rand) (string, error) {
	imp, _ := n.impaired()
	up := upNodes(n.c.nodes("dataserver"))
	if imp >= n.m || len(up) == 0 {
		return "", nil
	}
	count := 1 + rng.IntN(n.m-imp)
	rng.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	var ids []string
	for _, d := range up[:min(count, len(up))] {
		n.c.kill(d)
		ids = append(ids, d.id)
		// Mostly short outages; a quarter outlast the repair grace, so a
		// rebuild starts and the member comes back during it.
		down := time.Duration(1+rng.IntN(6)) * time.Second
		if rng.IntN(4) == 0 {
			down = repairAfter + time.Duration(2+rng.IntN(8))*time.Second
		}
		n.later(ctx, down, func() {
			n.restart(d)
			n.measureCatchUp(d)
		})
	}
	return fmt.Sprintf("SIGKILL dataserver(s) %s", strings.Join(ids, ",")), nil
}

func (n *nemesis) pauseDataserver(ctx context.Context, rng *rand.Rand) (string, error) {
	imp, _ := n.impaired()
	up := upNodes(n.c.nodes("dataserver"))
	if imp >= n.m || len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	if err := n.c.pause(d); err != nil {
		return "", err
	}
	// Longer than the repair grace: the nameserver starts a rebuild, then
	// the member answers again.
	dur := repairAfter + time.Duration(2+rng.IntN(8))*time.Second
	n.later(ctx, dur, func() { n.c.resume(d) })
	return fmt.Sprintf("SIGSTOP dataserver %s for %v", d.id, dur), nil
}

// partitionDataserver cuts a dataserver's HTTP off from every other role
// (its proxy answers nothing) while its gossip goes on: alive to the
// failure detector, unreachable to writers, readers and repair.
func (n *nemesis) partitionDataserver(ctx context.Context, rng *rand.Rand) (string, error) {
	imp, _ := n.impaired()
	var up []*node
	for _, d := range upNodes(n.c.nodes("dataserver")) {
		if !d.isCut() {
			up = append(up, d)
		}
	}
	if imp >= n.m || len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	n.c.setCut(d, true)
	dur := time.Duration(2+rng.IntN(12)) * time.Second
	n.later(ctx, dur, func() { n.c.setCut(d, false) })
	return fmt.Sprintf("partition dataserver %s's HTTP (gossip still up) for %v", d.id, dur), nil
}

// diskFull restarts a dataserver with its data directory capped at what it
// holds now (--max-dir-bytes), so its writes fail as on a full disk, and
// later restarts it without the cap, as after an operator freed space.
func (n *nemesis) diskFull(ctx context.Context, rng *rand.Rand) (string, error) {
	imp, _ := n.impaired()
	up := upNodes(n.c.nodes("dataserver"))
	if imp >= n.m || len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	var used int64
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			used += fi.Size()
		}
	}
	d.setMaxDir(used + 64<<10)
	n.c.kill(d)
	n.restart(d)
	dur := time.Duration(5+rng.IntN(15)) * time.Second
	n.later(ctx, dur, func() {
		n.c.kill(d)
		d.setMaxDir(0)
		n.restart(d)
	})
	return fmt.Sprintf("disk of dataserver %s full (capped at %d bytes) for %v", d.id, used+64<<10, dur), nil
}

func (n *nemesis) nsVictim(ctx context.Context, leader bool) *node {
	nss := n.c.nodes("nameserver")
	if !allUp(nss) {
		return nil
	}
	l := n.c.leader(ctx)
	if l == nil {
		return nil
	}
	if leader {
		return l
	}
	for _, x := range nss {
		if x != l {
			return x
		}
	}
	return nil
}

func (n *nemesis) killLeader(ctx context.Context, rng *rand.Rand) (string, error) {
	return n.killNS(ctx, rng, true)
}

func (n *nemesis) killFollower(ctx context.Context, rng *rand.Rand) (string, error) {
	return n.killNS(ctx, rng, false)
}

func (n *nemesis) killNS(ctx context.Context, rng *rand.Rand, leader bool) (string, error) {
	v := n.nsVictim(ctx, leader)
	if v == nil {
		return "", nil
	}
	n.c.kill(v)
	n.later(ctx, time.Duration(1+rng.IntN(5))*time.Second, func() { n.restart(v) })
	role := "follower"
	if leader {
		role = "leader"
	}
	return fmt.Sprintf("SIGKILL nameserver %s (raft %s)", v.id, role), nil
}

func (n *nemesis) pauseLeader(ctx context.Context, rng *rand.Rand) (string, error) {
	v := n.nsVictim(ctx, true)
	if v == nil {
		return "", nil
	}
	if err := n.c.pause(v); err != nil {
		return "", err
	}
	// Longer than the leader lease and the election timeout: the others
	// elect a new leader while the old one still believes it leads.
	dur := time.Duration(2000+rng.IntN(4000)) * time.Millisecond
	n.later(ctx, dur, func() { n.c.resume(v) })
	return fmt.Sprintf("SIGSTOP nameserver %s (raft leader) for %v", v.id, dur), nil
}

func (n *nemesis) killGateway(ctx context.Context, rng *rand.Rand) (string, error) {
	gws := n.c.nodes("gateway")
	if !allUp(gws) {
		return "", nil
	}
	g := gws[rng.IntN(len(gws))]
	n.c.kill(g)
	n.later(ctx, time.Duration(1+rng.IntN(4))*time.Second, func() { n.restart(g) })
	return fmt.Sprintf("SIGKILL gateway %s", g.id), nil
}

// destructiveOK reports whether a destructive fault may be injected now.
func (n *nemesis) destructiveOK() bool {
	imp, destructive := n.impaired()
	return !destructive && imp < n.m
}

// record is one needle record found in a shard file (dataserver/doc.go,
// "Shard file format, version 1").
type record struct {
	off, length int64
	id          uint64
	cookie      uint32
	size        int64
	tombstone   bool
}

// shardRecords walks the records of a shard file, stopping at the first
// header that is not one (a write under way, or the end).
func shardRecords(path string) (blockSize int64, recs []record, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var sb [64]byte
	if _, err := f.ReadAt(sb[:], 0); err != nil {
		return 0, nil, err
	}
	if string(sb[:8]) != "DEPOTSHD" {
		return 0, nil, fmt.Errorf("%s: no superblock", path)
	}
	blockSize = int64(binary.LittleEndian.Uint32(sb[12:]))
	off := int64(64)
	var h [32]byte
	for {
		if _, err := f.ReadAt(h[:], off); err != nil {
			return blockSize, recs, nil
		}
		if string(h[:4]) != "NDL1" {
			return blockSize, recs, nil
		}
		size := int64(binary.LittleEndian.Uint64(h[20:]))
		blocks := (size + blockSize - 1) / blockSize
		length := (32 + size + 4*blocks + 7) &^ 7
		recs = append(recs, record{off: off, length: length, id: binary.LittleEndian.Uint64(h[8:]),
			cookie: binary.LittleEndian.Uint32(h[16:]), size: size, tombstone: h[4]&1 != 0})
		off += length
	}
}

// shardFiles lists a dataserver's shard files.
func shardFiles(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.shard"))
	return files
}

func parseShardName(path string) (depot.VolumeID, int, bool) {
	var v, i int
	if _, err := fmt.Sscanf(filepath.Base(path), "%d_%d.shard", &v, &i); err != nil {
		return 0, 0, false
	}
	return depot.VolumeID(v), i, true
}

// bitflip flips one bit in the data of a live needle record of a running
// dataserver.
func (n *nemesis) bitflip(ctx context.Context, rng *rand.Rand) (string, error) {
	if !n.destructiveOK() {
		return "", nil
	}
	up := upNodes(n.c.nodes("dataserver"))
	if len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	files := shardFiles(d.dir)
	if len(files) == 0 {
		return "", nil
	}
	path := files[rng.IntN(len(files))]
	vol, idx, ok := parseShardName(path)
	if !ok {
		return "", nil
	}
	bs, recs, err := shardRecords(path)
	if err != nil {
		return "", err
	}
	var live []record
	for _, r := range recs {
		if !r.tombstone && r.size > 0 {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return "", nil
	}
	r := live[rng.IntN(len(live))]
	j := rng.Int64N(r.size)
	pos := r.off + 32 + j + 4*(j/bs)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		return "", err
	}
	b[0] ^= 1 << rng.IntN(8)
	if _, err := f.WriteAt(b[:], pos); err != nil {
		return "", err
	}
	n.addDamage(&damage{kind: "bitflip", ds: d, vol: vol, idx: idx, needles: []needleRef{{r.id, r.cookie}}, at: time.Now()})
	return fmt.Sprintf("bit flip in %s %s needle %x at byte %d of %d", d.id, filepath.Base(path), r.id, j, r.size), nil
}

// truncate kills a dataserver, cuts the tail off one of its shard files
// (inside a record, as a torn write would) and restarts it.
func (n *nemesis) truncate(ctx context.Context, rng *rand.Rand) (string, error) {
	if !n.destructiveOK() {
		return "", nil
	}
	up := upNodes(n.c.nodes("dataserver"))
	if len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	files := shardFiles(d.dir)
	if len(files) == 0 {
		return "", nil
	}
	path := files[rng.IntN(len(files))]
	vol, idx, ok := parseShardName(path)
	if !ok {
		return "", nil
	}
	n.c.kill(d)
	defer n.later(ctx, time.Duration(1+rng.IntN(3))*time.Second, func() { n.restart(d) })
	_, recs, err := shardRecords(path)
	if err != nil || len(recs) < 2 {
		return fmt.Sprintf("SIGKILL dataserver %s (nothing to truncate)", d.id), err
	}
	// Cut inside one of the last three records.
	first := max(1, len(recs)-3) + rng.IntN(min(3, len(recs)-1))
	first = min(first, len(recs)-1)
	cut := recs[first].off + 1 + rng.Int64N(recs[first].length-1)
	var lost []needleRef
	for _, r := range recs[first:] {
		if !r.tombstone && r.size > 0 {
			lost = append(lost, needleRef{r.id, r.cookie})
		}
	}
	if err := os.Truncate(path, cut); err != nil {
		return "", err
	}
	n.addDamage(&damage{kind: "truncate", ds: d, vol: vol, idx: idx, needles: lost, at: time.Now()})
	return fmt.Sprintf("SIGKILL dataserver %s, truncate %s to %d bytes (%d records cut), restart", d.id, filepath.Base(path), cut, len(recs)-first), nil
}

// removeDataserver kills a dataserver for good and deletes its data, so
// repair must rebuild every shard it held.
func (n *nemesis) removeDataserver(ctx context.Context, rng *rand.Rand) (string, error) {
	imp, destructive := n.impaired()
	all := n.c.nodes("dataserver")
	live := 0
	for _, d := range all {
		if d.getState() != stateRemoved {
			live++
		}
	}
	// Keep at least eight members, so every volume has k+m places in
	// three racks to rebuild on.
	if destructive || imp > 0 || live <= 8 {
		return "", nil
	}
	up := upNodes(all)
	d := up[rng.IntN(len(up))]
	if err := n.c.remove(d); err != nil {
		return "", err
	}
	n.addDamage(&damage{kind: "removed", ds: d, at: time.Now()})
	return fmt.Sprintf("removed dataserver %s for good (data deleted)", d.id), nil
}

// addDataserver starts a new, empty dataserver.
func (n *nemesis) addDataserver(ctx context.Context, rng *rand.Rand) (string, error) {
	if len(n.c.nodes("dataserver")) >= n.maxDS {
		return "", nil
	}
	d, err := n.c.newDataserver()
	if err != nil {
		return "", err
	}
	n.wg.Go(func() { n.restart(d) })
	return fmt.Sprintf("add dataserver %s in %s", d.id, d.rack), nil
}

// drainDataserver drains a dataserver (depot admin drain); once no volume
// names it, it is stopped for good (checkDamage).
func (n *nemesis) drainDataserver(ctx context.Context, rng *rand.Rand) (string, error) {
	n.mu.Lock()
	busy := n.draining != nil
	n.mu.Unlock()
	all := n.c.nodes("dataserver")
	live := 0
	for _, d := range all {
		if d.getState() != stateRemoved {
			live++
		}
	}
	if busy || live <= 8 {
		return "", nil
	}
	up := upNodes(all)
	if len(up) == 0 {
		return "", nil
	}
	d := up[rng.IntN(len(up))]
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.c.nsc.Drain(dctx, d.id, false); err != nil {
		return "", err
	}
	n.mu.Lock()
	n.draining, n.drainAt = d, time.Now()
	n.mu.Unlock()
	return fmt.Sprintf("drain dataserver %s", d.id), nil
}

// checkDrain stops a drained dataserver for good once no volume names it.
func (n *nemesis) checkDrain(ctx context.Context) {
	n.mu.Lock()
	d := n.draining
	n.mu.Unlock()
	if d == nil {
		return
	}
	if ok, _ := n.repaired(ctx, &damage{kind: "removed", ds: d}); !ok {
		return
	}
	n.c.stop(d)
	n.mu.Lock()
	n.draining = nil
	n.drained = append(n.drained, fmt.Sprintf("%s drained in %v, then stopped", d.id, time.Since(n.drainAt).Round(time.Second)))
	n.mu.Unlock()
	n.log("nemesis: %s drained in %v; stopped for good", d.id, time.Since(n.drainAt).Round(time.Second))
}

func (n *nemesis) addDamage(d *damage) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dmg = append(n.dmg, d)
	n.lastEnd = time.Now()
}

// checkDamage marks damage repaired: a flipped or cut needle that its
// dataserver serves whole again (or that is deleted everywhere), a removed
// dataserver that no volume names any more.
func (n *nemesis) checkDamage(ctx context.Context) {
	n.checkDrain(ctx)
	n.mu.Lock()
	var open []*damage
	for _, d := range n.dmg {
		if d.resolved.IsZero() {
			open = append(open, d)
		}
	}
	n.mu.Unlock()
	for _, d := range open {
		ok, note := n.repaired(ctx, d)
		if ok {
			n.mu.Lock()
			d.resolved, d.note = time.Now(), note
			n.mu.Unlock()
			n.log("nemesis: %s on %s repaired after %v (%s)", d.kind, d.ds.id, time.Since(d.at).Round(time.Second), note)
		}
	}
}

func (n *nemesis) repaired(ctx context.Context, d *damage) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if d.kind == "removed" {
		vols, err := n.c.nsc.Volumes(ctx)
		if err != nil {
			return false, ""
		}
		for _, v := range vols {
			for _, m := range v.Members {
				if m.Node == d.ds.id {
					return false, ""
				}
			}
		}
		return true, "no volume names it"
	}
	// The damaged shard may have moved (a drain or rebalance of the
	// damaged dataserver): then it must be whole where it lives now.
	addr, where := d.ds.http, ""
	if v, err := n.c.nsc.Volume(ctx, d.vol); err == nil && d.idx < len(v.Members) && v.Members[d.idx].Node != d.ds.id {
		addr, where = v.Members[d.idx].Addr, " on "+v.Members[d.idx].Node+", where the shard moved"
	} else if d.ds.getState() != stateUp {
		return false, ""
	}
	deleted := 0
	for _, nr := range d.needles {
		code := n.c.shardStatus(ctx, addr, d.vol, d.idx, nr, http.MethodGet)
		switch {
		case code == http.StatusOK:
		case code == http.StatusNotFound && n.deletedElsewhere(ctx, d, nr):
			deleted++
		default:
			return false, ""
		}
	}
	return true, fmt.Sprintf("%d needle(s) whole again%s, %d deleted since", len(d.needles)-deleted, where, deleted)
}

// deletedElsewhere reports whether the other members of the needle's
// volume no longer hold it either.
func (n *nemesis) deletedElsewhere(ctx context.Context, d *damage, nr needleRef) bool {
	v, err := n.c.nsc.Volume(ctx, d.vol)
	if err != nil {
		return false
	}
	for _, m := range v.Members {
		if m.Index == d.idx {
			continue
		}
		if code := n.c.shardStatus(ctx, m.Addr, d.vol, m.Index, nr, http.MethodHead); code != http.StatusNotFound {
			return false
		}
	}
	return true
}

// shardStatus asks a dataserver for one needle's shard (reading the whole
// body on GET, so checksum failures count) and returns the HTTP status,
// 0 when there was no answer.
func (c *cluster) shardStatus(ctx context.Context, addr string, vol depot.VolumeID, idx int, nr needleRef, method string) int {
	url := fmt.Sprintf("http://%s/shard/%d/%d/%x?cookie=%08x", addr, vol, idx, nr.id, nr.cookie)
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0
	}
	c.key.Sign(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}

// openDamage returns the damage not yet repaired.
func (n *nemesis) openDamage() []*damage {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*damage
	for _, d := range n.dmg {
		if d.resolved.IsZero() {
			out = append(out, d)
		}
	}
	return out
}

// backup takes a backup of the nameserver (GET /backup, which the leader
// serves) into the run's directory.
func (n *nemesis) backup(ctx context.Context, rng *rand.Rand) (string, error) {
	if n.h == nil {
		return "", nil
	}
	n.mu.Lock()
	path := filepath.Join(n.c.dir, "backups", fmt.Sprintf("b%02d.db", len(n.backups)+1))
	n.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	at, b0 := time.Now(), n.h.now()
	size, err := n.c.nsSlow.Backup(bctx, f)
	b1 := n.h.now()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", fmt.Errorf("backup: %w", err)
	}
	n.mu.Lock()
	n.backups = append(n.backups, backupFile{path: path, bstart: b0, bend: b1, at: at})
	n.mu.Unlock()
	return fmt.Sprintf("backup %s (%d bytes) taken during [%v..%v]", filepath.Base(path), size,
		b0.Round(time.Millisecond), b1.Round(time.Millisecond)), nil
}

// restore restores the newest backup, when it is younger than
// maxBackupAge and fewer than maxRestores were done, and records the
// restore in the history (the checker's model: checker_test.go).
func (n *nemesis) restore(ctx context.Context, rng *rand.Rand) (string, error) {
	if n.h == nil {
		return "", nil
	}
	n.mu.Lock()
	var b backupFile
	if len(n.backups) > 0 {
		b = n.backups[len(n.backups)-1]
	}
	done := len(n.restores)
	n.mu.Unlock()
	if b.path == "" || time.Since(b.at) >= maxBackupAge || done >= maxRestores {
		return "", nil
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	o := n.h.begin(&op{client: -2, kind: opRestore, key: "*", gateway: "nameserver", bstart: b.bstart, bend: b.bend, n: -1})
	res, err := n.c.nsSlow.Restore(rctx, b.path)
	n.h.finish(o, err)
	if err != nil {
		// Unknown outcome: the checker takes it as a restore that may
		// have happened at any time since it began.
		n.mu.Lock()
		n.restores = append(n.restores, fmt.Sprintf("%s: %s after %v: %v", filepath.Base(b.path), o.out, (o.end-o.start).Round(time.Millisecond), err))
		n.mu.Unlock()
		return fmt.Sprintf("restore %s: %s", filepath.Base(b.path), o.out), fmt.Errorf("restore: %w", err)
	}
	note := fmt.Sprintf("%s: backup %v old (delete grace %v, whole %v), restore took %v",
		filepath.Base(b.path), res.Age.Round(time.Millisecond), res.DeleteGrace, res.Whole, (o.end - o.start).Round(time.Millisecond))
	if res.Warning != "" {
		note += "; WARNING: " + res.Warning
	}
	n.mu.Lock()
	n.restores = append(n.restores, note)
	n.mu.Unlock()
	n.mu.Lock()
	n.lastEnd = time.Now()
	n.mu.Unlock()
	return "restore " + note, nil
}
