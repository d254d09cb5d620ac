package nameserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/httpx"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// DBFile is the name of the database file in Config.Dir.
const DBFile = "nameserver.db"

// Server is a nameserver: the cluster map, placement, needle-id leases and
// the namespace, kept in bbolt, served over HTTP. Its methods are the same
// operations as the HTTP API, for callers in the same process.
type Server struct {
	cfg Config
	log *slog.Logger
	// lifecycleNow, set only by tests before Start, replaces the
	// lifecycle worker's clock.
	lifecycleNow func() time.Time
	// lifecycle counts the lifecycle worker's passes and actions (Status).
	lifecycle struct {
		passes, applied, skipped atomic.Uint64
		last                     atomic.Int64 // Unix nanoseconds of the last pass
	}
	store   *store
	metrics *metrics
	http    *http.Server
	tr      *http.Transport // the nameserver's own requests to dataservers

	syncSem   chan struct{} // one gossip sync at a time
	kick      chan struct{} // MembersChanged asks the sync loop to run now
	createSem chan struct{} // one volume creation at a time
	rr        atomic.Uint64 // round robin over writable volumes
	remaining atomic.Int64  // bytes the latest rebalance plan still had to move (rebalance.go)

	raft    *raftNode   // nil when alone (Config.Raft.ID empty)
	killed  atomic.Bool // Kill: no leadership handover
	leading atomic.Bool // raft leader with earlier entries applied (raft.go)
	proxy   *forwarder  // followers forward the API to the leader (forward.go)

	mu       sync.Mutex
	routes   []string // patterns registered by route (http.go)
	ln       net.Listener
	started  bool
	closed   bool
	closeErr error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New opens (or creates) the database in cfg.Dir and loads the cluster map.
// It starts nothing: Start serves.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("nameserver: %w", err)
	}
	log := cfg.Logger.With("component", "nameserver")
	m := newMetrics()
	st, err := openStore(filepath.Join(cfg.Dir, DBFile), cfg.GroupCommitWindow, cfg.MaxBatch, m, log)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: log, store: st, metrics: m,
		syncSem:   make(chan struct{}, 1),
		kick:      make(chan struct{}, 1),
		createSem: make(chan struct{}, 1),
		tr:        cfg.TLS.Transport(),
	}
	s.proxy = newForwarder(s)
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Start listens on Config.Addr and serves the API, and starts the committer
// and the periodic gossip sync, or, in a raft group, joins the group; the
// background work then runs only while this nameserver leads. Close stops
// them.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return fmt.Errorf("nameserver: Start: already started or closed")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("nameserver: listen: %w", err)
	}
	ln = tlsconf.Listener(ln, s.cfg.TLS.ServerConfig())
	s.ln = ln
	if s.cfg.Raft.ID != "" {
		n, err := openRaft(s.cfg, s.store, s.log)
		if err != nil {
			ln.Close()
			s.ln = nil
			return err
		}
		s.raft = n
		s.store.rep = n
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if s.raft != nil {
		s.wg.Go(func() { s.leadership(ctx) })
	} else {
		s.store.start()
		s.wg.Go(func() { s.runLeaderLoops(ctx) })
	}
	s.wg.Go(func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	})
	s.log.Info("nameserver started", "addr", ln.Addr().String(), "dir", s.cfg.Dir, "raft_id", s.cfg.Raft.ID)
	return nil
}

// Addr returns the address the API listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// URL returns the API's base URL: "http://" + Addr(), or "https://" with
// TLS.
func (s *Server) URL() string { return s.cfg.TLS.URL(s.Addr()) }

// httpClient returns a client for the nameserver's own requests to
// dataservers (TLS when configured), with the given overall timeout.
func (s *Server) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: s.tr}
}

// Close stops serving (letting requests in flight finish, up to
// Config.ShutdownTimeout), stops the background work and closes the
// database. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	started := s.started
	s.mu.Unlock()

	var errs []error
	if started && s.raft != nil && s.leading.Load() && !s.killed.Load() {
		// Hand leadership over rather than make the others wait for an
		// election timeout.
		if err := s.raft.r.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("leadership transfer", "err", err)
		}
	}
	if started {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		if err := httpx.Shutdown(ctx, s.http, s.log); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		cancel()
		s.cancel()
		s.wg.Wait()
		if s.raft != nil {
			if err := s.raft.close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.tr.CloseIdleConnections()
	s.proxy.close()
	if err := s.store.close(); err != nil {
		errs = append(errs, err)
	}
	err := errors.Join(errs...)
	if err != nil {
		err = fmt.Errorf("nameserver: close: %w", err)
	}
	s.mu.Lock()
	s.closeErr = err
	s.mu.Unlock()
	s.log.Info("nameserver closed")
	return err
}

// Kill stops the nameserver as Close does, except that a raft leader does
// not hand leadership over first: the others find it gone, as after a
// crash, and elect a new leader once their election timeout passed.
func (s *Server) Kill() error {
	s.killed.Store(true)
	return s.Close()
}

// syncLoop syncs dataserver records from gossip every SyncInterval.
func (s *Server) syncLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		if err := s.SyncMembers(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("gossip sync", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// MembersChanged tells the nameserver that the gossip view changed, so that
// it syncs its dataserver records (addresses, liveness) now rather than at
// the next SyncInterval. It never blocks; the membership's change callback
// calls it.
func (s *Server) MembersChanged() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// gossipView returns the dataservers as gossip shows them now.
func (s *Server) gossipView() []dataserverRecord {
	var out []dataserverRecord
	for _, n := range s.cfg.Members.Members() {
		if n.Meta.Role != depot.RoleDataserver || n.Meta.ID == "" {
			continue
		}
		out = append(out, dataserverRecord{
			ID: n.Meta.ID, Addr: n.Meta.Addr, GossipAddr: n.Addr, Rack: n.Meta.Rack,
			Free: n.Meta.Free, Used: n.Meta.Used, State: n.State, Since: n.Since.UTC().Round(0),
		})
	}
	return out
}

func sameRecord(a, b dataserverRecord) bool {
	as, bs := a.Since, b.Since
	a.Since, b.Since = time.Time{}, time.Time{}
	return a == b && as.Equal(bs)
}

// SyncMembers brings the stored dataserver records in line with gossip,
// through one command when anything changed.
func (s *Server) SyncMembers(ctx context.Context) error {
	select {
	case s.syncSem <- struct{}{}:
		defer func() { <-s.syncSem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	view := s.gossipView()
	c := s.store.cache
	c.mu.RLock()
	differs := false
	seen := make(map[string]bool, len(view))
	for _, rec := range view {
		seen[rec.ID] = true
		if old, ok := c.dataservers[rec.ID]; !ok || !sameRecord(old, rec) {
			differs = true
		}
	}
	for id, old := range c.dataservers {
		if !seen[id] && old.State != stateUnknown {
			differs = true
		}
	}
	c.mu.RUnlock()
	if !differs {
		return nil
	}
	_, err := s.store.propose(ctx, CmdSyncDataservers, syncDataserversCmd{Dataservers: view})
	return err
}

// Assign returns a writable volume of scheme k+m whose members are all
// alive (or, when there is none and too few dataservers to place one, a
// degraded one with at least k+1 alive members), and a lease of count needle ids in it, creating a volume when fewer
// than MinWritable writable ones exist. k = m = 0 means the default scheme;
// count 0 means 1. It fails with depot.ErrNotEnoughNodes when there is no
// writable volume and too few alive dataservers to place one, and with
// depot.ErrBadRequest for a bad scheme or count.
func (s *Server) Assign(ctx context.Context, k, m, count int) (nsclient.Assignment, error) {
	if k == 0 && m == 0 {
		k, m = s.cfg.DefaultK, s.cfg.DefaultM
	}
	if count == 0 {
		count = 1
	}
	if err := checkScheme(k, m); err != nil {
		return nsclient.Assignment{}, err
	}
	if count < 0 || count > s.cfg.MaxLease {
		return nsclient.Assignment{}, fmt.Errorf("%w: count %d, want 1 to %d", depot.ErrBadRequest, count, s.cfg.MaxLease)
	}
	if err := s.SyncMembers(ctx); err != nil {
		return nsclient.Assignment{}, fmt.Errorf("nameserver: assign: sync: %w", err)
	}
	for range 4 {
		a, err := s.assignOnce(ctx, k, m, count)
		if errors.Is(err, errNotWritable) {
			continue // the chosen volume changed state meanwhile: choose again
		}
		if err != nil {
			return nsclient.Assignment{}, fmt.Errorf("nameserver: assign %d+%d: %w", k, m, err)
		}
		if v, ok := s.store.cache.volume(a.Volume.ID); ok {
			a.Volume = v
		}
		s.metrics.assigns.Inc()
		s.metrics.leased.Add(float64(count))
		return a, nil
	}
	return nsclient.Assignment{}, fmt.Errorf("nameserver: assign %d+%d: volumes kept changing state", k, m)
}

func (s *Server) assignOnce(ctx context.Context, k, m, count int) (nsclient.Assignment, error) {
	c := s.store.cache
	eligible := c.eligible(k, m)
	cmd := assignCmd{Count: count}
	if len(eligible) < s.cfg.MinWritable {
		held := false
		if len(eligible) == 0 { // nothing to lease from: wait for the creator
			select {
			case s.createSem <- struct{}{}:
				held = true
			case <-ctx.Done():
				return nsclient.Assignment{}, ctx.Err()
			}
		} else { // create only if nobody else is creating
			select {
			case s.createSem <- struct{}{}:
				held = true
			default:
			}
		}
		if held {
			defer func() { <-s.createSem }()
			eligible = c.eligible(k, m)
			if len(eligible) < s.cfg.MinWritable {
				members, err := place(k, m, s.candidates())
				switch {
				case err == nil:
					cmd.Create = &depot.Volume{K: k, M: m, Unit: s.cfg.Unit, Members: members, State: depot.VolumeWritable}
				case len(eligible) == 0:
					// No healthy volume and no room for a new one: lease
					// from a degraded volume that still reaches the write
					// quorum, so writes go on while a dataserver is down.
					deg := c.degraded(k, m, k+1)
					if len(deg) == 0 {
						return nsclient.Assignment{}, err
					}
					cmd.Volume, cmd.Degraded = deg[s.rr.Add(1)%uint64(len(deg))], true
				default:
					s.log.Debug("cannot add a writable volume", "k", k, "m", m, "writable", len(eligible), "err", err)
				}
			}
		}
	}
	if cmd.Create == nil && !cmd.Degraded {
		cmd.Volume = eligible[s.rr.Add(1)%uint64(len(eligible))]
	}
	res, err := s.store.propose(ctx, CmdAssign, cmd)
	if err != nil {
		return nsclient.Assignment{}, err
	}
	a := res.(nsclient.Assignment)
	if cmd.Create != nil {
		s.log.Info("volume created", "volume", a.Volume.ID, "k", k, "m", m, "members", memberNodes(a.Volume))
	}
	return a, nil
}

func memberNodes(v depot.Volume) string {
	ids := make([]string, len(v.Members))
	for i, m := range v.Members {
		ids[i] = m.Node
	}
	return strings.Join(ids, ",")
}

// candidates returns the dataservers alive according to gossip (as last
// synced) and not being drained, for placement.
func (s *Server) candidates() []candidate {
	counts := s.store.cache.volumeCounts()
	draining := s.drainingSet()
	var out []candidate
	for _, d := range s.store.cache.dataserverList() {
		if up(d.State) && !draining[d.ID] {
			out = append(out, candidate{ID: d.ID, Addr: d.Addr, Rack: d.Rack, Free: d.Free, Volumes: counts[d.ID]})
		}
	}
	return out
}

// Volume returns volume id with its members' current addresses, from
// memory. It fails with depot.ErrNotFound.
func (s *Server) Volume(id depot.VolumeID) (depot.Volume, error) {
	v, ok := s.store.cache.volume(id)
	if !ok {
		return depot.Volume{}, fmt.Errorf("volume %d: %w", id, depot.ErrNotFound)
	}
	return v, nil
}

// Volumes returns every volume, by id.
func (s *Server) Volumes() []depot.Volume { return s.store.cache.allVolumes() }

// SetVolumeState records a volume's new state: full (a member reached the
// size limit), writable (room again, or repair done), degraded or repairing
// (repair). It fails with depot.ErrNotFound or depot.ErrBadRequest.
func (s *Server) SetVolumeState(ctx context.Context, id depot.VolumeID, state depot.VolumeState) error {
	_, err := s.store.propose(ctx, CmdSetVolumeState, setVolumeStateCmd{Volume: id, State: state})
	return err
}

// Missed records that shards of fid did not acknowledge a write, for
// repair. It fails with depot.ErrBadFid, depot.ErrNotFound (no such volume)
// or depot.ErrBadRequest (shard out of range).
func (s *Server) Missed(ctx context.Context, fid string, shards []int) error {
	_, err := s.store.propose(ctx, CmdMissed, nsclient.MissedWrite{Fid: fid, Shards: shards})
	return err
}

// MissedWrites returns up to limit recorded missed writes, by fid text.
func (s *Server) MissedWrites(ctx context.Context, limit int) ([]nsclient.MissedWrite, error) {
	out := []nsclient.MissedWrite{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return forEachLimit(tx.Bucket(bktMissed), limit, func(v []byte) error {
			var mw nsclient.MissedWrite
			if err := json.Unmarshal(v, &mw); err != nil {
				return err
			}
			out = append(out, mw)
			return nil
		})
	})
	return out, err
}

// ClearMissed forgets missed writes once repaired.
func (s *Server) ClearMissed(ctx context.Context, fids []string) error {
	_, err := s.store.propose(ctx, CmdClearMissed, nsclient.FidList{Fids: fids})
	return err
}

// PendingDeletes returns up to limit segments queued for deletion, oldest
// first.
func (s *Server) PendingDeletes(ctx context.Context, limit int) ([]nsclient.PendingDelete, error) {
	return s.pendingDeletesAfter(ctx, 0, limit)
}

// pendingDeletesAfter is PendingDeletes for the entries after sequence
// number after.
func (s *Server) pendingDeletesAfter(ctx context.Context, after uint64, limit int) ([]nsclient.PendingDelete, error) {
	out := []nsclient.PendingDelete{}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return forEachLimitAfter(tx.Bucket(bktDeletes), u64(after+1), limit, func(v []byte) error {
			var pd nsclient.PendingDelete
			if err := json.Unmarshal(v, &pd); err != nil {
				return err
			}
			out = append(out, pd)
			return nil
		})
	})
	return out, err
}

// AckDeletes removes done entries from the delete queue.
func (s *Server) AckDeletes(ctx context.Context, seqs []uint64) error {
	_, err := s.store.propose(ctx, CmdAckDeletes, nsclient.SeqList{Seqs: seqs})
	return err
}

func forEachLimit(b *bbolt.Bucket, limit int, f func(v []byte) error) error {
	return forEachLimitAfter(b, nil, limit, f)
}

// forEachLimitAfter is forEachLimit from the first key at or after from
// (nil: the first key).
func forEachLimitAfter(b *bbolt.Bucket, from []byte, limit int, f func(v []byte) error) error {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	cur := b.Cursor()
	n := 0
	k, v := cur.First()
	if from != nil {
		k, v = cur.Seek(from)
	}
	for ; k != nil && n < limit; k, v = cur.Next() {
		if err := f(v); err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		n++
	}
	return nil
}

// view runs a read-only transaction.
func (s *Server) view(ctx context.Context, f func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.store.db.View(f)
}

// Ready reports whether enough dataservers are alive according to gossip
// for the default scheme (Config.ReadyDataservers), with how many are.
func (s *Server) Ready() (bool, int) {
	// Count the synced records, not the raw gossip view: volume look-ups
	// answer member addresses from the records, so the nameserver is ready
	// only once they reflect the dataservers that are up now.
	alive := 0
	for _, rec := range s.store.cache.dataserverList() {
		if rec.State == stateAlive {
			alive++
		}
	}
	return alive >= s.cfg.ReadyDataservers, alive
}

// Status reports the dataservers (their liveness straight from gossip),
// volumes by state and the namespace's counts.
func (s *Server) Status(ctx context.Context) (nsclient.Status, error) {
	st := nsclient.Status{}
	st.Volumes, st.ByState, st.Schemes = s.store.cache.volumeStats()
	counts := s.store.cache.volumeCounts()
	live := make(map[string]dataserverRecord)
	for _, rec := range s.gossipView() {
		live[rec.ID] = rec
	}
	stored := s.store.cache.dataserverList()
	for _, rec := range stored {
		if g, ok := live[rec.ID]; ok {
			rec = g
			delete(live, rec.ID)
		} else {
			rec.State = stateUnknown
		}
		st.Dataservers = append(st.Dataservers, statusOf(rec, counts))
	}
	for _, rec := range live { // in gossip, not synced yet
		st.Dataservers = append(st.Dataservers, statusOf(rec, counts))
	}
	for _, d := range st.Dataservers {
		if d.State == stateAlive {
			st.Alive++
		}
	}
	st.Ready = st.Alive >= s.cfg.ReadyDataservers
	st.Commits = nsclient.CommitStats{Commands: s.store.commands.Load(), Fsyncs: s.store.fsyncs.Load()}
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bktMeta)
		st.Objects, st.Bytes = getU64(meta, keyObjects), getU64(meta, keyBytes)
		st.Buckets = tx.Bucket(bktBuckets).Stats().KeyN
		st.Deletes = tx.Bucket(bktDeletes).Stats().KeyN
		st.Missed = tx.Bucket(bktMissed).Stats().KeyN
		return nil
	})
	if err != nil {
		return st, err
	}
	buckets, err := s.Buckets(ctx)
	for _, b := range buckets {
		if len(b.Lifecycle) > 0 {
			st.Lifecycle.Buckets++
			st.Lifecycle.Rules += len(b.Lifecycle)
		}
	}
	st.Lifecycle.Passes, st.Lifecycle.Applied, st.Lifecycle.Skipped = s.lifecycle.passes.Load(), s.lifecycle.applied.Load(), s.lifecycle.skipped.Load()
	if t := s.lifecycle.last.Load(); t != 0 {
		st.Lifecycle.LastPass = time.Unix(0, t)
	}
	return st, err
}

func statusOf(rec dataserverRecord, counts map[string]int) nsclient.Dataserver {
	return nsclient.Dataserver{
		ID: rec.ID, Addr: rec.Addr, GossipAddr: rec.GossipAddr, Rack: rec.Rack, State: rec.State,
		Free: rec.Free, Used: rec.Used, Volumes: counts[rec.ID], Since: rec.Since,
	}
}
