package testcluster_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// dsIndex returns the harness index of dataserver node id.
func dsIndex(t *testing.T, c *testcluster.Cluster, id string) int {
	t.Helper()
	for i := range c.Dataservers() {
		if node.DataserverID(i) == id {
			return i
		}
	}
	t.Fatalf("no dataserver %s", id)
	return -1
}

// A dataserver is killed and objects are written at once, before gossip
// declares it dead: they are acknowledged at the quorum and its shards are
// recorded as missed. When it comes back it is caught up with them before
// anything else, within seconds, well inside its worker's task interval,
// and the catch-up time is exported.
func TestRepair_ReturningMemberCaughtUpAtOnce(t *testing.T) {
	const interval = 10 * time.Second // the worker's pass interval: the catch-up must not wait for it
	c := testcluster.New(t, testcluster.Options{RepairAfter: time.Hour,
		Repair: repair.Config{Interval: interval, AntiEntropyInterval: time.Hour}})
	cl := c.Client()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(20, 512<<10, stripe, c.Opts.SegmentSize, 71), 4)

	victim := 2
	addr := c.Dataserver(victim).Server.Addr()
	if err := c.KillDataserver(victim); err != nil {
		t.Fatal(err)
	}
	more := putAll(t, cl, 1000, logUniformSizes(30, 512<<10, stripe, c.Opts.SegmentSize, 72), 4)
	st, err := c.NSClient().RepairStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Missed == 0 {
		t.Fatal("writes with a member killed recorded no missed shards")
	}
	t.Logf("%d missed shards recorded", st.Missed)

	start := time.Now()
	// On its old address, as a host comes back: readers that cached it
	// reach it again.
	if err := c.StartDataserverAt(context.Background(), victim, addr); err != nil {
		t.Fatal(err)
	}
	c.WaitHealed(t, interval/2)
	t.Logf("healed %v after the restart", time.Since(start).Round(time.Millisecond))
	// The catch-up ends at the pass that finds the backlog empty, which
	// may come a moment after fsck saw every shard back.
	var n, took float64
	for deadline := time.Now().Add(interval / 2); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = dsMetric(t, c, victim, "depot_repair_catchups_total"); n >= 1 {
			break
		}
	}
	took = dsMetric(t, c, victim, "depot_repair_catchup_seconds")
	if n < 1 || took <= 0 || took > (interval/2).Seconds() {
		t.Fatalf("catch-up metric: %v catch-ups, last %vs", n, took)
	}
	t.Logf("catch-up took %.3fs", took)

	// The victim's shards are needed now: two others go.
	kill(t, c, 0)
	kill(t, c, 4)
	checkAll(t, cl, append(objs, more...), 0, 73)
}

// A dataserver comes back while its shards are being rebuilt elsewhere
// (slowly: the rate is bounded). The rebuild is cancelled, since the member
// still has its copy; the writes it missed are caught up needle by needle,
// and the writes it took after its return are not left one shard short on
// a new member. The cluster is whole within seconds, not at the next
// anti-entropy pass.
func TestRepair_MemberBackDuringRebuild(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7,
		Repair: repair.Config{Rate: 16 << 10, AntiEntropyInterval: time.Hour}})
	cl := c.Client()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(80, 256<<10, stripe, c.Opts.SegmentSize, 81), 4)

	victim := 3
	id := node.DataserverID(victim)
	addr := c.Dataserver(victim).Server.Addr()
	kill(t, c, victim)
	objs = append(objs, putAll(t, cl, 1000, logUniformSizes(20, 256<<10, stripe, c.Opts.SegmentSize, 82), 4)...)
	ns := c.NSClient()
	waitUntil(t, 30*time.Second, "a rebuild of the victim's shards under way", func() bool {
		st, err := ns.RepairStatus(context.Background())
		return err == nil && slices.ContainsFunc(st.Jobs, func(j nsclient.RepairJob) bool { return j.From == id && j.Bytes > 0 })
	})
	var held []depot.VolumeID
	vols, err := ns.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if slices.ContainsFunc(v.Members, func(m depot.Member) bool { return m.Node == id }) {
			held = append(held, v.ID)
		}
	}

	if err := c.StartDataserverAt(context.Background(), victim, addr); err != nil {
		t.Fatal(err)
	}
	c.WaitAlive(victim)
	// Writes the returned member takes, and a rebuild target would not.
	objs = append(objs, putAll(t, cl, 2000, logUniformSizes(20, 256<<10, stripe, c.Opts.SegmentSize, 83), 4)...)
	c.WaitHealed(t, 20*time.Second)

	vols, err = ns.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if slices.Contains(held, v.ID) && !slices.ContainsFunc(v.Members, func(m depot.Member) bool { return m.Node == id }) {
			t.Errorf("volume %d: the returned member was switched out: the rebuild was not cancelled", v.ID)
		}
	}
	kill(t, c, 0)
	kill(t, c, 5)
	checkAll(t, cl, objs, 0, 84)
}

// A dataserver comes back during the rebuild of its shards, but without
// them (a new disk): the rebuild goes on and switches the slot. A writer
// whose member list is older than the switch (clients cache it for their
// VolumeTTL) still writes to the old member, which takes the writes; the
// new member lacks them. They are queued for needle repair by the new
// member's comparison with its peers after the switch, so the cluster is
// whole within seconds, not at the next anti-entropy pass.
func TestRepair_CatchUpAfterSwitch(t *testing.T) {
	const settle = 3 * time.Second
	c := testcluster.New(t, testcluster.Options{Dataservers: 7,
		Repair: repair.Config{Rate: 64 << 10, AntiEntropyInterval: time.Hour, MoveSettle: settle}})
	ctx := context.Background()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	// A writer with a long-lived member cache and one lease, so that its
	// writes after the switch go to the volume it cached.
	stale, err := client.New(client.Config{Nameserver: c.NSClient(), Key: c.Key, K: c.Opts.K, M: c.Opts.M,
		SegmentSize: c.Opts.SegmentSize, Leases: 1, VolumeTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	objs := putAll(t, stale, 0, []int64{1000}, 1)
	fid, err := depot.ParseFid(objs[0].segs[0].Fid)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.NSClient().Volume(ctx, fid.Volume)
	if err != nil {
		t.Fatal(err)
	}
	id := v.Members[2].Node
	victim := dsIndex(t, c, id)
	objs = append(objs, putAll(t, c.Client(), 1, logUniformSizes(40, 256<<10, stripe, c.Opts.SegmentSize, 101), 4)...)

	addr := c.Dataserver(victim).Server.Addr()
	kill(t, c, victim)
	ns := c.NSClient()
	waitUntil(t, 30*time.Second, "the rebuild of the victim's shard", func() bool {
		st, err := ns.RepairStatus(ctx)
		return err == nil && slices.ContainsFunc(st.Jobs, func(j nsclient.RepairJob) bool { return j.Volume == v.ID && j.From == id })
	})
	files, err := filepath.Glob(filepath.Join(c.DataserverDir(victim), "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.RemoveAll(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StartDataserverAt(ctx, victim, addr); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "the victim's slot switched", func() bool {
		now, err := ns.Volume(ctx, v.ID)
		return err == nil && now.Members[2].Node != id
	})
	// Within the settle time of the switch: the stale writer's writes.
	objs = append(objs, putAll(t, stale, 1000, logUniformSizes(10, 64<<10, stripe, c.Opts.SegmentSize, 102), 2)...)
	// The victim's copy of the slot it no longer holds is anti-entropy's to
	// drop: its worker's first pass after the restart does it, and again
	// after the stale writes recreate it.
	waitUntil(t, 30*time.Second, "the victim's pass", func() bool {
		return c.Dataserver(victim).Repair.RunOnce(ctx, true) == nil
	})
	c.WaitHealed(t, settle+10*time.Second)
	kill(t, c, dsIndex(t, c, v.Members[0].Node))
	kill(t, c, dsIndex(t, c, v.Members[1].Node))
	checkAll(t, c.Client(), objs, 0, 103)
}

// writePartial stores on members the pieces of an upload of fid cut
// short after one stripe unit, as an older dataserver kept them: bytes of
// the unit's length without the tag suffix, random from seed.
func writePartial(t *testing.T, c *testcluster.Cluster, fid depot.Fid, members []depot.Member, seed uint64) {
	t.Helper()
	t.Logf("seed %d, partial needle %s", seed, fid)
	rng := rand.New(rand.NewPCG(seed, 1))
	partial := make([]byte, c.Opts.Unit)
	for _, m := range members {
		for i := range partial {
			partial[i] = byte(rng.Uint32())
		}
		st := c.Dataserver(dsIndex(t, c, m.Node)).Server.Store()
		if _, err := st.Write(context.Background(), fid.Volume, m.Index, fid.Needle, fid.Cookie, bytes.NewReader(partial), int64(len(partial))); err != nil {
			t.Fatal(err)
		}
	}
}

// A move (a drain) of a slot whose member holds a partial needle, as k
// other members do: the copy falls back to a rebuild, which cannot be
// made; the move skips it, hands it to the orphan sweep and switches.
func TestRepair_PartialNeedleDoesNotBlockMove(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7, RepairAfter: time.Hour})
	ctx := context.Background()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, c.Client(), 0, logUniformSizes(20, 256<<10, stripe, c.Opts.SegmentSize, 121), 4)
	ns := c.NSClient()
	a, err := ns.Assign(ctx, c.Opts.K, c.Opts.M, 1)
	if err != nil {
		t.Fatal(err)
	}
	v := a.Volume
	fid := depot.Fid{Volume: v.ID, Needle: a.First, Cookie: depot.NewCookie()}
	writePartial(t, c, fid, v.Members[:c.Opts.K+1], 122)
	id := v.Members[0].Node
	if err := ns.Drain(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done && st.Drained(id) })
	after, err := ns.Volume(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Members[0].Node == id {
		t.Fatalf("volume %d: slot 0 still on the drained %s", v.ID, id)
	}
	// Skipped, not stuck on: no attempt of the move failed on it.
	for i := range c.Dataservers() {
		if n := dsSum(t, c, i, "depot_repair_failures_total", "reason", "job"); n > 0 {
			t.Errorf("%s: %v failed move attempts", node.DataserverID(i), n)
		}
	}
	if err := c.StopDataserver(dsIndex(t, c, id)); err != nil {
		t.Fatal(err)
	}
	c.WaitHealed(t, 30*time.Second)
	checkAll(t, c.Client(), objs, 0, 123)
}

// A needle that some members hold only in part (a shard upload cut short
// and kept by an older dataserver, without its tag) cannot be rebuilt.
// The rebuild of a member lost for good skips it, reports it and hands it
// to the orphan sweep, and the volume reaches full width again.
func TestRepair_PartialNeedleDoesNotBlockRebuild(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7})
	cl := c.Client()
	ctx := context.Background()
	stripe := int64(c.Opts.K * c.Opts.Unit)
	objs := putAll(t, cl, 0, logUniformSizes(30, 256<<10, stripe, c.Opts.SegmentSize, 91), 4)

	ns := c.NSClient()
	a, err := ns.Assign(ctx, c.Opts.K, c.Opts.M, 1)
	if err != nil {
		t.Fatal(err)
	}
	v := a.Volume
	fid := depot.Fid{Volume: v.ID, Needle: a.First, Cookie: depot.NewCookie()}
	// k members took the first stripe unit and no more: no tag suffix.
	// The last member, which the test then loses, took nothing.
	writePartial(t, c, fid, v.Members[:c.Opts.K], 92)
	lost := v.Members[len(v.Members)-1].Node
	kill(t, c, dsIndex(t, c, lost))

	c.WaitHealed(t, 60*time.Second)
	after, err := ns.Volume(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Members) != v.K+v.M || slices.ContainsFunc(after.Members, func(m depot.Member) bool { return m.Node == lost }) {
		t.Fatalf("volume %d not switched to full width: %+v", v.ID, after.Members)
	}
	var partials float64
	for i := range c.Dataservers() {
		partials += dsSum(t, c, i, "depot_repair_failures_total", "reason", "partial")
	}
	if partials == 0 {
		t.Fatal("the partial needle was not reported (depot_repair_failures_total{reason=\"partial\"})")
	}
	waitUntil(t, 30*time.Second, "the orphan sweep to delete the partial needle", func() bool {
		for _, m := range v.Members[:c.Opts.K] {
			_, err := c.Dataserver(dsIndex(t, c, m.Node)).Server.Store().Stat(ctx, v.ID, m.Index, fid.Needle, fid.Cookie)
			if !errors.Is(err, depot.ErrNotFound) {
				return false
			}
		}
		return true
	})
	checkAll(t, cl, objs, 0, 93)
}

// A write stalls (its client stops sending mid-body) while a drain moves a
// slot of its volume away, switches and settles; then it completes. The
// old member took the shard and acknowledged it, but the slot is no
// longer its own: the acknowledgement does not count, and the shard is
// queued for needle repair on the new member at once (the client checks a
// member list older than its VolumeTTL when the write ends), not left one
// shard short until anti-entropy.
func TestRepair_StalledWriteDuringMove(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 7,
		Repair: repair.Config{AntiEntropyInterval: time.Hour, MoveSettle: 2 * time.Second}})
	ctx := context.Background()
	w, err := client.New(client.Config{Nameserver: c.NSClient(), Key: c.Key, K: c.Opts.K, M: c.Opts.M,
		SegmentSize: c.Opts.SegmentSize, Leases: 1, VolumeTTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	objs := putAll(t, w, 0, []int64{1000}, 1)
	fid, err := depot.ParseFid(objs[0].segs[0].Fid)
	if err != nil {
		t.Fatal(err)
	}
	ns := c.NSClient()
	v, err := ns.Volume(ctx, fid.Volume)
	if err != nil {
		t.Fatal(err)
	}
	id := v.Members[1].Node
	victim := dsIndex(t, c, id)

	// The stalled write: one stripe, then nothing until the move settled.
	stripe := c.Opts.K * c.Opts.Unit
	body := content(5000, int64(stripe+stripe/3))
	pr, pw := io.Pipe()
	type result struct {
		st  *client.Stored
		err error
	}
	res := make(chan result, 1)
	go func() {
		st, err := w.Put(ctx, pr, int64(len(body)), client.PutOptions{})
		res <- result{st, err}
	}()
	if _, err := pw.Write(body[:stripe]); err != nil {
		t.Fatal(err)
	}

	if err := ns.Drain(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done && st.Drained(id) })

	if _, err := pw.Write(body[stripe:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-res
	if r.err != nil {
		t.Fatalf("stalled write: %v", r.err)
	}
	if got, _ := depot.ParseFid(r.st.Segments[0].Fid); got.Volume != v.ID {
		t.Fatalf("the stalled write went to volume %d, not %d", got.Volume, v.ID)
	}
	objs = append(objs, stored{i: 5000, size: int64(len(body)), segs: r.st.Segments})
	// Drained: no member of anything; what it holds is not the test's.
	if err := c.StopDataserver(victim); err != nil {
		t.Fatal(err)
	}
	c.WaitHealed(t, 10*time.Second)
	checkAll(t, c.Client(), objs, 0, 111)
}
