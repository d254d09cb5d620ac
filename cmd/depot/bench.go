package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
)

// benchResult is what one phase of a benchmark measured.
// abbaRounds is how many rounds of native, S3, S3, native slices the
// puts and the gets of a size run in.
const abbaRounds = 2

type benchResult struct {
	Op        string        `json:"op"`
	Size      int64         `json:"size"`
	Ops       int           `json:"ops"`
	Errors    int           `json:"errors"`
	Elapsed   time.Duration `json:"elapsed"`
	OpsPerSec float64       `json:"ops_per_sec"`
	MiBPerSec float64       `json:"mib_per_sec"`
	P50       time.Duration `json:"p50"`
	P90       time.Duration `json:"p90"`
	P99       time.Duration `json:"p99"`
	// ServerCPUPerOp is the server's CPU time per operation (all its
	// roles, above its idle rate), when its /metrics tells: the cost of
	// an operation apart from the load generator sharing the machine.
	ServerCPUPerOp time.Duration `json:"server_cpu_per_op"`

	lat    []time.Duration // every successful operation's latency
	cpu    float64         // the server's CPU seconds over the phase
	cpuErr bool            // the CPU could not be read
}

// merge combines phases of the same operation run at different times
// into one result, as if they were one phase.
func merge(rs ...benchResult) benchResult {
	var (
		lat     []time.Duration
		errs    int
		elapsed time.Duration
		cpu     float64
		cpuErr  bool
	)
	for _, r := range rs {
		lat = append(lat, r.lat...)
		errs += r.Errors
		elapsed += r.Elapsed
		cpu += r.cpu
		cpuErr = cpuErr || r.cpuErr
	}
	res := summarize(rs[0].Op, rs[0].Size, lat, errs, elapsed)
	res.cpu, res.cpuErr = cpu, cpuErr
	res.setCPU()
	return res
}

// setCPU derives ServerCPUPerOp from cpu and Ops.
func (r *benchResult) setCPU() {
	r.ServerCPUPerOp = 0
	if !r.cpuErr && r.Ops > 0 {
		r.ServerCPUPerOp = time.Duration(r.cpu / float64(r.Ops) * float64(time.Second))
	}
}

func summarize(op string, size int64, lat []time.Duration, errs int, elapsed time.Duration) benchResult {
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	secs := elapsed.Seconds()
	return benchResult{
		Op: op, Size: size, Ops: len(lat), Errors: errs, Elapsed: elapsed,
		OpsPerSec: float64(len(lat)) / secs,
		MiBPerSec: float64(len(lat)) * float64(size) / secs / (1 << 20),
		P50:       pct(0.50), P90: pct(0.90), P99: pct(0.99),
		lat: lat, cpuErr: true,
	}
}

func printResults(w io.Writer, rs []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tsize\tops\terrors\tops/s\tMiB/s\tp50\tp90\tp99\tserver CPU/op\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%v\t%v\t%v\t%v\t\n", r.Op, humanSize(r.Size), r.Ops, r.Errors,
			r.OpsPerSec, r.MiBPerSec, r.P50.Round(10*time.Microsecond), r.P90.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond),
			r.ServerCPUPerOp.Round(time.Microsecond))
	}
	tw.Flush()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// loadFn performs one operation; worker is the worker's index.
type loadFn func(ctx context.Context, worker int) error

// runLoad runs fn from conc workers until the duration passes or ops
// operations were done (ops 0: no limit), and measures each call.
// cpuMeter reads the CPU seconds the server has used so far.
type cpuMeter func() (float64, bool)

// cpuMeter scrapes process_cpu_seconds_total from the gateway's /metrics:
// with depot server, every role's CPU, so that a benchmark can report the
// server's cost per operation apart from the load generator's. It reads
// the CPU net of the server's idle rate (remote.idleCPU), so that a phase
// is charged only for what its operations cost.
func (r *remote) cpuMeter() cpuMeter {
	epoch := time.Now()
	return func() (float64, bool) {
		f, ok := r.serverCPU()
		return f - r.idleCPU*time.Since(epoch).Seconds(), ok
	}
}

// serverCPU reads the server's CPU seconds so far.
func (r *remote) serverCPU() (float64, bool) {
	resp, err := http.Get(r.url("/metrics"))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "process_cpu_seconds_total "); ok {
			var f float64
			if _, err := fmt.Sscanf(v, "%g", &f); err == nil {
				return f, true
			}
		}
	}
	return 0, false
}

// waitQuiet waits, for at most a minute, until the server's CPU over a
// second is back near its idle rate: deletes and other background work a
// phase caused are done before the next phase is measured. Without a CPU
// meter it returns at once.
func (r *remote) waitQuiet(ctx context.Context) {
	prev, ok := r.serverCPU()
	if !ok {
		return
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		cur, ok := r.serverCPU()
		if !ok || cur-prev < 2*r.idleCPU+0.02 {
			return
		}
		prev = cur
	}
}

// measureIdleCPU sets r.idleCPU from the server's CPU over dur with no
// load (the meter's resolution is 10 ms, hence a few seconds); dur 0
// leaves it 0.
func (r *remote) measureIdleCPU(ctx context.Context, dur time.Duration) {
	if dur <= 0 {
		return
	}
	c0, ok := r.serverCPU()
	if !ok {
		return
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return
	case <-time.After(dur):
	}
	if c1, ok := r.serverCPU(); ok {
		r.idleCPU = max(0, (c1-c0)/time.Since(t0).Seconds())
	}
}

func runLoad(ctx context.Context, op string, size int64, conc int, dur time.Duration, ops int, quiet bool, cpu cpuMeter, fn loadFn) benchResult {
	var cpu0 float64
	cpuOK := false
	if cpu != nil {
		cpu0, cpuOK = cpu()
	}
	ctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var (
		mu      sync.Mutex
		lat     []time.Duration
		errs    int
		started atomic.Int64
		firstE  error
	)
	var bar *progressbar.ProgressBar
	if !quiet {
		bar = progressbar.NewOptions64(int64(dur/time.Second), progressbar.OptionSetDescription(op+" "+humanSize(size)),
			progressbar.OptionSetWriter(os.Stderr), progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					bar.Add(1)
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				if ops > 0 && started.Add(1) > int64(ops) {
					return
				}
				t0 := time.Now()
				err := fn(ctx, w)
				d := time.Since(t0)
				if ctx.Err() != nil && err != nil {
					return // cut by the deadline: not a failure
				}
				mu.Lock()
				if err != nil {
					errs++
					if firstE == nil {
						firstE = err
					}
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if bar != nil {
		bar.Finish()
	}
	if firstE != nil {
		fmt.Fprintf(os.Stderr, "%s: %d errors, first: %v\n", op, errs, firstE)
	}
	res := summarize(op, size, lat, errs, elapsed)
	if cpuOK {
		if cpu1, ok := cpu(); ok {
			res.cpu, res.cpuErr = cpu1-cpu0, false
		}
	}
	res.setCPU()
	return res
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var rm remote
	rm.flags(fs)
	sizes := fs.String("size", "64KiB", "object sizes, comma-separated (e.g. 64KiB,4MiB)")
	conc := countFlag(fs, "c", "", 16, "concurrent requests")
	dur := durationFlag(fs, "duration", "", 10*time.Second, "duration of each phase")
	jsonOut := fs.Bool("json", false, "print results as JSON")
	idleDur := durationFlag(fs, "idle", "", 3*time.Second, "measure the server's idle CPU for this long first, and charge each phase only its CPU above it (0: charge everything)")
	baseDir := fs.String("baseline", "", "also measure the disk under this directory and loopback, and print depot's figures as ratios of them")
	baseSize := sizeFlag(fs, "baseline-size", "", 1<<30, "bytes the baseline writes and reads")
	useS3 := fs.Bool("s3", false, "also drive the S3 API through minio-go (puts and gets alternating with the native API's, then the mixed mode)")
	unsigned := fs.Bool("s3-unsigned-payload", false, "send S3 bodies as UNSIGNED-PAYLOAD, as AWS SDKs do over HTTPS, instead of minio-go's signed chunks over HTTP")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sizeList []int64
	for _, sz := range strings.Split(*sizes, ",") {
		n, err := parseSize(sz)
		if err != nil {
			return fmt.Errorf("-size %q: %w", sz, err)
		}
		sizeList = append(sizeList, n)
	}
	var base *baseline
	if *baseDir != "" {
		b, err := measureBaseline(*baseDir, *baseSize)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		base = &b
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *conc * 2
	hc := &http.Client{Transport: tr}
	rm.measureIdleCPU(ctx, *idleDur)
	if !rm.quiet && rm.idleCPU > 0 {
		fmt.Fprintf(os.Stderr, "server idle CPU: %.0f ms/s, subtracted from each phase\n", 1000*rm.idleCPU)
	}
	var results []benchResult
	var sb *s3Bench
	if *useS3 {
		var err error
		if sb, err = newS3Bench(ctx, &rm, *conc, *unsigned); err != nil {
			return err
		}
	}
	// Per size, each API's puts and then its gets run in four slices of a
	// phase, in the order native, S3, S3, native, twice (ABBA): neither API
	// always runs on the fuller store or right after the other's writes,
	// whose dirty pages and background work would be charged to it. Then
	// every delete, a wait until the server is idle again, and the mixed
	// mode. Deletes wait until both APIs were measured, so that the
	// background work they cause lands in neither.
	for _, size := range sizeList {
		nb := &nativeBench{hc: hc, rm: &rm}
		if sb == nil {
			put, err := nb.put(ctx, size, *conc, *dur)
			if err != nil {
				return err
			}
			results = append(results, put, nb.get(ctx, size, *conc, *dur))
			nb.cleanup(ctx, *conc)
			rm.waitQuiet(ctx)
			continue
		}
		// abbaRounds rounds of A B B A: a drift over the run (a fuller
		// store, a growing heap) weighs on both APIs alike.
		slice := *dur / (2 * abbaRounds)
		var (
			puts, sputs, gets, sgets []benchResult
			keys                     []string
		)
		for range abbaRounds {
			for i := range 4 {
				if i == 0 || i == 3 {
					r, err := nb.put(ctx, size, *conc, slice)
					if err != nil {
						return err
					}
					puts = append(puts, r)
					continue
				}
				r, k, err := sb.putPhase(ctx, size, *conc, slice)
				if err != nil {
					return err
				}
				sputs, keys = append(sputs, r), append(keys, k...)
			}
		}
		for range abbaRounds {
			for i := range 4 {
				if i == 0 || i == 3 {
					gets = append(gets, nb.get(ctx, size, *conc, slice))
				} else {
					sgets = append(sgets, sb.getPhase(ctx, keys, size, *conc, slice))
				}
			}
		}
		results = append(results, merge(puts...), merge(gets...), merge(sputs...), merge(sgets...))
		nb.cleanup(ctx, *conc)
		sb.cleanup(ctx, keys)
		rm.waitQuiet(ctx)
		rs, err := sb.mixed(ctx, size, *conc, *dur)
		if err != nil {
			return err
		}
		results = append(results, rs...)
		rm.waitQuiet(ctx)
	}
	if *jsonOut {
		return json.NewEncoder(os.Stdout).Encode(struct {
			Baseline *baseline     `json:"baseline,omitempty"`
			Results  []benchResult `json:"results"`
		}{base, results})
	}
	printResults(os.Stdout, results)
	if rm.idleCPU > 0 {
		fmt.Printf("server CPU/op is net of the server's idle CPU, %.0f ms/s measured over %v first\n", 1000*rm.idleCPU, *idleDur)
	}
	printS3Overhead(os.Stdout, results)
	if base != nil {
		printBaseline(*base, *baseDir)
		for _, r := range results {
			switch r.Op {
			case "put":
				fmt.Printf("  put %s: %.0f%% of disk write bandwidth, %.0f%% of it divided by (k+m)/k = 1.5\n",
					humanSize(r.Size), 100*r.MiBPerSec/base.DiskWriteMiBs, 100*r.MiBPerSec/(base.DiskWriteMiBs/1.5))
			case "get":
				lim := min(base.DiskReadMiBs, base.LoopbackMiBs)
				fmt.Printf("  get %s: %.0f%% of min(disk read, loopback) = %.0f MiB/s\n", humanSize(r.Size), 100*r.MiBPerSec/lim, lim)
			}
		}
	}
	return nil
}

// nativeBench drives the native /v1 API: puts of fixed-size blobs, gets of
// the blobs it put, and at the end deletes of them all.
type nativeBench struct {
	hc   *http.Client
	rm   *remote
	mu   sync.Mutex
	fids []string
}

func (n *nativeBench) do(req *http.Request) (*http.Response, error) {
	if n.rm.user != "" {
		req.SetBasicAuth(n.rm.user, n.rm.password)
	}
	resp, err := n.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return resp, nil
}

// put stores blobs of size bytes from conc workers for dur.
func (n *nativeBench) put(ctx context.Context, size int64, conc int, dur time.Duration) (benchResult, error) {
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	res := runLoad(ctx, "put", size, conc, dur, 0, n.rm.quiet, n.rm.cpuMeter(), func(ctx context.Context, _ int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.rm.url("/v1/blobs"), bytes.NewReader(payload))
		if err != nil {
			return err
		}
		resp, err := n.do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct{ Fid string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return err
		}
		n.mu.Lock()
		n.fids = append(n.fids, out.Fid)
		n.mu.Unlock()
		return nil
	})
	if len(n.fids) == 0 {
		return res, errors.New("bench: no put succeeded")
	}
	return res, nil
}

// get reads the blobs put so far, round robin, for dur.
func (n *nativeBench) get(ctx context.Context, size int64, conc int, dur time.Duration) benchResult {
	fids := n.fids
	var next atomic.Uint64
	return runLoad(ctx, "get", size, conc, dur, 0, n.rm.quiet, n.rm.cpuMeter(), func(ctx context.Context, _ int) error {
		fid := fids[next.Add(1)%uint64(len(fids))]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.rm.url("/v1/blobs/"+fid), nil)
		if err != nil {
			return err
		}
		resp, err := n.do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.Copy(io.Discard, resp.Body)
		if err == nil && got != size {
			err = fmt.Errorf("get %s: %d bytes, want %d", fid, got, size)
		}
		return err
	})
}

// cleanup deletes what put stored.
func (n *nativeBench) cleanup(ctx context.Context, conc int) {
	fids := n.fids
	var idx atomic.Int64
	runLoad(ctx, "delete", 0, conc, 10*time.Minute, len(fids), true, nil, func(ctx context.Context, _ int) error {
		i := idx.Add(1) - 1
		if int(i) >= len(fids) {
			return nil
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, n.rm.url("/v1/blobs/"+fids[i]), nil)
		if err != nil {
			return err
		}
		resp, err := n.do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	})
}

// printS3Overhead prints, for each size, what the S3 API costs over the
// native API in the same run: server CPU per operation and throughput.
func printS3Overhead(w io.Writer, rs []benchResult) {
	find := func(op string, size int64) (benchResult, bool) {
		for _, r := range rs {
			if r.Op == op && r.Size == size {
				return r, true
			}
		}
		return benchResult{}, false
	}
	header := false
	for _, r := range rs {
		if r.Op != "put" && r.Op != "get" {
			continue
		}
		s, ok := find("s3-"+r.Op, r.Size)
		if !ok || r.Ops == 0 || s.Ops == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "S3 against the native API, same run:")
			header = true
		}
		line := fmt.Sprintf("  %s %s: throughput %.0f%% of native", r.Op, humanSize(r.Size), 100*s.MiBPerSec/r.MiBPerSec)
		if r.ServerCPUPerOp > 0 && s.ServerCPUPerOp > 0 {
			line += fmt.Sprintf(", server CPU/op %+.0f%%", 100*(float64(s.ServerCPUPerOp)/float64(r.ServerCPUPerOp)-1))
		}
		fmt.Fprintln(w, line)
	}
}
