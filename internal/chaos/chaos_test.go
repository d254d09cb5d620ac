package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

var (
	flagSeed     = flag.Uint64("chaos.seed", 0, "seed of the run (0: from the time); the run prints it")
	flagDuration = flag.Duration("chaos.duration", 2*time.Minute, "how long the load and the nemesis run")
	flagClients  = flag.Int("chaos.clients", 6, "concurrent S3 clients")
	flagMaxSize  = flag.Int64("chaos.maxsize", 0, "largest object in bytes (0: 3 MiB single / 12 MiB multipart for runs under 10m, 40 MiB for longer ones)")
	flagHeal     = flag.Duration("chaos.heal", 2*time.Minute, "deadline for full redundancy after the nemesis stops")
	flagFaults   = flag.String("chaos.faults", "", "comma-separated fault kinds to inject (default: all; see faultKinds)")
	flagKeep     = flag.Bool("chaos.keep", false, "keep the cluster's directory (logs, data) even when the run passes")
)

// depotBin is the depot binary, built once in TestMain.
var depotBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if raceEnabled {
		// TestChaos skips under the race detector: no binary needed.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "depot-chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	depotBin = filepath.Join(dir, "depot")
	if out, err := exec.Command("go", "build", "-o", depotBin, "depot/cmd/depot").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build depot: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestChaos runs a cluster of separate depot processes under S3 load
// while a nemesis breaks it, then checks the history of every operation,
// the cluster's return to full redundancy and the space it holds. See
// doc.go.
func TestChaos(t *testing.T) {
	if raceEnabled {
		t.Skip("the chaos run drives separate processes for minutes; it runs in the test command's pass without -race")
	}
	duration := *flagDuration
	if testing.Short() {
		duration = min(duration, 30*time.Second)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("chaos seed %d (replay: go test ./internal/chaos -run TestChaos -chaos.seed %d -chaos.duration %v)", seed, seed, duration)
	maxSize, maxMulti := int64(3<<20), int64(12<<20)
	if duration >= 10*time.Minute {
		maxSize, maxMulti = 40<<20, 40<<20
	}
	if *flagMaxSize > 0 {
		maxSize, maxMulti = *flagMaxSize, max(*flagMaxSize, 6<<20)
	}

	dir, err := os.MkdirTemp("", "depot-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || *flagKeep {
			t.Logf("cluster directory kept (logs in %s/logs); seed %d", dir, seed)
			return
		}
		os.RemoveAll(dir)
	})
	var logMu sync.Mutex
	var events []string
	t0 := time.Now()
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("%7.2fs ", time.Since(t0).Seconds()) + fmt.Sprintf(format, args...)
		logMu.Lock()
		events = append(events, line)
		logMu.Unlock()
		t.Log(line)
	}
	ctx := context.Background()
	c, err := startCluster(ctx, depotBin, dir, 8, logf)
	t.Cleanup(func() {
		if c != nil {
			c.stopAll()
		}
	})
	if err != nil {
		t.Fatalf("start cluster: %v (seed %d)", err, seed)
	}
	logf("cluster up: 3 nameservers, 8 dataservers in 3 racks, 2 gateways")

	h := &history{t0: time.Now()}
	l, err := newLoader(loadConfig{clients: *flagClients, keys: 40, copies: 10, maxSize: maxSize, maxMulti: maxMulti,
		opTime: 30 * time.Second}, seed, h, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, func() error {
		err := l.gws[0].MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if err != nil && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			return nil
		}
		return err
	}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}

	// Load and nemesis, for the run's duration.
	rng := rand.New(rand.NewPCG(seed, 0xc4a05))
	loadCtx, stopLoad := context.WithTimeout(ctx, duration)
	defer stopLoad()
	var wg sync.WaitGroup
	for i := range *flagClients {
		r := rand.New(rand.NewPCG(seed, uint64(i+1)))
		wg.Go(func() { l.run(loadCtx, i, r) })
	}
	nem := newNemesis(c, 2, logf)
	nem.h = h
	if *flagFaults != "" {
		nem.only = strings.Split(*flagFaults, ",")
	}
	nemCtx, stopNem := context.WithTimeout(ctx, max(0, duration-5*time.Second))
	defer stopNem()
	nemDone := make(chan struct{})
	go func() {
		defer close(nemDone)
		select { // a few seconds of load on a healthy cluster first
		case <-time.After(5 * time.Second):
		case <-nemCtx.Done():
			return
		}
		nem.run(nemCtx, rng, 4*time.Second)
	}()
	<-nemDone
	wg.Wait()
	lastFault := nem.lastEnd
	if lastFault.IsZero() {
		lastFault = time.Now()
	}
	logf("nemesis and load stopped: %d operations", len(h.all()))

	// Clients that gave up left uploads behind; a real client aborts them
	// (or a lifecycle rule does).
	abortUploads(ctx, c, l)

	// Full redundancy, by itself.
	healStart := time.Now()
	var last fsckResult
	healErr := poll(ctx, *flagHeal, func() error {
		nem.checkDamage(ctx)
		fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		r, err := c.fsck(fctx)
		if err != nil {
			return err
		}
		last = r
		if len(r.problems) > 0 {
			return fmt.Errorf("%d differences, first: %s", len(r.problems), r.problems[0])
		}
		if d := nem.openDamage(); len(d) > 0 {
			return fmt.Errorf("%d injected damage(s) not repaired, first: %s on %s", len(d), d[0].kind, d[0].ds.id)
		}
		if d := nem.draining; d != nil {
			return fmt.Errorf("%s not drained yet", d.id)
		}
		return nil
	})
	healed := time.Since(lastFault)
	if healErr != nil {
		healed = -1
	}
	logf("full redundancy: %v (since the nemesis stopped: %v; since the last fault ended: %v)",
		healErr, time.Since(healStart).Round(time.Second), time.Since(lastFault).Round(time.Second))

	// Every key read back whole.
	finalReads(ctx, l, h)

	// Orphans swept: nothing held that nothing references.
	spaceErr := poll(ctx, orphanGrace+time.Minute, func() error {
		fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		r, err := c.fsck(fctx)
		if err != nil {
			return err
		}
		last = r
		if len(r.leaked) > 0 {
			return fmt.Errorf("%d needles (%d bytes) held that no object references and no delete is queued for, first %s",
				len(r.leaked), r.leakedBytes, r.leaked[0])
		}
		return nil
	})

	nem.mwg.Wait()
	ops := h.all()
	m := buildModel(seed, ops)
	vs := m.check(ops)
	sum := summary(ops, vs, nem, m, healed, healErr, last, spaceErr)
	t.Log("\n" + sum)
	for i, v := range vs {
		if i == 20 {
			t.Errorf("... and %d more violations", len(vs)-20)
			break
		}
		t.Errorf("violation (%s) key %q, seed %d: %v\n    %s\n%s", v.class, v.read.key, seed, v.read, strings.ReplaceAll(v.msg, "\n", "\n"), "")
	}
	if healErr != nil {
		for i, p := range last.problems {
			if i == 20 {
				break
			}
			t.Logf("not healed: %s", p)
		}
		t.Errorf("no full redundancy within %v of the nemesis stopping (seed %d): %v", *flagHeal, seed, healErr)
	}
	if spaceErr != nil {
		t.Errorf("space leak (seed %d): %v", seed, spaceErr)
	}
	if t.Failed() {
		var sb strings.Builder
		for _, e := range events {
			sb.WriteString(e + "\n")
		}
		os.WriteFile(filepath.Join(dir, "events.log"), []byte(sb.String()), 0o644)
		os.WriteFile(filepath.Join(dir, "summary.txt"), []byte(sum), 0o644)
	}
}

// abortUploads aborts every multipart upload left in progress.
func abortUploads(ctx context.Context, c *cluster, l *loader) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	core := minio.Core{Client: l.gws[0]}
	for u := range l.gws[0].ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			c.log("list uploads: %v", u.Err)
			return
		}
		if err := core.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID); err != nil {
			c.log("abort upload %s %s: %v", u.Key, u.UploadID, err)
		}
	}
}

// finalReads reads every key of the key space once, whole, through the
// gateways in turn.
func finalReads(ctx context.Context, l *loader, h *history) {
	var keys []string
	for i := range l.cfg.keys {
		keys = append(keys, fmt.Sprintf("k/%03d", i))
	}
	for i := range l.cfg.copies {
		keys = append(keys, fmt.Sprintf("c/%03d", i))
	}
	for i, k := range keys {
		mc, name := l.gws[i%len(l.gws)], l.names[i%len(l.gws)]
		o := h.begin(&op{client: -1, kind: opFinal, key: k, gateway: name, n: -1})
		octx, cancel := context.WithTimeout(ctx, time.Minute)
		h.finish(o, l.read(octx, mc, o, minio.GetObjectOptions{}))
		cancel()
	}
}

// summary is the closing report of a run.
func summary(ops []*op, vs []violation, nem *nemesis, m *model, healed time.Duration, healErr error, fr fsckResult, spaceErr error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "=== chaos summary (seed %d)\n", m.seed)
	counts := map[opKind]map[outcome]int{}
	var kinds []string
	for _, o := range ops {
		if counts[o.kind] == nil {
			counts[o.kind] = map[outcome]int{}
			kinds = append(kinds, string(o.kind))
		}
		counts[o.kind][o.out]++
	}
	sort.Strings(kinds)
	fmt.Fprintf(&b, "operations: %d (for reads, failed = 404 NoSuchKey)\n", len(ops))
	for _, k := range kinds {
		c := counts[opKind(k)]
		fmt.Fprintf(&b, "  %-10s ok %6d  failed %5d  unknown %5d\n", k, c[outOK], c[outFailed], c[outUnknown])
	}
	fmt.Fprintf(&b, "unknown outcomes by cause (most frequent):\n%s", causes(ops))
	nem.mu.Lock()
	var fk []string
	total := 0
	for k, n := range nem.hits {
		fk = append(fk, fmt.Sprintf("  %-18s %d", k, n))
		total += n
	}
	nem.mu.Unlock()
	sort.Strings(fk)
	fmt.Fprintf(&b, "faults injected: %d\n%s\n", total, strings.Join(fk, "\n"))
	for _, d := range nem.dmg {
		state := "NOT repaired"
		if !d.resolved.IsZero() {
			state = fmt.Sprintf("repaired after %v (%s)", d.resolved.Sub(d.at).Round(time.Second), d.note)
		}
		fmt.Fprintf(&b, "  damage: %s on %s: %s\n", d.kind, d.ds.id, state)
	}
	if len(nem.backups) > 0 || len(nem.restores) > 0 {
		fmt.Fprintf(&b, "  backups taken: %d; restores: %d\n", len(nem.backups), len(nem.restores))
		for _, r := range nem.restores {
			fmt.Fprintf(&b, "  restore: %s\n", r)
		}
	}
	for _, d := range nem.drained {
		fmt.Fprintf(&b, "  drain: %s\n", d)
	}
	if nem.draining != nil {
		fmt.Fprintf(&b, "  drain: %s NOT drained\n", nem.draining.id)
	}
	if len(nem.catchUps) > 0 || len(nem.behind) > 0 {
		cu := slices.Clone(nem.catchUps)
		slices.Sort(cu)
		var med, mx time.Duration
		if len(cu) > 0 {
			med, mx = cu[len(cu)/2], cu[len(cu)-1]
		}
		fmt.Fprintf(&b, "catch-up of restarted dataservers (every needle its volume's other members hold): %d measured, median %v, max %v; %d not caught up within %v\n",
			len(cu), med.Round(100*time.Millisecond), mx.Round(100*time.Millisecond), len(nem.behind), catchUpLimit)
		for _, x := range nem.behind {
			fmt.Fprintf(&b, "  %s\n", x)
		}
	}
	byClass := map[string]int{}
	lostFinal := 0
	for _, v := range vs {
		byClass[v.class]++
		if v.read.kind == opFinal {
			lostFinal++
		}
	}
	fmt.Fprintf(&b, "acknowledged writes lost (final read-back wrong or failing): %d\n", lostFinal)
	fmt.Fprintf(&b, "reads that missed an acknowledged write: %d\n", byClass["lost"])
	fmt.Fprintf(&b, "wrong bytes served: %d\n", byClass["wrong-bytes"])
	fmt.Fprintf(&b, "listing violations: %d\n", byClass["list"])
	fmt.Fprintf(&b, "writes refused (4xx) that took effect: %d\n", byClass["refused-applied"])
	fmt.Fprintf(&b, "unreadable after the nemesis stopped: %d\n", byClass["unreadable"])
	if len(nem.restores) > 0 {
		// The same history checked as if no restore had happened: the
		// reads it finds wrong saw what a restore brought back.
		var rest []*op
		for _, o := range ops {
			if o.kind != opRestore {
				rest = append(rest, o)
			}
		}
		rewound := len(buildModel(m.seed, rest).check(rest)) - len(vs)
		fmt.Fprintf(&b, "reads and listings that saw a restore's rewind (wrong without it): %d\n", rewound)
	}
	fate := m.unknownFate(ops)
	var fl []string
	nUnknown := 0
	for k, n := range fate {
		fl = append(fl, fmt.Sprintf("  %-70s %d", k, n))
		nUnknown += n
	}
	sort.Strings(fl)
	fmt.Fprintf(&b, "writes with unknown outcome: %d\n%s\n", nUnknown, strings.Join(fl, "\n"))
	if healErr != nil {
		fmt.Fprintf(&b, "full redundancy: NOT reached: %v\n", healErr)
	} else {
		fmt.Fprintf(&b, "full redundancy: %v after the last fault ended\n", healed.Round(time.Second))
	}
	fmt.Fprintf(&b, "space: %d objects; live needle bytes %d, in shard files %d (garbage awaiting compaction %d); unreferenced %d in %d needles\n",
		fr.objects, fr.liveBytes, fr.fileBytes, fr.garbageBytes, fr.leakedBytes, len(fr.leaked))
	if spaceErr != nil {
		fmt.Fprintf(&b, "space leak: %v\n", spaceErr)
	}
	return b.String()
}

var (
	addrRE   = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)
	numberRE = regexp.MustCompile(`[0-9a-f]*[0-9][0-9a-f]*`)
)

// causes counts the unknown outcomes by their error, with addresses and
// numbers blotted out.
func causes(ops []*op) string {
	count := map[string]int{}
	for _, o := range ops {
		if o.out == outUnknown {
			e := addrRE.ReplaceAllString(o.err, "ADDR")
			e = numberRE.ReplaceAllString(e, "N")
			if len(e) > 110 {
				e = e[:110]
			}
			count[e]++
		}
	}
	type kv struct {
		k string
		n int
	}
	var l []kv
	for k, n := range count {
		l = append(l, kv{k, n})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].n > l[j].n })
	var b strings.Builder
	for i, x := range l {
		if i == 8 {
			break
		}
		fmt.Fprintf(&b, "  %5d  %s\n", x.n, x.k)
	}
	return b.String()
}
