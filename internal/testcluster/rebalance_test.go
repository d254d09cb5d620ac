package testcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot"
	"depot/client"
	"depot/internal/node"
	"depot/internal/testcluster"
	"depot/nameserver/nsclient"
	"depot/repair"
)

// smallSizes returns n sizes from 1 byte to max, reproducibly.
func smallSizes(n int, maxSize int64, seed uint64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]int64, n)
	for i := range out {
		out[i] = 1 + rng.Int64N(maxSize)
	}
	return out
}

// load writes new objects and reads old ones back byte for byte until
// stopped; every failed request is an error.
type load struct {
	t       *testing.T
	cl      *client.Client
	objs    []stored
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	written []stored
	errs    []error
	puts    atomic.Int64
	gets    atomic.Int64
}

func startLoad(t *testing.T, cl *client.Client, objs []stored, first int, writers, readers int) *load {
	l := &load{t: t, cl: cl, objs: objs, stop: make(chan struct{})}
	fail := func(err error) {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
	for w := range writers {
		l.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 77))
			for n := 0; n < 100000; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				i := first + w*100000 + n
				size := 1 + rng.Int64N(64<<10)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				st, err := cl.Put(ctx, bytes.NewReader(content(i, size)), size, client.PutOptions{})
				cancel()
				l.puts.Add(1)
				if err != nil {
					fail(fmt.Errorf("put %d: %w", i, err))
					continue
				}
				l.mu.Lock()
				l.written = append(l.written, stored{i: i, size: size, segs: st.Segments})
				l.mu.Unlock()
			}
		})
	}
	for r := range readers {
		l.wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 78))
			for range 1000000 {
				select {
				case <-l.stop:
					return
				default:
				}
				s := objs[rng.IntN(len(objs))]
				got, err := readRange(cl, s, 0, -1)
				l.gets.Add(1)
				if err == nil && !bytes.Equal(got, content(s.i, s.size)) {
					err = fmt.Errorf("bytes differ")
				}
				if err != nil {
					fail(fmt.Errorf("get %d: %w", s.i, err))
				}
			}
		})
	}
	return l
}

// end stops the load, fails the test on any failed request and returns
// the objects written.
func (l *load) end() []stored {
	l.t.Helper()
	close(l.stop)
	l.wg.Wait()
	l.t.Logf("load: %d puts, %d gets", l.puts.Load(), l.gets.Load())
	for i, err := range l.errs {
		if i == 10 {
			l.t.Errorf("... and %d more failed requests", len(l.errs)-i)
			break
		}
		l.t.Errorf("request failed under load: %v", err)
	}
	return l.written
}

func addDataservers(t *testing.T, c *testcluster.Cluster, n int) []int {
	t.Helper()
	var out []int
	for range n {
		i, err := c.AddDataserver(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.WaitAlive(i)
		out = append(out, i)
	}
	return out
}

// waitRebalanced polls the rebalance status until done.
func waitRebalanced(t *testing.T, ns *nsclient.Client, timeout time.Duration, done func(nsclient.RebalanceStatus) bool) nsclient.RebalanceStatus {
	t.Helper()
	var st nsclient.RebalanceStatus
	waitUntil(t, timeout, "the rebalance to finish", func() bool {
		var err error
		st, err = ns.RebalanceStatus(context.Background())
		return err == nil && done(st)
	})
	return st
}

func logSpread(t *testing.T, st nsclient.RebalanceStatus) {
	t.Helper()
	for _, n := range st.Nodes {
		t.Logf("  %s %-6s %9d bytes %3d shards%s", n.ID, n.State, n.Bytes, n.Shards, map[bool]string{true: " draining"}[n.Draining])
	}
	t.Logf("  mean %d, band ±%.0f%%, in band %v; %d moves, %d bytes", st.Mean, st.Band*100, st.InBand, st.Moved, st.MovedBytes)
}

// A dataserver that joins is placed in the next new volume at once.
func TestRebalance_NewDataserversTakeNewVolumes(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{})
	cl := c.Client()
	putAll(t, cl, 0, smallSizes(50, 64<<10, 1), 4)
	added := addDataservers(t, c, 3)
	ns := c.NSClient()
	ctx := context.Background()
	vols, err := ns.Volumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		if err := ns.SetVolumeState(ctx, v.ID, depot.VolumeFull); err != nil {
			t.Fatal(err)
		}
	}
	a, err := ns.Assign(ctx, 0, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(vols, func(v depot.Volume) bool { return v.ID == a.Volume.ID }) {
		t.Fatalf("assign used old volume %d", a.Volume.ID)
	}
	for _, i := range added {
		id := node.DataserverID(i)
		if !slices.ContainsFunc(a.Volume.Members, func(m depot.Member) bool { return m.Node == id }) {
			t.Errorf("new volume %d members %v lack the new dataserver %s", a.Volume.ID, a.Volume.Members, id)
		}
	}
	putAll(t, cl, 1000, smallSizes(20, 64<<10, 2), 2)
}

// Six dataservers with 2,000 objects, three empty ones join, and a
// rebalance under read/write load spreads the bytes within the band: no
// request fails, every object reads back, fsck finds nothing wrong.
func TestRebalance_GrowUnderLoad(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{MinWritable: 12})
	cl := c.Client()
	n := 2000
	if testing.Short() {
		n = 600
	}
	objs := putAll(t, cl, 0, smallSizes(n, 64<<10, 11), 8)
	added := addDataservers(t, c, 3)
	ns := c.NSClient()
	before, err := ns.RebalanceStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before (%d dataservers added):", len(added))
	logSpread(t, before)

	start := time.Now()
	l := startLoad(t, cl, objs, 100000, 2, 2)
	const band = 0.2
	if err := ns.Rebalance(context.Background(), band); err != nil {
		t.Fatal(err)
	}
	st := waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done })
	more := l.end()
	t.Logf("rebalanced in %v:", time.Since(start).Round(time.Millisecond))
	logSpread(t, st)
	if st.Moved == 0 {
		t.Fatal("nothing moved")
	}
	c.WaitHealed(t, 30*time.Second)
	st, err = ns.RebalanceStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.InBand {
		logSpread(t, st)
		t.Errorf("spread not within ±%.0f%% of the mean", band*100)
	}
	for _, i := range added {
		for _, u := range st.Nodes {
			if u.ID == node.DataserverID(i) && u.Shards == 0 {
				t.Errorf("added dataserver %s holds no shard", u.ID)
			}
		}
	}
	checkAll(t, cl, append(objs, more...), 0, 61)
}

// A dataserver drained under load holds nothing afterwards; once stopped,
// every volume is still at full width, and two more dataservers can go.
func TestRebalance_DrainUnderLoad(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Dataservers: 8, MinWritable: 6})
	cl := c.Client()
	objs := putAll(t, cl, 0, smallSizes(600, 64<<10, 21), 8)
	ns := c.NSClient()
	victim := 2
	id := node.DataserverID(victim)
	l := startLoad(t, cl, objs, 100000, 2, 2)
	if err := ns.Drain(context.Background(), id, false); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Meanwhile every volume keeps k+m distinct members.
	narrow := make(chan string, 1)
	stopWatch := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		for range 100000 {
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
			vols, err := ns.Volumes(context.Background())
			if err != nil {
				continue
			}
			for _, v := range vols {
				distinct := map[string]bool{}
				for _, m := range v.Members {
					distinct[m.Node] = true
				}
				if len(distinct) != v.K+v.M {
					select {
					case narrow <- fmt.Sprintf("volume %d members %v", v.ID, v.Members):
					default:
					}
				}
			}
		}
	})
	st := waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done && st.Drained(id) })
	close(stopWatch)
	watch.Wait()
	select {
	case s := <-narrow:
		t.Errorf("a volume dropped below full width during the drain: %s", s)
	default:
	}
	more := l.end()
	t.Logf("drained %s in %v:", id, time.Since(start).Round(time.Millisecond))
	logSpread(t, st)
	if n := len(c.Dataserver(victim).Server.Store().Status().Files); n != 0 {
		// The old copies go at the next anti-entropy pass.
		waitUntil(t, 30*time.Second, "the drained dataserver to drop its files", func() bool {
			return len(c.Dataserver(victim).Server.Store().Status().Files) == 0
		})
	}
	if err := c.StopDataserver(victim); err != nil {
		t.Fatal(err)
	}
	c.WaitDead(victim)
	vols, err := ns.Volumes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		for _, m := range v.Members {
			if m.Node == id {
				t.Errorf("volume %d still has the drained %s as member %d", v.ID, id, m.Index)
			}
		}
	}
	c.WaitHealed(t, 30*time.Second) // every member of every volume running
	kill(t, c, 0)
	kill(t, c, 5)
	checkAll(t, cl, append(objs, more...), 0, 62)
}

// The nameserver crashes in the middle of a rebalance: after the restart
// the run goes on from the database and finishes; fsck finds nothing
// wrong and every object reads back.
func TestRebalance_NameserverCrash(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{MinWritable: 8, Repair: repair.Config{Rate: 1 << 20, Parallel: 2}})
	cl := c.Client()
	objs := putAll(t, cl, 0, smallSizes(600, 64<<10, 31), 8)
	addDataservers(t, c, 3)
	ns := c.NSClient()
	if err := ns.Rebalance(context.Background(), 0.2); err != nil {
		t.Fatal(err)
	}
	waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool {
		done, _ := st.Progress()
		return done > 0
	})
	st, _ := ns.RebalanceStatus(context.Background())
	t.Logf("crashing the nameserver: %d moves done, %d under way", st.Moved, len(st.Jobs))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.CrashNameserver(ctx); err != nil {
		t.Fatal(err)
	}
	ns = c.NSClient()
	after, err := ns.RebalanceStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !after.Active && !after.Done {
		t.Fatal("the rebalance run was lost in the crash")
	}
	st = waitRebalanced(t, ns, 90*time.Second, func(st nsclient.RebalanceStatus) bool { return st.Done })
	logSpread(t, st)
	c.WaitHealed(t, 30*time.Second)
	checkAll(t, cl, objs, 0, 63)
}

// With RebalanceInterval set, the nameserver rebalances on its own once
// empty dataservers join.
func TestRebalance_Automatic(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{MinWritable: 6, RebalanceInterval: 500 * time.Millisecond})
	cl := c.Client()
	objs := putAll(t, cl, 0, smallSizes(300, 64<<10, 41), 8)
	ns := c.NSClient()
	st, err := ns.RebalanceStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Active || st.Moved > 0 {
		t.Fatalf("a balanced cluster rebalances: %+v", st)
	}
	addDataservers(t, c, 2)
	st = waitRebalanced(t, ns, 60*time.Second, func(st nsclient.RebalanceStatus) bool {
		return st.Moved > 0 && st.Done && st.InBand
	})
	logSpread(t, st)
	c.WaitHealed(t, 30*time.Second)
	checkAll(t, cl, objs, 0, 64)
}
