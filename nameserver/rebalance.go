package nameserver

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/nameserver/nsclient"
)

// Growth and retirement: rebalance and drain. The nameserver plans which
// shard slots move where and records each move as a repair job with Move
// set; the repair worker of the target dataserver copies the shard from
// its current member (package repair, move.go), the member list switches
// through repair_progress as for a rebuild, and the old copy is kept as a
// "retired" slot until the target reports that it caught up with it
// (move_settled). See doc.go, "Rebalance and drain".

// Rebalance commands; applyRebalance applies them.
const (
	CmdRebalanceSet CommandType = "rebalance_set" // rebalanceSetCmd
	CmdMoveStart    CommandType = "move_start"    // moveStartCmd
	CmdMoveSettled  CommandType = "move_settled"  // nsclient.SettledRequest
	CmdMoveCancel   CommandType = "move_cancel"   // nsclient.SettledRequest
)

// bktRebalance holds "state" → JSON rebalanceState; bktRetired holds the
// switched moves whose old copy is kept: uint32 volume id, uint16 shard
// index → JSON nsclient.RepairJob (From: the old member, Updated: the time
// of the switch). Both are created on first use.
var (
	bktRebalance = []byte("rebalance")
	bktRetired   = []byte("retired")
	keyState     = []byte("state")
)

// rebalanceState is the persisted state of rebalancing: the run under way
// (Active) and the dataservers being drained.
type rebalanceState struct {
	Active     bool      `json:"active"`
	Band       float64   `json:"band"`
	Started    time.Time `json:"started,omitzero"`
	Draining   []string  `json:"draining,omitempty"`
	Moved      int64     `json:"moved"`
	MovedBytes int64     `json:"moved_bytes"`
}

// rebalanceSetCmd starts or stops a run, or starts or stops draining Node.
type rebalanceSetCmd struct {
	Op   string  `json:"op"` // start, stop, drain, undrain
	Band float64 `json:"band,omitempty"`
	Node string  `json:"node,omitempty"`
}

// moveStartCmd starts moves of healthy shards (jobs with Move set).
type moveStartCmd struct {
	Jobs []nsclient.RepairJob `json:"jobs"`
}

func getRebalanceState(tx *bbolt.Tx) rebalanceState {
	var st rebalanceState
	if b := tx.Bucket(bktRebalance); b != nil {
		if raw := b.Get(keyState); raw != nil {
			json.Unmarshal(raw, &st)
		}
	}
	return st
}

func putRebalanceState(tx *bbolt.Tx, st rebalanceState) error {
	b, err := tx.CreateBucketIfNotExists(bktRebalance)
	if err != nil {
		return &storageError{err}
	}
	return putJSON(b, keyState, st)
}

// applyRebalance applies the rebalance commands; ok is false for other
// types.
func (s *store) applyRebalance(tx *bbolt.Tx, cmd Command) (res any, ok bool, err error) {
	switch cmd.Type {
	case CmdRebalanceSet:
		var c rebalanceSetCmd
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, applyRebalanceSet(tx, cmd, c)
	case CmdMoveStart:
		var c moveStartCmd
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		return nil, true, applyMoveStart(tx, c)
	case CmdMoveSettled, CmdMoveCancel:
		var c nsclient.SettledRequest
		if err := decode(cmd, &c); err != nil {
			return nil, true, err
		}
		bkt := bktRetired
		if cmd.Type == CmdMoveCancel {
			bkt = bktRepairs
		}
		b := tx.Bucket(bkt)
		key := repairKey(c.Volume, c.Index)
		var j nsclient.RepairJob
		if b == nil || b.Get(key) == nil || json.Unmarshal(b.Get(key), &j) != nil || j.To != c.To || !j.Move {
			return nil, true, fmt.Errorf("move %d/%d to %s: %w", c.Volume, c.Index, c.To, depot.ErrNotFound)
		}
		return nil, true, del(b, key)
	}
	return nil, false, nil
}

func applyRebalanceSet(tx *bbolt.Tx, cmd Command, c rebalanceSetCmd) error {
	st := getRebalanceState(tx)
	fresh := !st.Active && len(st.Draining) == 0
	switch c.Op {
	case "start":
		if c.Band <= 0 || c.Band >= 1 {
			return fmt.Errorf("%w: band %v, want 0 < band < 1", depot.ErrBadRequest, c.Band)
		}
		if !st.Active {
			st.Started = cmd.Time
		}
		st.Active, st.Band = true, c.Band
	case "stop":
		st.Active = false
	case "drain":
		if tx.Bucket(bktDataservers).Get([]byte(c.Node)) == nil {
			return fmt.Errorf("dataserver %q: %w", c.Node, depot.ErrNotFound)
		}
		if !slices.Contains(st.Draining, c.Node) {
			st.Draining = append(st.Draining, c.Node)
			slices.Sort(st.Draining)
		}
		if fresh {
			st.Started = cmd.Time
		}
	case "undrain":
		st.Draining = slices.DeleteFunc(st.Draining, func(n string) bool { return n == c.Node })
	default:
		return fmt.Errorf("%w: rebalance op %q", depot.ErrBadRequest, c.Op)
	}
	if fresh && (st.Active || len(st.Draining) > 0) {
		st.Moved, st.MovedBytes = 0, 0
	}
	return putRebalanceState(tx, st)
}

func applyMoveStart(tx *bbolt.Tx, c moveStartCmd) error {
	rb := tx.Bucket(bktRepairs)
	for _, j := range c.Jobs {
		v, err := getVolume(tx, j.Volume)
		if err != nil {
			return err
		}
		if j.Index < 0 || j.Index >= len(v.Members) || v.Members[j.Index].Node != j.From || j.To == "" ||
			slices.ContainsFunc(v.Members, func(m depot.Member) bool { return m.Node == j.To }) {
			return fmt.Errorf("%w: move %d/%d from %s to %s does not match the volume", depot.ErrBadRequest,
				j.Volume, j.Index, j.From, j.To)
		}
		if rb != nil && rb.Get(repairKey(j.Volume, j.Index)) != nil {
			return fmt.Errorf("move %d/%d: %w: a job of the slot is under way", j.Volume, j.Index, depot.ErrExists)
		}
	}
	b, err := tx.CreateBucketIfNotExists(bktRepairs)
	if err != nil {
		return &storageError{err}
	}
	for _, j := range c.Jobs {
		j.Move = true
		j.Cursor, j.Needles, j.Bytes, j.Total = 0, 0, 0, 0
		if err := putJSON(b, repairKey(j.Volume, j.Index), j); err != nil {
			return err
		}
	}
	return nil
}

// moveSwitched is called by repair_progress when a move job is done and the
// member list switched from old to j.To: the old copy is kept (retired)
// until the move settles, and the run's counters grow.
func moveSwitched(tx *bbolt.Tx, cmd Command, j nsclient.RepairJob, old string, bytes int64) error {
	b, err := tx.CreateBucketIfNotExists(bktRetired)
	if err != nil {
		return &storageError{err}
	}
	j.From, j.Updated = old, cmd.Time
	if err := putJSON(b, repairKey(j.Volume, j.Index), j); err != nil {
		return err
	}
	st := getRebalanceState(tx)
	st.Moved++
	st.MovedBytes += bytes
	return putRebalanceState(tx, st)
}

// retiredMoves returns the switched moves that have not settled.
func (s *Server) retiredMoves() ([]nsclient.RepairJob, error) {
	var out []nsclient.RepairJob
	err := s.store.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bktRetired)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var j nsclient.RepairJob
			if err := json.Unmarshal(v, &j); err != nil {
				return fmt.Errorf("retired %x: %w", k, err)
			}
			out = append(out, j)
			return nil
		})
	})
	return out, err
}

func (s *Server) rebalanceState() rebalanceState {
	var st rebalanceState
	s.store.db.View(func(tx *bbolt.Tx) error {
		st = getRebalanceState(tx)
		return nil
	})
	return st
}

// drainingSet returns the dataservers being drained; placement and
// repair do not choose them.
func (s *Server) drainingSet() map[string]bool {
	st := s.rebalanceState()
	if len(st.Draining) == 0 {
		return nil
	}
	out := make(map[string]bool, len(st.Draining))
	for _, n := range st.Draining {
		out[n] = true
	}
	return out
}

// moveTasks adds to t the settling moves that target node and the retired
// slots it still keeps (called by RepairTasks).
func (s *Server) moveTasks(node string, t *nsclient.RepairTasks) error {
	retired, err := s.retiredMoves()
	if err != nil {
		return err
	}
	c := s.store.cache
	for _, j := range retired {
		switch node {
		case j.From:
			t.Retired = append(t.Retired, nsclient.ShardRef{Volume: j.Volume, Index: j.Index})
		case j.To:
			if d, ok := c.dataserver(j.From); ok {
				j.FromAddr = d.Addr
			}
			t.Settle = append(t.Settle, j)
			if !slices.ContainsFunc(t.Volumes, func(v depot.Volume) bool { return v.ID == j.Volume }) {
				if v, ok := c.volume(j.Volume); ok {
					t.Volumes = append(t.Volumes, v)
				}
			}
		}
	}
	return nil
}

// nodeUse is a dataserver's share of the cluster's shard bytes.
type nodeUse struct {
	id, rack, state string
	bytes           int64
	shards          int
	draining        bool
	eligible        bool // up and not draining: a target
}

// clusterUsage is a snapshot of where the shard bytes are.
type clusterUsage struct {
	nodes   map[string]*nodeUse
	volSize map[depot.VolumeID]int64 // bytes of one shard of the volume
	vols    []depot.Volume
}

// usage asks every up dataserver for its shard files (GET /status) and
// sums the live bytes of the slots each is a member of. A volume's shards
// all have the same size, so a slot on a dataserver that did not answer
// counts as the largest shard of the volume seen elsewhere.
func (s *Server) usage(ctx context.Context, hc *http.Client) clusterUsage {
	u := clusterUsage{nodes: make(map[string]*nodeUse), volSize: make(map[depot.VolumeID]int64), vols: s.Volumes()}
	draining := s.drainingSet()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range s.store.cache.dataserverList() {
		n := &nodeUse{id: d.ID, rack: d.Rack, state: d.State, draining: draining[d.ID]}
		n.eligible = up(d.State) && !n.draining
		if !up(d.State) && !n.draining {
			continue
		}
		u.nodes[d.ID] = n
		if !up(d.State) {
			continue
		}
		wg.Go(func() {
			files, err := s.shardFiles(ctx, hc, d.Addr)
			if err != nil {
				s.log.Debug("rebalance: dataserver status", "node", d.ID, "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, f := range files {
				u.volSize[f.Volume] = max(u.volSize[f.Volume], f.LiveBytes)
			}
		})
	}
	wg.Wait()
	for _, v := range u.vols {
		for _, m := range v.Members {
			if n, ok := u.nodes[m.Node]; ok {
				n.bytes += u.volSize[v.ID]
				n.shards++
			}
		}
	}
	return u
}

type shardFile struct {
	Volume    depot.VolumeID `json:"volume"`
	Index     int            `json:"index"`
	LiveBytes int64          `json:"live_bytes"`
	MaxNeedle depot.NeedleID `json:"max_needle"` // highest needle id in the file (Restore)
}

func (s *Server) shardFiles(ctx context.Context, hc *http.Client, addr string) ([]shardFile, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.TLS.URL(addr)+"/status", nil)
	if err != nil {
		return nil, err
	}
	s.cfg.Key.Sign(req)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, httpx.ReadError(resp)
	}
	var st struct {
		Files []shardFile `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return st.Files, nil
}

// mean returns the mean bytes of the eligible dataservers once every
// draining one is empty, and whether every eligible one lies within band
// of it.
func (u clusterUsage) mean(band float64) (int64, bool) {
	var total int64
	n := 0
	for _, d := range u.nodes {
		total += d.bytes
		if d.eligible {
			n++
		}
	}
	if n == 0 {
		return 0, true
	}
	mean := total / int64(n)
	lo, hi := float64(mean)*(1-band), float64(mean)*(1+band)
	for _, d := range u.nodes {
		if d.eligible && (float64(d.bytes) < lo || float64(d.bytes) > hi) {
			return mean, false
		}
		if d.draining && d.shards > 0 {
			return mean, false
		}
	}
	return mean, true
}

// plan chooses moves on a model of u in which the jobs under way are
// done: first every slot of a draining dataserver, then, while the
// fullest and the emptiest eligible dataservers lie outside band of the
// mean, the slot of the fullest whose move to the emptiest narrows their
// gap most. A volume with a job under way is left alone, and a plan moves
// at most one slot per volume (the next step plans again). A move keeps
// the volume's rack spread. It returns the moves and the bytes they carry.
func plan(u clusterUsage, jobs []nsclient.RepairJob, band float64) ([]nsclient.RepairJob, int64) {
	nodes := make(map[string]*nodeUse, len(u.nodes))
	for id, n := range u.nodes {
		c := *n
		nodes[id] = &c
	}
	busy := make(map[depot.VolumeID]bool)
	for _, j := range jobs {
		busy[j.Volume] = true
		if !j.Move {
			continue
		}
		size := u.volSize[j.Volume]
		if f, ok := nodes[j.From]; ok {
			f.bytes -= size
			f.shards--
		}
		if t, ok := nodes[j.To]; ok {
			t.bytes += size
			t.shards++
		}
	}
	var eligible []*nodeUse
	for _, n := range nodes {
		if n.eligible {
			eligible = append(eligible, n)
		}
	}
	if len(eligible) == 0 {
		return nil, 0
	}
	byBytes := func() {
		slices.SortFunc(eligible, func(a, b *nodeUse) int {
			return cmp.Or(cmp.Compare(a.bytes, b.bytes), cmp.Compare(a.id, b.id))
		})
	}
	// fits reports whether shard idx of v may move to n: n holds no shard
	// of v and, with racks, the move does not narrow v's rack spread.
	fits := func(v depot.Volume, idx int, n *nodeUse, racked bool) bool {
		racks := make(map[string]bool)
		for _, m := range v.Members {
			if m.Node == n.id {
				return false
			}
			if o, ok := u.nodes[m.Node]; ok && m.Index != idx && o.rack != "" {
				racks[o.rack] = true
			}
		}
		from := u.nodes[v.Members[idx].Node]
		return !racked || n.rack == "" || (from != nil && from.rack == n.rack) || !racks[n.rack]
	}
	var moves []nsclient.RepairJob
	var carried int64
	move := func(v depot.Volume, idx int, to *nodeUse) {
		size := u.volSize[v.ID]
		if f, ok := nodes[v.Members[idx].Node]; ok {
			f.bytes -= size
			f.shards--
		}
		to.bytes += size
		to.shards++
		busy[v.ID] = true
		carried += size
		moves = append(moves, nsclient.RepairJob{Volume: v.ID, Index: idx, From: v.Members[idx].Node, To: to.id, Move: true})
	}
	// Drains.
	for _, v := range u.vols {
		if busy[v.ID] {
			continue
		}
		for _, m := range v.Members {
			if n, ok := nodes[m.Node]; !ok || !n.draining || busy[v.ID] {
				continue
			}
			// Keep the rack spread when a target allows it; a drain
			// goes on regardless.
			byBytes()
			for _, racked := range []bool{true, false} {
				if i := slices.IndexFunc(eligible, func(to *nodeUse) bool { return fits(v, m.Index, to, racked) }); i >= 0 {
					move(v, m.Index, eligible[i])
					break
				}
			}
		}
	}
	// Balance.
	var total int64
	for _, n := range nodes {
		total += n.bytes
	}
	mean := float64(total) / float64(len(eligible))
	lo, hi := mean*(1-band), mean*(1+band)
	for range 10000 {
		byBytes()
		if float64(eligible[0].bytes) >= lo && float64(eligible[len(eligible)-1].bytes) <= hi {
			break
		}
		found := false
		for fi := len(eligible) - 1; fi > 0 && !found; fi-- {
			from := eligible[fi]
			for _, to := range eligible[:fi] {
				gap := from.bytes - to.bytes
				if float64(from.bytes) <= hi && float64(to.bytes) >= lo {
					continue // this pair is fine; another one is not
				}
				var best depot.Volume
				bestIdx, bestDist := -1, int64(-1)
				for _, v := range u.vols {
					size := u.volSize[v.ID]
					if busy[v.ID] || size <= 0 || size >= gap {
						continue
					}
					for _, m := range v.Members {
						if m.Node != from.id || !fits(v, m.Index, to, true) {
							continue
						}
						dist := size - gap/2
						if dist < 0 {
							dist = -dist
						}
						if bestIdx < 0 || dist < bestDist {
							best, bestIdx, bestDist = v, m.Index, dist
						}
					}
				}
				if bestIdx >= 0 {
					move(best, bestIdx, to)
					found = true
					break
				}
			}
		}
		if !found {
			break
		}
	}
	return moves, carried
}

// rebalanceLoop drives rebalance runs and drains every RepairInterval
// until ctx ends; see rebalanceStep.
func (s *Server) rebalanceLoop(ctx context.Context) {
	hc := s.httpClient(30 * time.Second)
	t := time.NewTicker(s.cfg.RepairInterval)
	defer t.Stop()
	lastAuto := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.rebalanceStep(ctx, hc, &lastAuto); err != nil && ctx.Err() == nil {
			s.log.Warn("rebalance", "err", err)
		}
	}
}

// rebalanceStep cancels moves whose target is down, starts a run when
// RebalanceInterval is set and the spread left the band, and, while a run
// is active or a dataserver drains, starts planned moves up to
// RebalanceParallel under way. A run ends when nothing is left to plan and
// no job is under way: neither a move nor a repair, whose volume plan
// leaves alone.
func (s *Server) rebalanceStep(ctx context.Context, hc *http.Client, lastAuto *time.Time) error {
	st := s.rebalanceState()
	jobs, err := s.repairJobs()
	if err != nil {
		return err
	}
	inflight, repairing := 0, 0
	for _, j := range jobs {
		if !j.Move {
			repairing++
			continue
		}
		if d, ok := s.store.cache.dataserver(j.To); !ok || d.down() {
			s.log.Info("move cancelled: its target is down", "volume", j.Volume, "index", j.Index, "to", j.To)
			if _, err := s.store.propose(ctx, CmdMoveCancel, nsclient.SettledRequest{Volume: j.Volume, Index: j.Index, To: j.To}); err != nil {
				return err
			}
			continue
		}
		inflight++
	}
	if s.cfg.RebalanceInterval > 0 && !st.Active && time.Since(*lastAuto) >= s.cfg.RebalanceInterval {
		*lastAuto = time.Now()
		if _, ok := s.usage(ctx, hc).mean(s.cfg.RebalanceBand); !ok {
			s.log.Info("automatic rebalance: the spread left the band", "band", s.cfg.RebalanceBand)
			if _, err := s.store.propose(ctx, CmdRebalanceSet, rebalanceSetCmd{Op: "start", Band: s.cfg.RebalanceBand}); err != nil {
				return err
			}
			st = s.rebalanceState()
		}
	}
	if !st.Active && len(st.Draining) == 0 {
		s.remaining.Store(0)
		return nil
	}
	band := st.Band
	if band <= 0 {
		band = s.cfg.RebalanceBand
	}
	u := s.usage(ctx, hc)
	if !st.Active { // draining only: no balancing moves
		band = 1e9
	}
	moves, carried := plan(u, jobs, band)
	budget := max(0, s.cfg.RebalanceParallel-inflight)
	start := moves[:min(budget, len(moves))]
	var startBytes int64
	for _, j := range start {
		startBytes += u.volSize[j.Volume]
	}
	s.remaining.Store(carried - startBytes)
	if len(start) > 0 {
		if _, err := s.store.propose(ctx, CmdMoveStart, moveStartCmd{Jobs: start}); err != nil {
			return err
		}
		s.log.Info("moves started", "moves", len(start), "planned", len(moves))
	}
	// plan leaves a volume under repair alone, so an empty plan while a
	// repair job runs proves nothing: the run waits for it.
	if st.Active && len(moves) == 0 && inflight == 0 && repairing == 0 {
		mean, ok := u.mean(band)
		s.log.Info("rebalance run finished", "mean", mean, "in_band", ok)
		if _, err := s.store.propose(ctx, CmdRebalanceSet, rebalanceSetCmd{Op: "stop"}); err != nil {
			return err
		}
	}
	return nil
}

// RebalanceStatus reports the run, the drains, the spread of bytes and the
// moves under way.
func (s *Server) RebalanceStatus(ctx context.Context) (nsclient.RebalanceStatus, error) {
	st := s.rebalanceState()
	out := nsclient.RebalanceStatus{Active: st.Active, Band: st.Band, Started: st.Started, Draining: st.Draining,
		Moved: st.Moved, MovedBytes: st.MovedBytes, Remaining: s.remaining.Load(), Jobs: []nsclient.RepairJob{}}
	if out.Draining == nil {
		out.Draining = []string{}
	}
	if out.Band <= 0 {
		out.Band = s.cfg.RebalanceBand
	}
	jobs, err := s.repairJobs()
	if err != nil {
		return out, err
	}
	for _, j := range jobs {
		if j.Move {
			out.Jobs = append(out.Jobs, j)
		}
	}
	retired, err := s.retiredMoves()
	if err != nil {
		return out, err
	}
	out.Settling = len(retired)
	u := s.usage(ctx, s.httpClient(30*time.Second))
	out.Mean, out.InBand = u.mean(out.Band)
	for _, n := range u.nodes {
		out.Nodes = append(out.Nodes, nsclient.NodeUsage{ID: n.id, State: n.state, Bytes: n.bytes, Shards: n.shards, Draining: n.draining})
	}
	slices.SortFunc(out.Nodes, func(a, b nsclient.NodeUsage) int { return cmp.Compare(a.ID, b.ID) })
	out.Done = !st.Active && len(out.Jobs) == 0 && out.Settling == 0
	for _, n := range st.Draining {
		if !out.Drained(n) {
			out.Done = false
		}
	}
	return out, nil
}

// routeRebalance registers the rebalance API.
func (s *Server) routeRebalance(api *http.ServeMux) {
	s.route(api, "POST /rebalance", func(w http.ResponseWriter, r *http.Request) {
		var req nsclient.RebalanceRequest
		if err := readJSON(w, r, maxSmallBody, &req); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if req.Band == 0 {
			req.Band = s.cfg.RebalanceBand
		}
		if _, err := s.store.propose(r.Context(), CmdRebalanceSet, rebalanceSetCmd{Op: "start", Band: req.Band}); err != nil {
			httpx.WriteError(w, err)
			return
		}
		s.log.Info("rebalance run started", "band", req.Band)
		w.WriteHeader(http.StatusNoContent)
	})
	s.route(api, "DELETE /rebalance", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.store.propose(r.Context(), CmdRebalanceSet, rebalanceSetCmd{Op: "stop"}); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s.route(api, "POST /rebalance/drain", func(w http.ResponseWriter, r *http.Request) {
		var req nsclient.DrainRequest
		if err := readJSON(w, r, maxSmallBody, &req); err != nil {
			httpx.WriteError(w, err)
			return
		}
		op := "drain"
		if req.Undo {
			op = "undrain"
		}
		if _, err := s.store.propose(r.Context(), CmdRebalanceSet, rebalanceSetCmd{Op: op, Node: req.Node}); err != nil {
			httpx.WriteError(w, err)
			return
		}
		s.log.Info("drain", "node", req.Node, "undo", req.Undo)
		w.WriteHeader(http.StatusNoContent)
	})
	s.route(api, "POST /rebalance/settled", func(w http.ResponseWriter, r *http.Request) {
		var req nsclient.SettledRequest
		if err := readJSON(w, r, maxSmallBody, &req); err != nil {
			httpx.WriteError(w, err)
			return
		}
		if _, err := s.store.propose(r.Context(), CmdMoveSettled, req); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	s.route(api, "GET /rebalance", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.RebalanceStatus(r.Context())
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, st)
	})
}
