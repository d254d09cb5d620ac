package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
)

// readHold keeps the segments of one multi-segment read held on their
// members (dataserver/doc.go, "Open readers and holds"), so that the
// nameserver's delete queue does not delete a segment the reader has yet
// to reach when the object is overwritten or deleted meanwhile. It renews
// the hold every HoldTTL/3 until Close, which releases it; a reader that
// vanishes stops renewing and its hold expires after HoldTTL.
type readHold struct {
	c      *Client
	id     uint64
	segs   []depot.Segment
	cancel context.CancelFunc
	done   chan struct{}
	// addrs are the members the hold was last sent to, by address.
	mu    sync.Mutex
	addrs map[string][]holdNeedle
}

// holdNeedle and holdRequest are the JSON of POST /holds.
type holdNeedle struct {
	Vol    uint32 `json:"vol"`
	Idx    int    `json:"idx"`
	Needle string `json:"needle"`
}

type holdRequest struct {
	ID      string       `json:"id"`
	TTLms   int64        `json:"ttl_ms"`
	Release bool         `json:"release"`
	Needles []holdNeedle `json:"needles"`
}

// maxHoldBatch is the dataserver's bound on the needles of one request.
const maxHoldBatch = 4096

// startHold starts holding segs; ctx is the reader's context.
func (c *Client) startHold(ctx context.Context, segs []depot.Segment) *readHold {
	ctx, cancel := context.WithCancel(ctx)
	h := &readHold{c: c, id: rand.Uint64(), segs: segs, cancel: cancel, done: make(chan struct{})}
	go h.run(ctx)
	return h
}

func (h *readHold) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.c.cfg.HoldTTL / 3)
	defer t.Stop()
	for {
		// Each round ends by the next one: a member that does not answer
		// (paused, black-holed) must not hold up the renewals on the
		// others, whose holds would expire meanwhile.
		rctx, cancel := context.WithTimeout(ctx, h.c.cfg.HoldTTL/3)
		if err := h.send(rctx, false); err != nil && ctx.Err() == nil {
			h.c.cfg.Logger.Warn("hold segments of a read", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// close stops renewing and releases the hold (best effort, bounded: a
// hold that is not released expires on its own).
func (h *readHold) close(ctx context.Context) {
	h.cancel()
	<-h.done
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := h.send(rctx, true); err != nil {
		h.c.cfg.Logger.Debug("release hold of a read", "err", err)
	}
}

// send sets (or releases) the hold on every member of every segment, one
// request per member address.
func (h *readHold) send(ctx context.Context, release bool) error {
	byAddr := h.targets(ctx, release)
	var wg sync.WaitGroup
	errs := make(chan error, len(byAddr))
	for addr, needles := range byAddr {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < len(needles); i += maxHoldBatch {
				req := holdRequest{ID: fmt.Sprintf("%016x", h.id), TTLms: h.c.cfg.HoldTTL.Milliseconds(),
					Release: release, Needles: needles[i:min(i+maxHoldBatch, len(needles))]}
				if err := h.c.postHold(ctx, addr, req); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// targets groups the held needles by member address: for a release, the
// members the hold was last sent to; else the segments' current members.
func (h *readHold) targets(ctx context.Context, release bool) map[string][]holdNeedle {
	h.mu.Lock()
	defer h.mu.Unlock()
	if release {
		return h.addrs
	}
	byAddr := make(map[string][]holdNeedle)
	for _, s := range h.segs {
		fid, err := depot.ParseFid(s.Fid)
		if err != nil {
			continue
		}
		vol, err := h.c.volume(ctx, fid.Volume, time.Time{})
		if err != nil {
			continue
		}
		for _, m := range vol.Members {
			byAddr[m.Addr] = append(byAddr[m.Addr], holdNeedle{Vol: uint32(fid.Volume), Idx: m.Index,
				Needle: strconv.FormatUint(uint64(fid.Needle), 16)})
		}
	}
	// Members the hold left (a volume switched) keep it until it expires.
	h.addrs = byAddr
	return byAddr
}

func (c *Client) postHold(ctx context.Context, addr string, hr holdRequest) error {
	body, err := json.Marshal(hr)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.TLS.URL(addr)+"/holds", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("hold on %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("hold on %s: %w", addr, httpx.ReadError(resp))
	}
	return nil
}
