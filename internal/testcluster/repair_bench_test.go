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
	"strings"
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
// commit, then runs DEPOT_BENCH_REPAIR_ROUNDS (default 3) rounds: each
// kills one of the first dataservers and times the rebuild of its shards
// with no rate bound, from the moment the nameserver lists the jobs to the
// moment the last is done; after each round an empty dataserver joins, so
// the next one has a place to rebuild to. Before the first round and after
// every round the disk is measured as the repair writes to it (seqWrite:
// as many bytes, buffered, an fdatasync every second and one at the end,
// in the dataservers' directory), each phase after the dirty pages of the
// one before are written back (settle). A round's ratio is its repair rate
// over the mean of the disk rates measured just before and just after it;
// %-of-disk is the median of the rounds' ratios, worst-%-of-disk the
// lowest ratio of a repair rate to the faster of its two disk rates;
// repair-CPU-s/GiB is the process's CPU time per GiB rebuilt (median), a
// figure that depends less on what else the machine runs. With 3 GiB on
// a busy machine the default test timeout is too short:
//
//	DEPOT_BENCH_REPAIR_MIB=3072 go test -run XXX -bench Repair_Unthrottled -benchtime 1x -timeout 40m ./internal/testcluster/
//
// Everything shares one disk: the repair reads its k shards per needle from
// the other in-process dataservers' files on the disk it writes to, though
// mostly from the page cache (they were just written; the machine's memory
// holds them). For every byte it writes it also reads k from files, sends
// and receives k over loopback HTTP and decodes, where the baseline only
// writes: on a busy machine (the load average is logged) its share of the
// CPUs bounds it.
func BenchmarkRepair_Unthrottled(b *testing.B) {
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("DEPOT_BENCH_REPAIR_ROUNDS")); err == nil && n > 0 {
		rounds = min(n, 6)
	}
	for range b.N {
		dir := b.TempDir()
		// Scrubbing and anti-entropy as production does (8 MiB/s daily,
		// every 10 minutes), not the test harness's continuous passes, so
		// the figure is the repair's.
		c := testcluster.New(b, testcluster.Options{Dataservers: 7, Dir: dir, Fsync: dataserver.FsyncGroup,
			Unit: 1 << 20, SegmentSize: client.DefaultSegmentSize,
			Repair: repair.Config{ScrubInterval: 24 * time.Hour, ScrubRate: 8 << 20, AntiEntropyInterval: 10 * time.Minute}})
		sizes := mediaSizes(1, benchMiB(1024)<<20)
		var stored int64
		for _, s := range sizes {
			stored += s
		}
		putSizes(b, c.Client(), sizes, 8)
		b.Logf("%d objects, %.0f MiB stored; load average %s", len(sizes), float64(stored)/(1<<20), loadAvg())
		waitQuiet(b, c)

		victims := []int{4, 5, 6, 3, 2, 1}[:rounds]
		disk := make([]phase, 0, rounds+1) // disk[r] before round r, disk[r+1] after
		reps := make([]phase, 0, rounds)
		disk = append(disk, seqWrite(b, dir, liveBytes(c, victims[0])))
		for r, v := range victims {
			if r > 0 {
				added, err := c.AddDataserver(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				c.WaitAlive(added)
				waitQuiet(b, c)
			}
			settle()
			reps = append(reps, repairRound(b, c, v, r == 0))
			next := reps[r].bytes
			if r+1 < len(victims) {
				next = liveBytes(c, victims[r+1])
			}
			disk = append(disk, seqWrite(b, dir, next))
		}

		var ratios, worst, rates, disks, diskSecs, cpu []float64
		for r, rp := range reps {
			before, after := disk[r].rate(), disk[r+1].rate()
			ratio := rp.rate() / ((before + after) / 2)
			ratios = append(ratios, ratio)
			worst = append(worst, rp.rate()/max(before, after))
			rates = append(rates, rp.rate())
			disks = append(disks, (before+after)/2)
			diskSecs = append(diskSecs, (disk[r].took+disk[r+1].took).Seconds()/2)
			cpu = append(cpu, rp.cpu.Seconds()/(float64(rp.bytes)/(1<<30)))
			b.Logf("round %d: dataserver %d lost; repair %s (%d jobs, %.1f CPU-s, load %s); disk before %s (%.1f CPU-s), after %s (%.1f CPU-s): %.0f%% of their mean",
				r+1, victims[r], rp, rp.jobs, rp.cpu.Seconds(), rp.load, disk[r], disk[r].cpu.Seconds(), disk[r+1], disk[r+1].cpu.Seconds(), 100*ratio)
		}
		b.ReportMetric(100*median(ratios), "%-of-disk")
		b.ReportMetric(100*slices.Min(worst), "worst-%-of-disk")
		b.ReportMetric(median(rates), "repair-MiB/s")
		b.ReportMetric(median(disks), "disk-MiB/s")
		b.ReportMetric(float64(reps[0].bytes)/(1<<20), "MiB-rebuilt")
		b.ReportMetric(reps[0].took.Seconds(), "repair-s")
		b.ReportMetric(diskSecs[0], "disk-s")
		b.ReportMetric(median(cpu), "repair-CPU-s/GiB")
	}
}

// phase is one timed write phase: a repair or a disk baseline.
type phase struct {
	bytes int64
	took  time.Duration
	cpu   time.Duration // the process's CPU time meanwhile
	jobs  int
	load  string
}

func (p phase) rate() float64 { return float64(p.bytes) / (1 << 20) / p.took.Seconds() }

func (p phase) String() string {
	return fmt.Sprintf("%.1f MiB in %v = %.1f MiB/s", float64(p.bytes)/(1<<20), p.took.Round(time.Millisecond), p.rate())
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// repairRound kills dataserver v and times the repair of its shards.
// With profile, DEPOT_BENCH_REPAIR_PROFILE=file profiles the CPU from the
// kill to the end of the repair (instead of -cpuprofile, which would
// mostly show the writes that set the benchmark up).
func repairRound(b *testing.B, c *testcluster.Cluster, v int, profile bool) phase {
	b.Helper()
	if p := os.Getenv("DEPOT_BENCH_REPAIR_PROFILE"); p != "" && profile {
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
	if err := c.KillDataserver(v); err != nil {
		b.Fatal(err)
	}
	before := repairBytes(c) // the killed dataserver's count is gone from both sides
	cpu0 := cpuTime()
	took, jobs := waitRepair(b, c, 10*time.Minute)
	return phase{bytes: int64(repairBytes(c) - before), took: took, cpu: cpuTime() - cpu0, jobs: jobs, load: loadAvg()}
}

// waitQuiet waits, for at most 3 minutes, until the nameserver lists no
// repair jobs and no missed shards: on a loaded machine the test gossip
// timings may take a busy dataserver for dead for a moment, and the
// repair that follows must not be counted as a round's.
func waitQuiet(b *testing.B, c *testcluster.Cluster) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, err := c.NSClient().RepairStatus(context.Background())
		if err == nil && len(st.Jobs) == 0 && st.Missed == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("repair work still pending after 3 minutes: %+v, %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveBytes returns the needle bytes dataserver i holds: what its repair
// will rebuild.
func liveBytes(c *testcluster.Cluster, i int) int64 {
	var n int64
	for _, f := range c.Dataserver(i).Server.Store().Status().Files {
		n += f.LiveBytes
	}
	return n
}

// seqWrite measures the disk in dir as repair uses it: n bytes appended to
// a new file in 1 MiB writes (the size of a rebuilt needle's record
// write), with an fdatasync every second running beside the writes, one
// at a time, and one at the end, as rebuildRun's progress reports do. It
// settles the disk first, and removes the file afterwards so that its
// pages are free again for the next phase.
func seqWrite(b *testing.B, dir string, n int64) phase {
	b.Helper()
	settle()
	f, err := os.Create(filepath.Join(dir, "seqwrite.tmp"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	fd := int(f.Fd())
	cpu0 := cpuTime()
	start := time.Now()
	last := start
	var syncing chan error // the background fdatasync, nil when none runs
	for done := int64(0); done < n; {
		w, err := f.Write(buf[:min(int64(len(buf)), n-done)])
		if err != nil {
			b.Fatal(err)
		}
		done += int64(w)
		if syncing != nil {
			select {
			case err := <-syncing:
				if err != nil {
					b.Fatal(err)
				}
				syncing = nil
			default:
			}
		}
		if syncing == nil && time.Since(last) >= time.Second {
			last = time.Now()
			ch := make(chan error, 1)
			go func() { ch <- unix.Fdatasync(fd) }()
			syncing = ch
		}
	}
	if syncing != nil {
		if err := <-syncing; err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fdatasync(fd); err != nil {
		b.Fatal(err)
	}
	return phase{bytes: n, took: time.Since(start), cpu: cpuTime() - cpu0, load: loadAvg()}
}

// settle writes back every dirty page and waits, for at most 30s, until
// the kernel reports less than 64 MiB dirty or under writeback (other
// processes on the machine may keep it above), so that a phase does not
// pay for the one before.
func settle() {
	unix.Sync()
	deadline := time.Now().Add(30 * time.Second)
	for dirty() > 64<<20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// dirty returns the bytes /proc/meminfo reports Dirty or under Writeback,
// 0 when it cannot be read.
func dirty() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "Dirty:" || f[0] == "Writeback:") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			n += kb << 10
		}
	}
	return n
}

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg returns the 1-minute load average, "?" when unknown: the
// machine is shared, and the figures depend on it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
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
