package repair

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"depot"
	"depot/dataserver"
	"depot/erasure"
	"depot/internal/auth"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// Config configures a Worker. Zero fields take the defaults beside them.
type Config struct {
	// Node is the id of the dataserver the worker runs in. Required.
	Node string
	// Store is that dataserver's store. Required.
	Store *dataserver.Store
	// Key signs requests to the nameserver and the other dataservers.
	// Required.
	Key auth.Key
	// TLS, when not nil, makes requests to other dataservers https with
	// the cluster's mutual TLS. Default nil: plain HTTP.
	TLS *tlsconf.Cluster
	// Nameserver returns a client of the current nameserver. Required.
	Nameserver func() (*nsclient.Client, error)
	// Interval is how often tasks are fetched. Default 5s.
	Interval time.Duration
	// Rate bounds rebuild writes, in bytes per second; 0 means no bound.
	// Default 0 (cmd/depot's --repair-rate sets it).
	Rate float64
	// Parallel is how many needles needle-level repair rebuilds, and a
	// move copies, at once; shard rebuilds stream instead (stream.go).
	// Default 4.
	Parallel int
	// Streams is how many needle streams shard rebuilds run at once: up
	// to that many rebuild jobs side by side and, when there are fewer and
	// Rate is 0, each one's needles cut into consecutive parts that stream
	// side by side (stream.go); under a rate bound parts would only add
	// read-ahead on the peers. Default 2: on two cores, four streams
	// (two jobs of two parts) rebuilt slower than two
	// (BenchmarkRepair_Unthrottled).
	Streams int
	// ScrubRate bounds scrub reads, in bytes per second. Default 8 MiB/s.
	ScrubRate float64
	// ScrubInterval is the pause between two scrub passes. Default 24h.
	ScrubInterval time.Duration
	// AntiEntropyInterval is how often the local shard files are compared
	// with the nameserver's view. Default 10m.
	AntiEntropyInterval time.Duration
	// CompactGarbage is the fraction of a shard file's bytes that garbage
	// must pass (with at least 1 MiB of it) for the file to be compacted.
	// Default 0.3.
	CompactGarbage float64
	// MoveSettle is how long after the member switch of a move the old
	// copy is kept, for writers whose member list is stale, before a last
	// catch-up from it; it should exceed the clients' VolumeTTL.
	// Default 15s.
	MoveSettle time.Duration
	// OrphanGrace is how old a segment awaiting its namespace commit (tag
	// "n", client.PutOptions.Pending) must be before the anti-entropy pass
	// offers it to the nameserver as an orphan. Default 1h
	// (DefaultOrphanGrace).
	OrphanGrace time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the worker's metrics; nil means none.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Parallel <= 0 {
		c.Parallel = 4
	}
	if c.Streams <= 0 {
		c.Streams = 2
	}
	if c.ScrubRate <= 0 {
		c.ScrubRate = 8 << 20
	}
	if c.ScrubInterval <= 0 {
		c.ScrubInterval = 24 * time.Hour
	}
	if c.AntiEntropyInterval <= 0 {
		c.AntiEntropyInterval = 10 * time.Minute
	}
	if c.CompactGarbage <= 0 {
		c.CompactGarbage = 0.3
	}
	if c.MoveSettle <= 0 {
		c.MoveSettle = 15 * time.Second
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = DefaultOrphanGrace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Worker is a dataserver's repair worker; see the package documentation.
type Worker struct {
	cfg    Config
	log    *slog.Logger
	http   *http.Client
	stream *http.Client // needle runs: no overall timeout (stream.go)
	rate   *limiter

	codecMu sync.Mutex
	codecs  map[[3]int]*erasure.Codec

	repairBytes   prometheus.Counter
	repairNeedles *prometheus.CounterVec
	failures      *prometheus.CounterVec
	catchUpTime   prometheus.Gauge
	catchUps      prometheus.Counter
	scrubBytes    prometheus.Counter
	scrubCorrupt  prometheus.Counter
	differences   *prometheus.CounterVec
	compactions   prometheus.Counter

	orphans orphanState // orphans.go
	failLog failLog     // catchup.go

	wake     chan struct{} // Rejoined: a missed-write pass now
	catchMu  sync.Mutex
	returned time.Time // start of the catch-up under way; zero when none

	switchMu sync.Mutex
	switched []switched                 // slots switched here, compared again later
	targets  map[nsclient.ShardRef]bool // slots of the jobs to here, last pass

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New returns a worker; Start runs it.
func New(cfg Config) (*Worker, error) {
	if cfg.Node == "" || cfg.Store == nil || len(cfg.Key) == 0 || cfg.Nameserver == nil {
		return nil, errors.New("repair: Config needs Node, Store, Key and Nameserver")
	}
	cfg.setDefaults()
	tr := cfg.TLS.Transport()
	w := &Worker{
		cfg: cfg, log: cfg.Logger.With("component", "repair", "node", cfg.Node),
		http:   &http.Client{Timeout: 2 * time.Minute, Transport: tr},
		stream: &http.Client{Transport: tr},
		rate:   newLimiter(cfg.Rate),
		codecs: make(map[[3]int]*erasure.Codec),
		wake:   make(chan struct{}, 1),
		repairBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_repair_bytes_total", Help: "Shard bytes rebuilt and written by repair.",
		}),
		repairNeedles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_repair_needles_total", Help: "Needles rebuilt, by kind of task.",
		}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_repair_failures_total",
			Help: "Repair failures, by reason: partial (a needle no k members hold alike, skipped), unavailable (too few members answered, retried), write (the local store refused), job (a shard rebuild or move attempt failed, retried).",
		}, []string{"reason"}),
		catchUpTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "depot_repair_catchup_seconds",
			Help: "Seconds the last catch-up took: from this dataserver's return (worker start, or gossip seeing the cluster again) until no missed write of its shards was left.",
		}),
		catchUps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_repair_catchups_total", Help: "Catch-ups of missed writes completed after this dataserver returned.",
		}),
		scrubBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_scrub_bytes_total", Help: "Needle bytes re-read and verified by the scrubber.",
		}),
		scrubCorrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_scrub_corrupt_total", Help: "Corrupt needles found by the scrubber.",
		}),
		differences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "depot_antientropy_differences_total", Help: "Differences found by anti-entropy, by kind.",
		}, []string{"kind"}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "depot_compactions_total", Help: "Shard files compacted by the repair worker.",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{w.repairBytes, w.repairNeedles, w.failures, w.catchUpTime, w.catchUps, w.scrubBytes,
			w.scrubCorrupt, w.differences, w.compactions} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("repair: register metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Start runs the task loop and the scrubber until Close.
func (w *Worker) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.Rejoined() // a start is a return: catch up before anything else
	w.wg.Go(func() { w.missedLoop(ctx) })
	w.wg.Go(func() { w.taskLoop(ctx) })
	w.wg.Go(func() { w.scrubLoop(ctx) })
}

// Close stops the loops and waits for them. Safe to call twice.
func (w *Worker) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
	w.http.CloseIdleConnections()
	return nil
}

func (w *Worker) taskLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	var lastAE time.Time
	for {
		// The first pass runs at once: a dataserver that comes back
		// compares its slots with its peers (anti-entropy) before
		// anything else, catching writes whose missed report was lost.
		ae := time.Since(lastAE) >= w.cfg.AntiEntropyInterval
		if err := w.runOnce(ctx, ae, false); err != nil && ctx.Err() == nil {
			w.log.Debug("repair pass", "err", err)
		} else if ae {
			lastAE = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce does one pass of the task loop: needle-level repairs, shard
// rebuilds and, when antiEntropy is set, anti-entropy and compaction.
func (w *Worker) RunOnce(ctx context.Context, antiEntropy bool) error {
	return w.runOnce(ctx, antiEntropy, true)
}

// runOnce is RunOnce; missed tells whether it repairs the missed writes
// too (the running worker leaves them to missedLoop).
func (w *Worker) runOnce(ctx context.Context, antiEntropy, missed bool) error {
	ns, err := w.cfg.Nameserver()
	if err != nil {
		return err
	}
	// The local files are listed before the tasks are fetched: a shard
	// file is created only after its volume exists in the nameserver, so
	// every file listed here is either in Holds or stale.
	files := w.cfg.Store.Status().Files
	tasks, err := ns.RepairTasks(ctx, w.cfg.Node)
	if err != nil {
		return err
	}
	vols := make(map[depot.VolumeID]depot.Volume, len(tasks.Volumes))
	for _, v := range tasks.Volumes {
		vols[v.ID] = v
	}
	var errs []error
	errs = append(errs, w.dropCancelled(ctx, tasks), w.recheckSwitched(ctx))
	if missed && len(tasks.Missed) > 0 {
		_, err := w.repairMissed(ctx, ns, tasks.Missed, vols)
		errs = append(errs, err)
	}
	// Jobs run side by side: each waits on its peers' reads, so several
	// keep the disks and the network busy. Rebuilds share Config.Streams:
	// as many run at once, each cut into parts when there are fewer and
	// no rate bounds them.
	rebuilds := 0
	for _, j := range tasks.Jobs {
		if _, ok := vols[j.Volume]; ok && !j.Move {
			rebuilds++
		}
	}
	streams := 1
	if w.rate == nil {
		streams = max(1, w.cfg.Streams/max(1, min(rebuilds, w.cfg.Streams)))
	}
	sem := make(chan struct{}, w.cfg.Streams)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, j := range tasks.Jobs {
		v, ok := vols[j.Volume]
		if !ok {
			continue
		}
		wg.Go(func() {
			var err error
			if j.Move {
				err = w.runMove(ctx, ns, j, v)
			} else {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					return
				}
				err = w.runJob(ctx, ns, j, v, streams)
				<-sem
			}
			if err != nil {
				switch {
				case ctx.Err() != nil:
				case errors.Is(err, depot.ErrNotFound):
					// Cancelled (its member came back) or given to another
					// target: no failure; the next pass drops the copy.
					w.log.Info("repair job ended elsewhere", "volume", j.Volume, "index", j.Index, "err", err)
				default:
					w.jobFailed(ctx, ns, j, err)
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("job %d/%d: %w", j.Volume, j.Index, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(tasks.Settle) > 0 {
		errs = append(errs, w.settleMoves(ctx, ns, tasks.Settle, vols))
	}
	if antiEntropy {
		errs = append(errs, w.antiEntropy(ctx, ns, files, tasks))
	}
	return errors.Join(errs...)
}

// repairMissed rebuilds the listed needles' shards held here; it returns
// how many shards it cleared from the missed records.
func (w *Worker) repairMissed(ctx context.Context, ns *nsclient.Client, missed []nsclient.MissedWrite, vols map[depot.VolumeID]depot.Volume) (int, error) {
	var (
		mu   sync.Mutex
		done []nsclient.MissedWrite
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, w.cfg.Parallel)
	)
	for _, mw := range missed {
		fid, err := depot.ParseFid(mw.Fid)
		if err != nil {
			continue
		}
		v, ok := vols[fid.Volume]
		if !ok {
			continue
		}
		for _, idx := range mw.Shards {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return 0, ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-sem }()
				n, gone, err := w.rebuildNeedle(ctx, v, idx, fid.Needle, fid.Cookie)
				if err != nil && ctx.Err() == nil {
					reason := failureReason(err)
					w.logFailure(fid.String(), reason, "needle repair failed", "fid", fid.String(), "shard", idx, "err", err)
					if reason == reasonPartial {
						// Never written whole: nothing to rebuild, ever.
						// Its record goes and the sweep takes the pieces.
						w.offerOrphan(ctx, ns, fid)
						err, gone = nil, true
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s shard %d: %w", fid, idx, err))
					return
				}
				if !gone {
					w.repairNeedles.WithLabelValues("missed").Inc()
					w.log.Debug("needle repaired", "fid", fid.String(), "shard", idx, "bytes", n)
				}
				done = append(done, nsclient.MissedWrite{Fid: mw.Fid, Shards: []int{idx}})
			})
		}
	}
	wg.Wait()
	if len(done) > 0 {
		if err := ns.Repaired(ctx, done); err != nil {
			return 0, errors.Join(append(errs, err)...)
		}
	}
	return len(done), errors.Join(errs...)
}

// listEntry is one needle of GET /shard/{vol}/{idx}.
type listEntry struct {
	ID      string `json:"id"`
	Cookie  string `json:"cookie"`
	Size    int64  `json:"size"`
	Deleted bool   `json:"deleted"`
}

type needleRef struct {
	id      depot.NeedleID
	cookie  depot.Cookie
	size    int64
	deleted bool
}

// listPeer returns the needles of shard idx of v on its member; a missing
// shard file is an empty list.
func (w *Worker) listPeer(ctx context.Context, v depot.Volume, idx int) ([]needleRef, error) {
	m := v.Members[idx]
	url := w.cfg.TLS.URL(m.Addr) + "/shard/" + strconv.FormatUint(uint64(v.ID), 10) + "/" + strconv.Itoa(idx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	w.cfg.Key.Sign(req)
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list %d/%d on %s: %w", v.ID, idx, m.Node, httpx.ReadError(resp))
	}
	var body struct {
		Needles []listEntry `json:"needles"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("list %d/%d on %s: %w", v.ID, idx, m.Node, err)
	}
	out := make([]needleRef, 0, len(body.Needles))
	for _, e := range body.Needles {
		id, err1 := strconv.ParseUint(e.ID, 16, 64)
		ck, err2 := strconv.ParseUint(e.Cookie, 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, needleRef{id: depot.NeedleID(id), cookie: depot.Cookie(ck), size: e.Size, deleted: e.Deleted})
	}
	return out, nil
}

// runJob rebuilds shard j.Index of v here, after j.Cursor, in up to
// streams parts side by side, then reports it done.
func (w *Worker) runJob(ctx context.Context, ns *nsclient.Client, j nsclient.RepairJob, v depot.Volume, streams int) error {
	type listed struct {
		refs []needleRef
		err  error
	}
	lists := make([]listed, len(v.Members))
	var wg sync.WaitGroup
	for i := range v.Members {
		if i == j.Index {
			continue
		}
		wg.Go(func() {
			refs, err := w.listPeer(ctx, v, i)
			lists[i] = listed{refs, err}
		})
	}
	wg.Wait()
	union := make(map[depot.NeedleID]needleRef)
	ok := 0
	for i, l := range lists {
		if i == j.Index || l.err != nil {
			continue
		}
		ok++
		for _, r := range l.refs {
			old, seen := union[r.id]
			if seen {
				r.deleted = r.deleted || old.deleted
				r.size = max(r.size, old.size)
			}
			union[r.id] = r
		}
	}
	if ok < v.K {
		return fmt.Errorf("%w: listed %d members, need %d", erasure.ErrTooFewShards, ok, v.K)
	}
	todo, total := pending(maps.Values(union), j.Cursor)
	prog := nsclient.RepairProgress{Volume: j.Volume, Index: j.Index, To: j.To, Cursor: j.Cursor,
		Needles: j.Needles, Bytes: j.Bytes, Total: total, Skipped: j.Skipped}
	w.log.Info("rebuilding shard", "volume", v.ID, "index", j.Index, "from", j.From, "needles", len(todo), "cursor", j.Cursor)
	var peers []int
	for i, l := range lists {
		if i != j.Index && l.err == nil {
			peers = append(peers, i)
		}
	}
	if err := w.rebuildRun(ctx, ns, j, v, peers, todo, streams, &prog); err != nil {
		return err // resumed from the last reported cursor
	}
	prog.Done = true
	prog.Total = max(prog.Total, prog.Bytes)
	if err := ns.RepairProgress(ctx, prog); err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	w.log.Info("shard rebuilt", "volume", v.ID, "index", j.Index, "needles", prog.Needles, "bytes", prog.Bytes,
		"skipped", prog.Skipped)
	w.afterSwitch(ctx, v, j.Index)
	return nil
}

// pending returns the live needles of refs past cursor, in id order, and
// the bytes of every live needle: what a job still has to do, and its
// size in all.
func pending(refs iter.Seq[needleRef], cursor depot.NeedleID) (todo []needleRef, total int64) {
	for r := range refs {
		if r.deleted {
			continue
		}
		total += r.size
		if r.id > cursor {
			todo = append(todo, r)
		}
	}
	slices.SortFunc(todo, func(a, b needleRef) int { return cmp.Compare(a.id, b.id) })
	return todo, total
}

func (w *Worker) codec(v depot.Volume) (*erasure.Codec, error) {
	key := [3]int{v.K, v.M, v.Unit}
	w.codecMu.Lock()
	defer w.codecMu.Unlock()
	if c, ok := w.codecs[key]; ok {
		return c, nil
	}
	c, err := erasure.New(v.K, v.M, v.Unit)
	if err != nil {
		return nil, err
	}
	w.codecs[key] = c
	return c, nil
}

// fetched is one other member's copy of a needle's shard.
type fetched struct {
	idx      int
	b        []byte
	notFound bool
	err      error
}

// fetchShard reads the whole needle id of shard idx of v from its member.
func (w *Worker) fetchShard(ctx context.Context, v depot.Volume, idx int, id depot.NeedleID, cookie depot.Cookie) fetched {
	m := v.Members[idx]
	url := w.cfg.TLS.URL(m.Addr) + "/shard/" + strconv.FormatUint(uint64(v.ID), 10) + "/" + strconv.Itoa(idx) + "/" +
		strconv.FormatUint(uint64(id), 16) + "?cookie=" + fmt.Sprintf("%08x", uint32(cookie))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fetched{idx: idx, err: err}
	}
	w.cfg.Key.Sign(req)
	resp, err := w.http.Do(req)
	if err != nil {
		return fetched{idx: idx, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fetched{idx: idx, notFound: true}
	}
	if resp.StatusCode != http.StatusOK {
		return fetched{idx: idx, err: httpx.ReadError(resp)}
	}
	if resp.ContentLength < 0 || resp.ContentLength > 128<<20 {
		return fetched{idx: idx, err: fmt.Errorf("shard %d on %s: length %d", idx, m.Node, resp.ContentLength)}
	}
	b := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return fetched{idx: idx, err: fmt.Errorf("shard %d on %s: %w", idx, m.Node, err)}
	}
	return fetched{idx: idx, b: b}
}

// tagSuffix returns the length of the segment tag suffix at the end of a
// shard (client/doc.go): tag JSON, uint16 length, "DT".
func tagSuffix(b []byte) (int, error) {
	n := len(b)
	if n < 4 || string(b[n-2:]) != "DT" {
		return 0, fmt.Errorf("%w: shard has no tag suffix", depot.ErrCorrupt)
	}
	l := int(binary.LittleEndian.Uint16(b[n-4:])) + 4
	if l > n || l > 512 {
		return 0, fmt.Errorf("%w: tag length %d in a %d-byte shard", depot.ErrCorrupt, l, n)
	}
	return l, nil
}

// rebuildNeedle rebuilds shard idx of needle id in v from k other members
// and writes it to the local store. gone reports a needle that too many
// members do not have (deleted, or never acknowledged): nothing is
// written then.
func (w *Worker) rebuildNeedle(ctx context.Context, v depot.Volume, idx int, id depot.NeedleID, cookie depot.Cookie) (n int64, gone bool, err error) {
	out, gone, err := w.rebuildShard(ctx, v, idx, id, cookie)
	if err != nil || gone {
		return 0, gone, err
	}
	if err := w.rate.wait(ctx, int64(len(out))); err != nil {
		return 0, false, err
	}
	if _, err := w.cfg.Store.Rewrite(ctx, v.ID, idx, id, cookie, bytes.NewReader(out), int64(len(out))); err != nil {
		return 0, false, fmt.Errorf("write shard %d: %w", idx, err)
	}
	w.repairBytes.Add(float64(len(out)))
	return int64(len(out)), false, nil
}

// rebuildShard rebuilds shard idx of needle id in v, tag suffix included,
// from k other members, fetching the needle from each; gone as for
// rebuildNeedle.
func (w *Worker) rebuildShard(ctx context.Context, v depot.Volume, idx int, id depot.NeedleID, cookie depot.Cookie) (out []byte, gone bool, err error) {
	codec, err := w.codec(v)
	if err != nil {
		return nil, false, err
	}
	var order []int
	for i := range v.Members {
		if i != idx {
			order = append(order, i)
		}
	}
	var got []fetched
	fetch := func(idxs []int) {
		res := make([]fetched, len(idxs))
		var wg sync.WaitGroup
		for i, j := range idxs {
			wg.Go(func() { res[i] = w.fetchShard(ctx, v, j, id, cookie) })
		}
		wg.Wait()
		got = append(got, res...)
	}
	fetch(order[:min(v.K, len(order))])
	shards, suffix, ok := consistent(got, v.K)
	if !ok {
		fetch(order[min(v.K, len(order)):])
		shards, suffix, ok = consistent(got, v.K)
	}
	if !ok {
		missing, failed := 0, 0
		var firstErr error
		for _, f := range got {
			switch {
			case f.notFound:
				missing++
			case f.err != nil:
				failed++
				if firstErr == nil {
					firstErr = f.err
				}
			}
		}
		if failed == 0 && len(order)-missing < v.K {
			return nil, true, nil
		}
		if failed == 0 {
			// Every other member answered and at least k hold it, but
			// not k alike: pieces of an upload cut short.
			return nil, false, fmt.Errorf("%w: %d of %d other members hold it, none %d alike", errPartial,
				len(order)-missing, len(order), v.K)
		}
		return nil, false, fmt.Errorf("%w: %d of %d other members answered alike, need %d (missing %d, failed %d): %v",
			erasure.ErrTooFewShards, len(got)-missing-failed, len(order), v.K, missing, failed, firstErr)
	}
	full := make([][]byte, len(v.Members))
	for _, f := range shards {
		full[f.idx] = f.b[:len(f.b)-len(suffix)]
	}
	rebuilt, err := codec.Rebuild(full, idx)
	if err != nil {
		return nil, false, err
	}
	return append(rebuilt, suffix...), false, nil
}

// consistent picks k fetched shards of the same length and tag suffix.
func consistent(got []fetched, k int) ([]fetched, []byte, bool) {
	type group struct {
		suffix []byte
		fs     []fetched
	}
	var groups []*group
	for _, f := range got {
		if f.err != nil || f.notFound {
			continue
		}
		l, err := tagSuffix(f.b)
		if err != nil {
			continue
		}
		suf := f.b[len(f.b)-l:]
		var g *group
		for _, c := range groups {
			if len(c.fs[0].b) == len(f.b) && bytes.Equal(c.suffix, suf) {
				g = c
				break
			}
		}
		if g == nil {
			g = &group{suffix: suf}
			groups = append(groups, g)
		}
		g.fs = append(g.fs, f)
		if len(g.fs) >= k {
			return g.fs[:k], g.suffix, true
		}
	}
	return nil, nil, false
}

// limiter spaces out byte counts to a rate; nil or a zero rate never
// waits.
type limiter struct {
	rate float64 // bytes per second
	mu   sync.Mutex
	next time.Time
}

func newLimiter(rate float64) *limiter {
	if rate <= 0 {
		return nil
	}
	return &limiter{rate: rate}
}

func (l *limiter) wait(ctx context.Context, n int64) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
