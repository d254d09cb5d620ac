package nameserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"

	"depot"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// replicator hands a command to the replicated log and returns apply's
// result once the command is committed and applied here.
type replicator interface {
	replicate(ctx context.Context, cmd Command) (any, error)
}

// CmdNameserver records (or, with Remove, forgets) a member of the raft
// group with its HTTP address, so that followers can forward requests to
// the leader. A leader proposes its own record when it takes office.
const CmdNameserver CommandType = "nameserver" // nsclient.NameserverInfo

var bktNameservers = []byte("nameservers")

// applyRaft applies the commands of raft.go.
func (s *store) applyRaft(tx *bbolt.Tx, cmd Command) (any, bool, error) {
	if cmd.Type != CmdNameserver {
		return nil, false, nil
	}
	var c nsclient.NameserverInfo
	if err := decode(cmd, &c); err != nil {
		return nil, true, err
	}
	if c.ID == "" {
		return nil, true, fmt.Errorf("%w: nameserver without id", depot.ErrBadRequest)
	}
	b := tx.Bucket(bktNameservers)
	if c.Remove {
		if err := del(b, []byte(c.ID)); err != nil {
			return nil, true, err
		}
		s.afterCommit(func(ca *cache) { delete(ca.nameservers, c.ID) })
		return nil, true, nil
	}
	if err := putJSON(b, []byte(c.ID), c); err != nil {
		return nil, true, err
	}
	s.afterCommit(func(ca *cache) { ca.nameservers[c.ID] = c })
	return nil, true, nil
}

// result is what the FSM answers for one command.
type result struct {
	res any
	err error
}

// fsm is the raft state machine: the bbolt database itself. It applies a
// batch of log entries in one transaction that also records the index of
// the last one (meta/raft_index), so that entries replayed after a restart
// are skipped, and the database is never behind or ahead of that index.
type fsm struct {
	s   *store
	dir string
	log *slog.Logger
}

var _ raft.BatchingFSM = (*fsm)(nil)

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	reqs := make([]*request, len(logs))
	batch := make([]*request, 0, len(logs))
	applied := f.s.applied.Load()
	for i, l := range logs {
		if l.Type != raft.LogCommand || l.Index <= applied {
			continue
		}
		var cmd Command
		if err := json.Unmarshal(l.Data, &cmd); err != nil {
			out[i] = &result{err: fmt.Errorf("%w: raft entry %d: %v", depot.ErrBadRequest, l.Index, err)}
			continue
		}
		reqs[i] = &request{cmd: cmd, index: l.Index}
		batch = append(batch, reqs[i])
	}
	if len(batch) > 0 {
		f.s.commit(batch)
		f.s.applied.Store(batch[len(batch)-1].index)
	}
	for i, r := range reqs {
		if r != nil {
			out[i] = &result{res: r.res, err: r.err}
			var se *storageError
			if errors.As(r.err, &se) {
				f.log.Error("raft entry not applied: storage failure", "index", r.index, "err", r.err)
			}
		}
	}
	return out
}

// Snapshot implements raft.FSM: a read transaction taken between two
// applies, written out by Persist while applies go on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	tx, err := f.s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("nameserver: snapshot: %w", err)
	}
	return &fsmSnapshot{tx: tx}, nil
}

// Restore implements raft.FSM: the snapshot (a bbolt file) replaces the
// database's content in one transaction, and the cache is reloaded.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.s.restoreFrom(rc, f.dir)
}

type fsmSnapshot struct{ tx *bbolt.Tx }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("nameserver: snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.tx.Rollback() }

// restoreFrom replaces the database's content with the bbolt file read
// from r (a snapshot, or a backup readied by prepareBackup), staging it in
// dir. The file's raft index comes with it (a backup has none).
func (s *store) restoreFrom(r io.Reader, dir string) error {
	tmp, err := os.CreateTemp(dir, "restore-*.db")
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	src, err := bbolt.Open(tmp.Name(), 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("nameserver: restore: open: %w", err)
	}
	defer src.Close()
	var index uint64
	var fresh *cache
	err = src.View(func(stx *bbolt.Tx) error {
		meta := stx.Bucket(bktMeta)
		if meta == nil || string(meta.Get(keyVersion)) != formatVersion {
			return fmt.Errorf("%w: not a nameserver database of format %s", depot.ErrBadRequest, formatVersion)
		}
		index = getU64(meta, keyRaftIndex)
		return s.db.Update(func(tx *bbolt.Tx) error {
			var names [][]byte
			tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, append([]byte{}, name...))
				return nil
			})
			for _, name := range names {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
			err := stx.ForEach(func(name []byte, b *bbolt.Bucket) error {
				dst, err := tx.CreateBucket(name)
				if err != nil {
					return err
				}
				return copyBucket(dst, b)
			})
			if err != nil {
				return err
			}
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			fresh = newCache()
			return fresh.load(tx)
		})
	})
	if err != nil {
		return fmt.Errorf("nameserver: restore: %w", err)
	}
	s.cache.replace(fresh)
	s.applied.Store(index)
	return nil
}

// maxGapScan bounds how many log entries catchUpSnapshot reads to prove
// that the database is not behind a snapshot; a longer gap is restored.
const maxGapScan = 4096

// catchUpSnapshot brings the database up to the newest raft snapshot
// before raft starts. Raft runs with NoSnapshotRestoreOnStart (the
// database is durable), and takes the snapshot's index as applied; but
// installing a snapshot persists it before fsm.Restore runs, so a crash
// in between leaves the database behind it, and the entries in the gap
// would never be applied here. A database whose raft_index is below the
// snapshot's is therefore restored from it, unless the log still holds
// every entry of the gap and none is a command (raft's own entries —
// no-ops, barriers, configurations — advance the snapshot's index but not
// raft_index). Restoring when it was not needed costs time, never state:
// the snapshot holds every command up to its index.
func (s *store) catchUpSnapshot(snaps raft.SnapshotStore, logs raft.LogStore, dir string, log *slog.Logger) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	snap := list[0]
	applied := s.applied.Load()
	if applied >= snap.Index || noCommandsIn(logs, applied+1, snap.Index) {
		return nil
	}
	log.Warn("database behind the newest raft snapshot (an install was cut short): restoring from the snapshot",
		"db_index", applied, "snapshot", snap.ID, "snapshot_index", snap.Index)
	_, rc, err := snaps.Open(snap.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", snap.ID, err)
	}
	defer rc.Close()
	if err := s.restoreFrom(rc, dir); err != nil {
		return err
	}
	// The snapshot holds every command up to its index, whatever index
	// its file records (a restored backup records none).
	if s.applied.Load() < snap.Index {
		err := s.db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket(bktMeta).Put(keyRaftIndex, u64(snap.Index))
		})
		if err != nil {
			return fmt.Errorf("nameserver: restore: %w", err)
		}
		s.applied.Store(snap.Index)
	}
	log.Info("database restored from the raft snapshot", "snapshot_index", snap.Index)
	return nil
}

// noCommandsIn reports whether the log holds every entry from first to
// last and none of them is a command.
func noCommandsIn(logs raft.LogStore, first, last uint64) bool {
	if last-first >= maxGapScan {
		return false
	}
	for i := first; i <= last; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return false
		}
	}
	return true
}

// copyBucket copies src's keys, nested buckets and sequence into dst.
// The sequences are state: the volumes bucket's allocates volume ids, the
// deletes bucket's numbers the delete queue.
func copyBucket(dst, src *bbolt.Bucket) error {
	if err := dst.SetSequence(src.Sequence()); err != nil {
		return err
	}
	return src.ForEach(func(k, v []byte) error {
		if v != nil {
			return dst.Put(k, v)
		}
		sub, err := dst.CreateBucket(k)
		if err != nil {
			return err
		}
		return copyBucket(sub, src.Bucket(k))
	})
}

// raftNode is this nameserver's member of the raft group.
type raftNode struct {
	r      *raft.Raft
	logs   *logStore
	trans  *raft.NetworkTransport
	notify chan bool
	id     string
	addr   string // advertised raft address
}

var _ replicator = (*raftNode)(nil)

// replicate implements replicator: the command is appended to the log
// through the leader's raft (raft batches concurrent applies into one
// append and one fsync). Not being the leader fails with depot.ErrNoLeader
// so that the caller retries on the new leader; losing leadership before
// the command is known to commit adds depot.ErrUnknownOutcome (see
// raftError). A repeat under the same request id is applied at most once.
func (n *raftNode) replicate(ctx context.Context, cmd Command) (any, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("nameserver: encode %s: %w", cmd.Type, err)
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	f := n.r.Apply(data, timeout)
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	r, ok := f.Response().(*result)
	if !ok {
		return nil, fmt.Errorf("nameserver: %s: entry not applied", cmd.Type)
	}
	return r.res, r.err
}

// raftError maps raft's failures onto depot.ErrNoLeader where a retry on
// the (new) leader is the answer. Leadership lost or a shutdown after the
// entry was appended leave its outcome unknown (a new leader may still
// commit it): those wrap depot.ErrUnknownOutcome too, and the retry,
// under the same request id, resolves them.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("nameserver: raft: %w: %w: %v", depot.ErrUnknownOutcome, depot.ErrNoLeader, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("nameserver: raft: %w: %v", depot.ErrNoLeader, err)
	}
	return fmt.Errorf("nameserver: raft: %w", err)
}

// openRaft starts this nameserver's raft member on its stores in cfg.Dir,
// bootstrapping the group from cfg.Raft.Peers when the directory holds no
// raft state yet.
func openRaft(cfg Config, st *store, log *slog.Logger) (*raftNode, error) {
	rc := cfg.Raft
	layer := rc.Layer
	if layer == nil {
		l, err := ListenRaft(rc.Addr, rc.Advertise)
		if err != nil {
			return nil, err
		}
		layer = l
	}
	if cfg.TLS != nil {
		layer = newTLSLayer(layer, cfg.TLS)
	}
	addr := layer.Addr().String()
	hl := hclog.New(&hclog.LoggerOptions{
		Name: "raft", Level: hclog.Warn,
		Output: slogWriter{log.With("component", "raft")},
	})
	if !log.Enabled(context.Background(), slog.LevelWarn) {
		hl.SetLevel(hclog.Off)
	}
	trans := raft.NewNetworkTransportWithLogger(layer, 3, 10*time.Second, hl)
	fail := func(err error) (*raftNode, error) {
		trans.Close()
		return nil, fmt.Errorf("nameserver: raft: %w", err)
	}
	logs, err := openLogStore(filepath.Join(cfg.Dir, RaftLogFile))
	if err != nil {
		return fail(err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		logs.close()
		return fail(err)
	}
	notify := make(chan bool, 16)
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(rc.ID)
	c.Logger = hl
	c.NotifyCh = notify
	c.NoSnapshotRestoreOnStart = true // the database is the state, and durable
	c.BatchApplyCh = true
	c.HeartbeatTimeout, c.ElectionTimeout = rc.HeartbeatTimeout, rc.ElectionTimeout
	c.LeaderLeaseTimeout, c.CommitTimeout = rc.LeaderLeaseTimeout, rc.CommitTimeout
	c.MaxAppendEntries = rc.MaxAppendEntries
	c.SnapshotInterval, c.SnapshotThreshold, c.TrailingLogs = rc.SnapshotInterval, rc.SnapshotThreshold, rc.TrailingLogs
	if err := raft.ValidateConfig(c); err != nil {
		logs.close()
		return fail(err)
	}
	existing, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		logs.close()
		return fail(err)
	}
	if !existing && len(rc.Peers) > 0 {
		var conf raft.Configuration
		for _, p := range rc.Peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		if err := raft.BootstrapCluster(c, logs, logs, snaps, trans, conf); err != nil {
			logs.close()
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	}
	if err := st.catchUpSnapshot(snaps, logs, cfg.Dir, log); err != nil {
		logs.close()
		return fail(err)
	}
	r, err := raft.NewRaft(c, &fsm{s: st, dir: cfg.Dir, log: log}, logs, logs, snaps, trans)
	if err != nil {
		logs.close()
		return fail(err)
	}
	return &raftNode{r: r, logs: logs, trans: trans, notify: notify, id: rc.ID, addr: addr}, nil
}

// close shuts raft down and closes its stores.
func (n *raftNode) close() error {
	err := n.r.Shutdown().Error()
	return errors.Join(err, n.trans.Close(), n.logs.close())
}

// slogWriter turns hclog's lines into slog records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Warn(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

// TCPLayer is raft's stream layer over TCP: a listener, and dials to the
// other members' raft addresses.
type TCPLayer struct {
	net.Listener
	advertise net.Addr
}

var _ raft.StreamLayer = (*TCPLayer)(nil)

// ListenRaft listens on addr for raft traffic; advertise ("" for the
// listener's own address) is the address the others dial.
func ListenRaft(addr, advertise string) (*TCPLayer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("nameserver: raft listen: %w", err)
	}
	l := &TCPLayer{Listener: ln, advertise: ln.Addr()}
	if advertise != "" {
		// Kept as given: a DNS name (a StatefulSet pod's) is resolved at
		// each dial, not once at start.
		if _, _, err := net.SplitHostPort(advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("nameserver: raft advertise address: %w", err)
		}
		l.advertise = tcpName(advertise)
	}
	return l, nil
}

// tcpName is a TCP address as text, host name or IP.
type tcpName string

func (a tcpName) Network() string { return "tcp" }
func (a tcpName) String() string  { return string(a) }

// Addr returns the advertised address.
func (l *TCPLayer) Addr() net.Addr { return l.advertise }

// Dial implements raft.StreamLayer.
func (l *TCPLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// tlsLayer is raft's stream layer over mutual TLS: both ends present a
// certificate of the cluster CA, so that nothing else can reach the
// group's log. Raft traffic carries no other credential: without a
// cluster CA the raft port must be reachable from the nameservers only
// (doc.go).
type tlsLayer struct {
	raft.StreamLayer
	server, client *tls.Config
}

func newTLSLayer(inner raft.StreamLayer, tc *tlsconf.Cluster) *tlsLayer {
	server := tc.ServerConfig()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.NextProtos = nil
	client := tc.ClientConfig()
	client.NextProtos = nil
	return &tlsLayer{StreamLayer: inner, server: server, client: client}
}

// Accept implements raft.StreamLayer; the handshake runs on first use,
// in the goroutine raft gives the connection.
func (l *tlsLayer) Accept() (net.Conn, error) {
	c, err := l.StreamLayer.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.server), nil
}

// Dial implements raft.StreamLayer.
func (l *tlsLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := l.StreamLayer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	cfg := l.client.Clone()
	if host, _, err := net.SplitHostPort(string(addr)); err == nil {
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("raft tls handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// Leadership: the leader runs the background loops and serves the API;
// followers forward to it.

// leadership follows raft's leadership notifications until ctx ends: on
// taking office it starts lead, on losing it stops it.
func (s *Server) leadership(ctx context.Context) {
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-s.raft.notify:
			if stop != nil {
				stop()
				stop = nil
			}
			if leader {
				lctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					s.lead(lctx)
				}()
				stop = func() { cancel(); <-done }
			}
		}
	}
}

// lead waits until every entry of earlier terms is applied here (a barrier),
// announces this nameserver's HTTP address to the group, then serves as the
// leader until ctx ends.
func (s *Server) lead(ctx context.Context) {
	for {
		err := s.raft.r.Barrier(5 * time.Second).Error()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("raft barrier", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	info := nsclient.NameserverInfo{ID: s.raft.id, Addr: s.advertiseHTTP(), RaftAddr: s.raft.addr}
	if old, ok := s.store.cache.nameserver(info.ID); !ok || old != info {
		if _, err := s.store.propose(ctx, CmdNameserver, info); err != nil {
			s.log.Warn("announce leader", "err", err)
			return
		}
	}
	s.waitGossip(ctx)
	s.log.Info("nameserver leads the raft group", "id", s.raft.id, "term", s.raft.r.CurrentTerm())
	s.leading.Store(true)
	defer s.leading.Store(false)
	s.runLeaderLoops(ctx)
}

// waitGossip waits, up to half of RepairAfter (at most 10s), until this
// nameserver's gossip view holds every dataserver the records show alive.
// A member that just restarted and took office would otherwise sync a
// partial view and mark dataservers unknown, which repair counts as down.
func (s *Server) waitGossip(ctx context.Context) {
	deadline := time.Now().Add(min(s.cfg.RepairAfter/2, 10*time.Second))
	for time.Now().Before(deadline) {
		seen := make(map[string]bool)
		for _, rec := range s.gossipView() {
			seen[rec.ID] = true
		}
		missing := 0
		for _, rec := range s.store.cache.dataserverList() {
			if rec.State == stateAlive && !seen[rec.ID] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.log.Warn("leading with an incomplete gossip view")
}

// advertiseHTTP is the HTTP address the others reach this nameserver at.
func (s *Server) advertiseHTTP() string {
	if s.cfg.Raft.AdvertiseHTTP != "" {
		return s.cfg.Raft.AdvertiseHTTP
	}
	return s.Addr()
}

// runLeaderLoops runs the background work that only the leader does until
// ctx ends.
func (s *Server) runLeaderLoops(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.syncLoop(ctx) })
	wg.Go(func() { s.repairLoop(ctx) })
	wg.Go(func() { s.rebalanceLoop(ctx) })
	wg.Go(func() { s.lifecycleLoop(ctx) })
	wg.Wait()
}

// IsLeader reports whether this nameserver serves the API itself: it is
// alone, or the raft leader with every earlier entry applied.
func (s *Server) IsLeader() bool { return s.raft == nil || s.leading.Load() }

// Leader returns the leader's id and HTTP base URL as this nameserver knows
// them ("" when none is known).
func (s *Server) Leader() (id, url string) {
	if s.raft == nil {
		return "", s.URL()
	}
	_, lid := s.raft.r.LeaderWithID()
	if lid == "" {
		return "", ""
	}
	info, ok := s.store.cache.nameserver(string(lid))
	if !ok || info.Addr == "" {
		return string(lid), ""
	}
	return string(lid), s.cfg.TLS.URL(info.Addr)
}

// Nameservers lists the raft group's members, with their HTTP addresses
// when known, and which one leads.
func (s *Server) Nameservers(ctx context.Context) ([]nsclient.NameserverInfo, error) {
	if s.raft == nil {
		return []nsclient.NameserverInfo{{ID: "", Addr: s.advertiseHTTP(), Leader: true, Voter: true}}, nil
	}
	f := s.raft.r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	_, lid := s.raft.r.LeaderWithID()
	var out []nsclient.NameserverInfo
	for _, sv := range f.Configuration().Servers {
		info, _ := s.store.cache.nameserver(string(sv.ID))
		info.ID, info.RaftAddr = string(sv.ID), string(sv.Address)
		info.Leader = sv.ID == lid
		info.Voter = sv.Suffrage == raft.Voter
		out = append(out, info)
	}
	return out, nil
}

// AddNameserver adds a voter to the raft group (on the leader). The new
// member starts with an empty directory and no peers, and catches up from
// a snapshot and the log.
func (s *Server) AddNameserver(ctx context.Context, id, raftAddr string) error {
	if s.raft == nil {
		return fmt.Errorf("%w: this nameserver runs alone (no raft)", depot.ErrBadRequest)
	}
	if id == "" || raftAddr == "" {
		return fmt.Errorf("%w: id and raft address are required", depot.ErrBadRequest)
	}
	if err := s.raft.r.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, timeoutOf(ctx)).Error(); err != nil {
		return raftError(err)
	}
	return nil
}

// RemoveNameserver removes a member from the raft group (on the leader)
// and forgets its HTTP address.
func (s *Server) RemoveNameserver(ctx context.Context, id string) error {
	if s.raft == nil {
		return fmt.Errorf("%w: this nameserver runs alone (no raft)", depot.ErrBadRequest)
	}
	if err := s.raft.r.RemoveServer(raft.ServerID(id), 0, timeoutOf(ctx)).Error(); err != nil {
		return raftError(err)
	}
	_, err := s.store.propose(ctx, CmdNameserver, nsclient.NameserverInfo{ID: id, Remove: true})
	if errors.Is(err, depot.ErrNoLeader) && id == s.raft.id {
		return nil // removed itself: the rest goes on without it
	}
	return err
}

func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return 30 * time.Second
}

// AppliedIndex returns the raft index of the last entry applied here (0
// when alone).
func (s *Server) AppliedIndex() uint64 {
	if s.raft == nil {
		return 0
	}
	return s.raft.r.AppliedIndex()
}

// RaftStats returns raft's own figures (state, term, indexes, last
// snapshot), nil when alone.
func (s *Server) RaftStats() map[string]string {
	if s.raft == nil {
		return nil
	}
	return s.raft.r.Stats()
}
