package testcluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"depot"
	"depot/client"
	"depot/dataserver"
	"depot/internal/testcluster"
	"depot/repair"
)

// diskWriteMBps measures the disk's sequential write bandwidth in dir as
// cmd/depot's baseline does: 256 MiB in 4 MiB writes to a new file in the
// same directory, then fdatasync, so the figure is the disk's and not the
// page cache's.
func diskWriteMBps(b *testing.B, dir string) float64 {
	b.Helper()
	f, err := os.Create(filepath.Join(dir, "seqwrite.tmp"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	const total = 256 << 20
	start := time.Now()
	for n := 0; n < total; n += len(buf) {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		b.Fatal(err)
	}
	return total / (1 << 20) / time.Since(start).Seconds()
}

// benchMiB returns the MiB of object data a repair benchmark stores:
// DEPOT_BENCH_REPAIR_MIB, default def.
func benchMiB(def int) int64 {
	if n, err := strconv.Atoi(os.Getenv("DEPOT_BENCH_REPAIR_MIB")); err == nil && n > 0 {
		return int64(n)
	}
	return int64(def)
}

// mediaSizes returns object sizes spread log-uniformly over 64 KiB-4 MiB
// (product photos and files), adding up to at least total bytes.
func mediaSizes(seed uint64, total int64) []int64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	var sizes []int64
	for sum := int64(0); sum < total; {
		s := int64(math.Exp(math.Log(64<<10) + rng.Float64()*(math.Log(4<<20)-math.Log(64<<10))))
		sizes = append(sizes, s)
		sum += s
	}
	return sizes
}

// putSizes stores objects of the given sizes with conc writers and returns
// their segments in order.
func putSizes(b *testing.B, cl *client.Client, sizes []int64, conc int) [][]depot.Segment {
	b.Helper()
	out := make([][]depot.Segment, len(sizes))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range conc {
		wg.Go(func() {
			for i := range next {
				st, err := cl.Put(context.Background(), bytes.NewReader(content(i, sizes[i])), sizes[i], client.PutOptions{})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("put %d (%d bytes): %w", i, sizes[i], err))
					mu.Unlock()
					continue
				}
				out[i] = st.Segments
			}
		})
	}
	for i := range sizes {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		b.Fatal(err)
	}
	return out
}

// repairBytes sums depot_repair_bytes_total over the running dataservers.
func repairBytes(c *testcluster.Cluster) float64 {
	var sum float64
	for i := range c.Dataservers() {
		d := c.Dataserver(i)
		if d == nil {
			continue
		}
		mfs, _ := d.Server.Registry().Gather()
		for _, mf := range mfs {
			if mf.GetName() == "depot_repair_bytes_total" {
				sum += mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitRepair waits for the nameserver to list repair jobs, then for them
// all to end, and returns how long that took and how many jobs there were.
func waitRepair(b *testing.B, c *testcluster.Cluster, limit time.Duration) (time.Duration, int) {
	b.Helper()
	ns := c.NSClient()
	var start time.Time
	jobs := 0
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		st, err := ns.RepairStatus(context.Background())
		if err == nil && len(st.Jobs) > 0 && start.IsZero() {
			start = time.Now()
		}
		if err == nil {
			jobs = max(jobs, len(st.Jobs))
		}
		if err == nil && len(st.Jobs) == 0 && !start.IsZero() {
			return time.Since(start), jobs
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("repair did not finish within %v", limit)
	return 0, 0
}

// BenchmarkRepair_Unthrottled stores DEPOT_BENCH_REPAIR_MIB (default
// 1024) MiB of objects of 64 KiB-4 MiB on 7 dataservers with group
// commit, kills one, and times the rebuild of its shards with no rate
// bound, from the moment the nameserver lists the jobs to the moment the
// last is done. It reports the rebuild rate beside the disk's sequential
// write bandwidth (write + fdatasync in the same directory):
//
//	go test -run XXX -bench Repair_Unthrottled -benchtime 1x ./internal/testcluster/
func BenchmarkRepair_Unthrottled(b *testing.B) {
	for range b.N {
		dir := b.TempDir()
		// Scrubbing as production does (8 MiB/s, daily), not the test
		// harness's continuous pass, so the figure is the repair's.
		c := testcluster.New(b, testcluster.Options{Dataservers: 7, Dir: dir, Fsync: dataserver.FsyncGroup,
			Unit: 1 << 20, SegmentSize: client.DefaultSegmentSize,
			Repair: repair.Config{ScrubInterval: 24 * time.Hour, ScrubRate: 8 << 20}})
		sizes := mediaSizes(1, benchMiB(1024)<<20)
		var stored int64
		for _, s := range sizes {
			stored += s
		}
		putSizes(b, c.Client(), sizes, 8)
		// The stored data reaches the disk before the loss, as it would
		// have long before in a real cluster, and the disk is measured in
		// the same state.
		unix.Sync()
		diskBefore := diskWriteMBps(b, dir)
		// DEPOT_BENCH_REPAIR_PROFILE=file profiles the CPU from the kill
		// to the end of the repair only (instead of -cpuprofile, which
		// would mostly show the writes that set the benchmark up).
		if p := os.Getenv("DEPOT_BENCH_REPAIR_PROFILE"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		if err := c.KillDataserver(4); err != nil {
			b.Fatal(err)
		}
		took, jobs := waitRepair(b, c, 10*time.Minute)
		rebuilt := repairBytes(c)
		rate := rebuilt / (1 << 20) / took.Seconds()
		// A virtual disk's bandwidth drifts (burst credits, the host's
		// cache): measured on both sides of the repair, the larger figure
		// is the one compared with.
		diskAfter := diskWriteMBps(b, dir)
		disk := max(diskBefore, diskAfter)
		b.ReportMetric(rate, "repair-MiB/s")
		b.ReportMetric(disk, "disk-MiB/s")
		b.ReportMetric(100*rate/disk, "%-of-disk")
		b.ReportMetric(rebuilt/(1<<20), "MiB-rebuilt")
		b.ReportMetric(took.Seconds(), "repair-s")
		b.Logf("%d objects, %.0f MiB stored; %d shard rebuilds: %.1f MiB in %v: %.1f MiB/s; disk sequential write %.1f MiB/s before, %.1f after (%.0f%% of the larger)",
			len(sizes), float64(stored)/(1<<20), jobs, rebuilt/(1<<20), took.Round(time.Millisecond), rate, diskBefore, diskAfter, 100*rate/disk)
	}
}

// latencies are the foreground operations' durations of one phase.
type latencies struct{ get, put []time.Duration }

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(math.Ceil(0.99*float64(len(s))))-1)]
}

// foreground runs conc clients for d, each doing GETs of whole objects
// from objs (four in five operations) and PUTs of putSize-byte objects,
// and returns every operation's latency.
func foreground(b *testing.B, cl *client.Client, objs [][]depot.Segment, sizes []int64, putSize int64, conc int, d time.Duration) latencies {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu   sync.Mutex
		out  latencies
		errs []error
		wg   sync.WaitGroup
	)
	body := content(99999, putSize)
	for g := range conc {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				op := context.WithoutCancel(ctx)
				start := time.Now()
				var err error
				isGet := rng.IntN(5) != 0
				if isGet {
					i := rng.IntN(len(objs))
					var rc io.ReadCloser
					rc, err = cl.Get(op, objs[i], 0, sizes[i])
					if err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
				} else {
					_, err = cl.Put(op, bytes.NewReader(body), putSize, client.PutOptions{})
				}
				took := time.Since(start)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case isGet:
					out.get = append(out.get, took)
				default:
					out.put = append(out.put, took)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		b.Error(err)
	}
	return out
}

// BenchmarkRepair_ForegroundP99 measures the p99 latency of foreground
// GETs and PUTs of 1 MiB objects (4 clients, 4 GETs to 1 PUT) in three
// phases of DEPOT_BENCH_PHASE seconds (default 5): idle (healthy cluster,
// no repair), degraded (a dataserver killed, its repair not yet started)
// and during its repair throttled to DEPOT_BENCH_REPAIR_RATE MiB/s per
// worker (default 20, as --repair-rate). It reports each p99 and the
// ratio of the repair phase's to the idle one's:
//
//	go test -run XXX -bench Repair_ForegroundP99 -benchtime 1x ./internal/testcluster/
func BenchmarkRepair_ForegroundP99(b *testing.B) {
	phase := 5 * time.Second
	if n, err := strconv.Atoi(os.Getenv("DEPOT_BENCH_PHASE")); err == nil && n > 0 {
		phase = time.Duration(n) * time.Second
	}
	rate := 20.0
	if r, err := strconv.ParseFloat(os.Getenv("DEPOT_BENCH_REPAIR_RATE"), 64); err == nil && r > 0 {
		rate = r
	}
	const objSize = 1 << 20
	for range b.N {
		dir := b.TempDir()
		// The repair starts RepairAfter after the kill: long enough for
		// the degraded phase to run first.
		c := testcluster.New(b, testcluster.Options{Dataservers: 7, Dir: dir, Fsync: dataserver.FsyncGroup,
			Unit: 1 << 20, SegmentSize: client.DefaultSegmentSize, RepairAfter: phase + 3*time.Second,
			Repair: repair.Config{Rate: rate * (1 << 20), ScrubInterval: 24 * time.Hour, ScrubRate: 8 << 20}})
		// Bulk data for the repair to rebuild, then the objects the
		// foreground reads.
		putSizes(b, c.Client(), mediaSizes(2, benchMiB(2048)<<20), 8)
		fg := make([]int64, 64)
		for i := range fg {
			fg[i] = objSize
		}
		objs := putSizes(b, c.Client(), fg, 8)
		unix.Sync()

		idle := foreground(b, c.Client(), objs, fg, objSize, 4, phase)
		if err := c.KillDataserver(4); err != nil {
			b.Fatal(err)
		}
		c.WaitDead(4)
		killed := time.Now()
		degraded := foreground(b, c.Client(), objs, fg, objSize, 4, phase)
		if st, err := c.NSClient().RepairStatus(context.Background()); err == nil && len(st.Jobs) > 0 {
			b.Logf("repair started %v after the kill, during the degraded phase", time.Since(killed).Round(time.Millisecond))
		}
		// Wait for the repair to have written something, then measure.
		deadline := time.Now().Add(time.Minute)
		for repairBytes(c) == 0 {
			if time.Now().After(deadline) {
				b.Fatal("repair did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
		before := repairBytes(c)
		repairStart := time.Now()
		during := foreground(b, c.Client(), objs, fg, objSize, 4, phase)
		repaired := repairBytes(c) - before
		repairRate := repaired / (1 << 20) / time.Since(repairStart).Seconds()
		ns := c.NSClient()
		st, err := ns.RepairStatus(context.Background())
		if err != nil || len(st.Jobs) == 0 {
			b.Logf("repair had ended by the end of the measurement (err %v): add data (DEPOT_BENCH_REPAIR_MIB)", err)
		}

		for _, m := range []struct {
			name string
			i, d []time.Duration
			g    []time.Duration
		}{{"get", idle.get, during.get, degraded.get}, {"put", idle.put, during.put, degraded.put}} {
			pi, pd, pg := p99(m.i), p99(m.d), p99(m.g)
			b.ReportMetric(float64(pi.Microseconds())/1000, m.name+"-idle-p99-ms")
			b.ReportMetric(float64(pg.Microseconds())/1000, m.name+"-degraded-p99-ms")
			b.ReportMetric(float64(pd.Microseconds())/1000, m.name+"-repair-p99-ms")
			b.ReportMetric(float64(pd)/float64(pi), m.name+"-repair/idle")
			b.Logf("%s p99: idle %v (%d ops), degraded %v (%d ops), during repair %v (%d ops): %.2fx idle, %.2fx degraded",
				m.name, pi.Round(time.Microsecond), len(m.i), pg.Round(time.Microsecond), len(m.g),
				pd.Round(time.Microsecond), len(m.d), float64(pd)/float64(pi), float64(pd)/float64(pg))
		}
		b.ReportMetric(repairRate, "repair-MiB/s")
		b.Logf("repair ran at %.1f MiB/s (bound %.0f MiB/s per worker) during the measurement", repairRate, rate)
	}
}
