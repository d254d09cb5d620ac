package repair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/dataserver"
	"depot/erasure"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// A shard rebuild streams: instead of k requests per needle it opens one
// needle run (GET /shard/{vol}/{idx}/needles, dataserver/doc.go) on each
// of k members, reads the runs side by side in id order, rebuilds every
// needle whose k shards agree, and hands the result to a writer that
// appends it without waiting for an fsync; one Store.Sync covers all that
// was written before each progress report. A needle the runs do not give
// k consistent shards of (missing on a peer, corrupt there, a run cut
// short) is rebuilt as needle-level repair does, from every other member.

const (
	// runAhead is how many needles each run reads ahead of the rebuild,
	// and how many rebuilt needles wait for the writer.
	runAhead = 2
	// runIdle is how long a run may deliver nothing while it is being
	// read before it is abandoned (its needles then come one by one).
	runIdle = time.Minute
	// maxRunNeedle bounds a needle in a run: the store's own limit.
	maxRunNeedle = 128 << 20
	// minBuf is the least a needle buffer of a rebuild is allocated with,
	// so that a buffer handed back fits most needles after it.
	minBuf = 1 << 20
)

// runItem is one frame of a run, or the error that ended it.
type runItem struct {
	f   dataserver.Frame
	b   []byte
	err error
}

// runSource is the run of one member, read ahead by its own goroutine.
type runSource struct {
	idx  int
	ch   chan runItem // frames in id order; closed at the end
	free chan []byte  // buffers handed back for reuse
	head *runItem     // the next frame, not yet consumed
	done bool
	err  error
}

// peek returns the source's next frame, nil once it has ended.
func (s *runSource) peek(ctx context.Context) *runItem {
	if s.head != nil || s.done {
		return s.head
	}
	select {
	case it, ok := <-s.ch:
		switch {
		case !ok:
			s.done = true
		case it.err != nil:
			s.done, s.err = true, it.err
		default:
			s.head = &it
		}
	case <-ctx.Done():
		s.done = true
	}
	return s.head
}

// release hands a buffer back to the source's reader.
func (s *runSource) release(b []byte) {
	if b == nil {
		return
	}
	select {
	case s.free <- b:
	default:
	}
}

// readRun reads member idx's run of needles after < id <= until into s.ch,
// until the run ends or ctx is done.
func (w *Worker) readRun(ctx context.Context, v depot.Volume, idx int, after, until depot.NeedleID, s *runSource) {
	defer close(s.ch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	send := func(it runItem) bool {
		select {
		case s.ch <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	idle := time.AfterFunc(runIdle, cancel)
	defer idle.Stop()
	m := v.Members[idx]
	url := w.cfg.TLS.URL(m.Addr) + "/shard/" + strconv.FormatUint(uint64(v.ID), 10) + "/" + strconv.Itoa(idx) +
		"/needles?format=raw&after=" + strconv.FormatUint(uint64(after), 16) + "&until=" + strconv.FormatUint(uint64(until), 16)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		send(runItem{err: err})
		return
	}
	w.cfg.Key.Sign(req)
	resp, err := w.stream.Do(req)
	if err != nil {
		send(runItem{err: fmt.Errorf("run of %d/%d on %s: %w", v.ID, idx, m.Node, err)})
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return // no shard file there: an empty run
	}
	if resp.StatusCode != http.StatusOK {
		send(runItem{err: fmt.Errorf("run of %d/%d on %s: %w", v.ID, idx, m.Node, httpx.ReadError(resp))})
		return
	}
	fr := dataserver.NewFrameReader(resp.Body, maxRunNeedle)
	for {
		idle.Reset(runIdle)
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		var b []byte
		if err == nil && f.Kind == dataserver.FrameNeedle {
			select {
			case b = <-s.free:
			default:
			}
			if need := fr.BufferSize(); int64(cap(b)) < need {
				// Room for the needles after it too: buffers go round.
				b = make([]byte, 0, max(need, minBuf))
			}
			b, err = fr.Body(b)
			if err != nil && fr.Current().Kind == dataserver.FrameCorrupt {
				// A record the member sent as it is on its disk failed its
				// checksums here; the run goes on and the needle comes
				// from the other members.
				w.log.Warn("corrupt needle in a run", "volume", v.ID, "index", idx, "node", m.Node, "err", err)
				s.release(b)
				b, err = nil, nil
			}
			f = fr.Current()
		}
		idle.Stop()
		if err != nil {
			send(runItem{err: fmt.Errorf("run of %d/%d on %s: %w", v.ID, idx, m.Node, err)})
			return
		}
		if !send(runItem{f: f, b: b}) {
			return
		}
	}
}

// rebuiltNeedle is a needle of part part handed to the writer; b nil
// means gone, or skipped when skip is set.
type rebuiltNeedle struct {
	r    needleRef
	b    []byte
	part int
	skip error // why the needle could not be rebuilt
}

// maxSkips bounds the needles one attempt of a rebuild skips as
// unavailable: past it the peers, not single needles, are failing, and the
// attempt stops to be retried from its cursor.
const maxSkips = 64

// skipNeedle records a needle a rebuild of shard idx of v could not
// rebuild, so that the rebuild goes on past it: a needle never written
// whole goes to the orphan sweep, any other is recorded as a missed write
// of the slot, which needle-level repair retries once the slot's member
// is switched. An error means it could not be recorded: the rebuild must
// not go past it.
func (w *Worker) skipNeedle(ctx context.Context, ns *nsclient.Client, v depot.Volume, idx int, r needleRef, why error) error {
	fid := depot.Fid{Volume: v.ID, Needle: r.id, Cookie: r.cookie}
	reason := failureReason(why)
	w.logFailure(fid.String(), reason, "shard rebuild skipped a needle it cannot rebuild", "fid", fid.String(),
		"shard", idx, "err", why)
	if reason == reasonPartial {
		w.offerOrphan(ctx, ns, fid)
		return nil
	}
	if err := ns.Missed(ctx, fid, []int{idx}); err != nil {
		return fmt.Errorf("needle %x: record as missed: %w (skipped: %w)", uint64(r.id), err, why)
	}
	return nil
}

// minPart is the fewest needles a part of a rebuild streams on its own.
const minPart = 16

// split cuts todo into at most n parts of consecutive needles, of about
// as many bytes each and at least minPart needles.
func split(todo []needleRef, n int) [][]needleRef {
	n = max(1, min(n, len(todo)/minPart))
	var total int64
	for _, r := range todo {
		total += r.size
	}
	parts := make([][]needleRef, 0, n)
	lo, acc := 0, int64(0)
	for i, r := range todo {
		acc += r.size
		if len(parts) < n-1 && i+1 < len(todo) && acc >= total*int64(len(parts)+1)/int64(n) {
			parts = append(parts, todo[lo:i+1])
			lo = i + 1
		}
	}
	return append(parts, todo[lo:])
}

// cursor returns the last needle before the first one not yet done, from
// start (the cursor before the parts) and done[p], how many needles of
// part p are done: everything up to it may be skipped on a resume.
func cursor(start depot.NeedleID, parts [][]needleRef, done []int) depot.NeedleID {
	c := start
	for p, part := range parts {
		if done[p] > 0 {
			c = part[done[p]-1].id
		}
		if done[p] < len(part) {
			break
		}
	}
	return c
}

// rebuildRun rebuilds the needles of todo (sorted by id, all after
// j.Cursor) into shard j.Index of v, streaming from k of the members in
// peers, and reports progress in prog every second once what it covers is
// durable. todo is cut into up to streams parts of consecutive needles,
// each streamed and rebuilt on its own, side by side; the needles of all
// parts are appended by one writer, and the cursor reported is the last
// needle before which every needle is written, so a resumed job redoes
// what later parts wrote past it (the writes are idempotent). On return
// without error everything written is durable.
func (w *Worker) rebuildRun(ctx context.Context, ns *nsclient.Client, j nsclient.RepairJob, v depot.Volume, peers []int, todo []needleRef, streams int, prog *nsclient.RepairProgress) error {
	if len(todo) == 0 {
		return nil
	}
	codec, err := w.codec(v)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	parent := ctx
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	parts := split(todo, streams)
	writes := make(chan rebuiltNeedle, runAhead*len(parts))
	outFree := make(chan []byte, (runAhead+2)*len(parts))
	var (
		merges   sync.WaitGroup
		mergeMu  sync.Mutex
		mergeErr error
	)
	for p, part := range parts {
		after := j.Cursor // the run of a part starts after the part before
		if p > 0 {
			after = parts[p-1][len(parts[p-1])-1].id
		}
		srcs := make([]*runSource, 0, v.K)
		for _, i := range peers[:min(v.K, len(peers))] {
			s := &runSource{idx: i, ch: make(chan runItem, runAhead), free: make(chan []byte, runAhead+2)}
			srcs = append(srcs, s)
			wg.Go(func() { w.readRun(ctx, v, i, after, part[len(part)-1].id, s) })
		}
		merges.Go(func() {
			if err := w.mergeRuns(ctx, codec, v, j.Index, p, srcs, part, writes, outFree); err != nil {
				mergeMu.Lock()
				if mergeErr == nil && ctx.Err() == nil {
					mergeErr = err
				}
				mergeMu.Unlock()
				cancel() // the job fails: the other parts stop too
			}
		})
	}
	wg.Go(func() {
		merges.Wait()
		close(writes)
	})

	done := make([]int, len(parts)) // needles of each part written or gone

	// Every second the needles written so far are synced and the cursor
	// after them reported, in the background while writing goes on; one
	// report at a time.
	var (
		last    = time.Now()
		reports = make(chan error, 1)
		pending bool
		werr    error
	)
	fail := func(err error) {
		if werr == nil {
			werr = err
		}
		cancel()
	}
	collect := func(block bool) {
		if !pending {
			return
		}
		var err error
		if block {
			err = <-reports
		} else {
			select {
			case err = <-reports:
			default:
				return
			}
		}
		pending = false
		if err != nil {
			fail(err)
		}
	}
	unavailable := 0
	for rb := range writes {
		if werr != nil {
			continue // drain until the merges see the cancellation
		}
		if rb.skip != nil {
			if failureReason(rb.skip) != reasonPartial {
				if unavailable++; unavailable > maxSkips {
					fail(fmt.Errorf("more than %d needles unavailable, last %x: %w", maxSkips, uint64(rb.r.id), rb.skip))
					continue
				}
			}
			if err := w.skipNeedle(ctx, ns, v, j.Index, rb.r, rb.skip); err != nil {
				fail(err)
				continue
			}
			prog.Skipped++
		}
		if rb.b != nil {
			err := w.rate.wait(ctx, int64(len(rb.b)))
			if err == nil {
				_, err = w.cfg.Store.RewriteNoSync(ctx, v.ID, j.Index, rb.r.id, rb.r.cookie, bytes.NewReader(rb.b), int64(len(rb.b)))
			}
			if err != nil {
				w.failures.WithLabelValues(reasonWrite).Inc()
				fail(fmt.Errorf("needle %x: write: %w", uint64(rb.r.id), err))
				continue
			}
			w.repairBytes.Add(float64(len(rb.b)))
			w.repairNeedles.WithLabelValues("job").Inc()
			prog.Needles++
			prog.Bytes += int64(len(rb.b))
			select {
			case outFree <- rb.b:
			default:
			}
		}
		done[rb.part]++
		prog.Cursor = cursor(j.Cursor, parts, done)
		collect(false)
		if !pending && time.Since(last) >= time.Second {
			last, pending = time.Now(), true
			p := *prog // covers only needles appended before the sync starts
			wg.Go(func() { reports <- w.syncReport(ctx, ns, p) })
		}
	}
	collect(true)
	cancel()
	wg.Wait()
	if mergeErr != nil {
		return mergeErr // resumed from the last reported cursor
	}
	if werr != nil {
		return werr
	}
	if err := parent.Err(); err != nil {
		return err // the merges stopped short
	}
	if err := w.cfg.Store.Sync(context.WithoutCancel(ctx), v.ID, j.Index); err != nil && !errors.Is(err, depot.ErrNotFound) {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// syncReport makes what was written to shard p.Index of p.Volume durable,
// then reports p.
func (w *Worker) syncReport(ctx context.Context, ns *nsclient.Client, p nsclient.RepairProgress) error {
	if err := w.cfg.Store.Sync(ctx, p.Volume, p.Index); err != nil && !errors.Is(err, depot.ErrNotFound) {
		return fmt.Errorf("sync: %w", err)
	}
	if err := ns.RepairProgress(ctx, p); err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	return nil
}

// mergeRuns walks todo (part part of a job) and the sources' runs side by
// side, rebuilding each needle and sending it to writes in id order.
func (w *Worker) mergeRuns(ctx context.Context, codec *erasure.Codec, v depot.Volume, idx, part int, srcs []*runSource, todo []needleRef, writes chan<- rebuiltNeedle, outFree chan []byte) error {
	full := make([][]byte, len(v.Members))
	got := make([]fetched, 0, len(srcs))
	held := make([]*runSource, 0, len(srcs))
	reported := make(map[*runSource]bool)
	for _, r := range todo {
		got, held = got[:0], held[:0]
		for _, s := range srcs {
			for {
				it := s.peek(ctx)
				if it == nil {
					if s.err != nil && !reported[s] && ctx.Err() == nil {
						reported[s] = true
						w.log.Warn("needle run ended early; its needles are fetched one by one", "volume", v.ID, "index", idx, "err", s.err)
					}
					break
				}
				if it.f.ID > r.id {
					break
				}
				s.head = nil
				if it.f.ID < r.id || it.f.Kind != dataserver.FrameNeedle || it.f.Cookie != r.cookie {
					s.release(it.b) // not wanted here (deleted elsewhere), corrupt, or replaced
					continue
				}
				got = append(got, fetched{idx: s.idx, b: it.b})
				held = append(held, s)
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var out []byte
		var skip error
		shards, suffix, ok := consistent(got, v.K)
		if ok {
			clear(full)
			for _, f := range shards {
				full[f.idx] = f.b[:len(f.b)-len(suffix)]
			}
			var dst []byte
			select {
			case dst = <-outFree:
			default:
			}
			if cap(dst) < len(shards[0].b) {
				dst = make([]byte, 0, max(len(shards[0].b), minBuf))
			}
			rebuilt, err := codec.RebuildInto(dst, full, idx)
			if err != nil {
				return fmt.Errorf("needle %x: %w", uint64(r.id), err)
			}
			out = append(rebuilt, suffix...)
		}
		for i, s := range held {
			s.release(got[i].b)
		}
		if !ok {
			// Not in k runs alike: from every other member, needle by
			// needle; too few of them having it means it is gone.
			b, gone, err := w.rebuildShard(ctx, v, idx, r.id, r.cookie)
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				// Skipped, not stopped at: the writer records it (and
				// stops the job if too many are).
				skip = fmt.Errorf("needle %x: %w", uint64(r.id), err)
			} else if !gone {
				out = b
			}
		}
		select {
		case writes <- rebuiltNeedle{r: r, b: out, part: part, skip: skip}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
