// Package membership is depot's gossip layer: every process (nameserver,
// dataserver, gateway) joins one hashicorp/memberlist cluster and announces
// its role, id, HTTP address, rack and free space as node metadata.
//
// Gossip is encrypted with a 32-byte key derived from the cluster key as
// HMAC-SHA256(clusterKey, "depot gossip"), so a process holding another
// cluster key can neither join nor read the gossip.
//
// The view that Members returns is derived from gossip alone: it is kept up
// to date by memberlist's event delegate (join, update, leave/dead) plus the
// local failure detector (suspect). Nodes that died or left stay in the view,
// with their last metadata, for as long as this process runs, so callers can
// tell a dead dataserver from one that never existed.
//
// Node metadata travels as JSON and must fit memberlist's 512-byte limit
// (memberlist.MetaMaxSize); New and UpdateMeta refuse larger metadata.
package membership

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"depot/internal/auth"
)

// Node states as Members reports them.
const (
	StateAlive   = "alive"   // answering probes
	StateSuspect = "suspect" // a probe failed; not yet declared dead
	StateDead    = "dead"    // declared dead by the cluster
	StateLeft    = "left"    // left on purpose (Close)
)

// ErrMetaTooLarge is returned when node metadata does not fit memberlist's
// metadata limit once encoded.
var ErrMetaTooLarge = errors.New("membership: node metadata too large")

// ErrClosed is returned by calls made after Close, or before Start.
var ErrClosed = errors.New("membership: not running")

// NodeMeta is what a process announces about itself in gossip. It travels as
// JSON and must encode to at most memberlist.MetaMaxSize (512) bytes.
type NodeMeta struct {
	Role string `json:"role"`           // depot.RoleNameserver, RoleDataserver, RoleGateway
	ID   string `json:"id"`             // node id; the memberlist node name
	Addr string `json:"addr"`           // host:port of the HTTP API
	Rack string `json:"rack,omitempty"` // failure domain; empty when unknown
	Free uint64 `json:"free"`           // free bytes on the data directories
	Used uint64 `json:"used"`           // bytes used by shard files
	// Leaving is set by Close just before the node leaves, so that the
	// others report it as left rather than dead.
	Leaving bool `json:"leaving,omitempty"`
}

// Node is one member as this process sees it.
type Node struct {
	Meta  NodeMeta `json:"meta"`
	State string   `json:"state"` // StateAlive, StateSuspect, StateDead or StateLeft
	Addr  string   `json:"addr"`  // gossip address, host:port
	// Since is when this process last saw the node's state change.
	Since time.Time `json:"since"`
}

// Timing selects the failure-detector timings.
type Timing int

const (
	// TimingLAN is memberlist.DefaultLANConfig: a dead node is declared
	// dead after roughly 5 to 10 seconds.
	TimingLAN Timing = iota
	// TimingLocal is memberlist.DefaultLocalConfig (loopback / one host).
	TimingLocal
	// TimingTest probes every 200ms with short suspicion, so that a killed
	// node is declared dead within a couple of seconds. Only for tests.
	TimingTest
)

// Config configures a Membership.
type Config struct {
	// Name is the node id; it must be unique in the cluster. Required.
	Name string
	// BindAddr is the host:port memberlist listens on, TCP and UDP on the
	// same port. Port 0 picks a free port (see GossipAddr). Default
	// "0.0.0.0:7946".
	BindAddr string
	// AdvertiseAddr is the host:port announced to the others, when it
	// differs from BindAddr (NAT, containers). Optional.
	AdvertiseAddr string
	// Key is the cluster key; the gossip encryption key is derived from it.
	// Required.
	Key auth.Key
	// Meta is the initial node metadata. Meta.ID defaults to Name.
	Meta NodeMeta
	// Join lists gossip addresses (host:port) of existing members. Empty
	// starts a new cluster.
	Join []string
	// Logger receives memberlist's log lines at matching levels. Default
	// slog.Default().
	Logger *slog.Logger
	// Timing selects the failure-detector preset. Default TimingLAN.
	Timing Timing
	// RejoinInterval is how often a node that sees a dead member, or none
	// at all, contacts its Join addresses again. memberlist alone gives up
	// on a dead node after GossipToTheDeadTime (30s on a LAN), so a
	// partition longer than that would never heal; a push/pull with a
	// seed heals it. Default DefaultRejoinInterval.
	RejoinInterval time.Duration
	// OnChange, when set, is called after a node's state or metadata
	// changed, with the node as Members would now report it. It is called
	// from memberlist's goroutines and must not block.
	OnChange func(Node)
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Name == "" {
		return errors.New("membership: Config.Name is required")
	}
	if len(c.Key) == 0 {
		return errors.New("membership: Config.Key is required")
	}
	if c.Meta.ID != "" && c.Meta.ID != c.Name {
		return fmt.Errorf("membership: Meta.ID %q differs from Name %q", c.Meta.ID, c.Name)
	}
	if c.BindAddr != "" {
		if _, _, err := splitHostPort(c.BindAddr); err != nil {
			return fmt.Errorf("membership: BindAddr: %w", err)
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort(c.AdvertiseAddr); err != nil {
			return fmt.Errorf("membership: AdvertiseAddr: %w", err)
		}
	}
	if c.Timing < TimingLAN || c.Timing > TimingTest {
		return fmt.Errorf("membership: unknown Timing %d", c.Timing)
	}
	meta := c.Meta
	meta.ID = c.Name
	if _, err := encodeMeta(meta); err != nil {
		return err
	}
	return nil
}

// GossipKey derives the 32-byte gossip encryption key from a cluster key.
func GossipKey(k auth.Key) []byte {
	h := hmac.New(sha256.New, k)
	h.Write([]byte("depot gossip"))
	return h.Sum(nil)
}

// Membership is this process's membership in the gossip cluster.
type Membership struct {
	cfg    Config
	logger *slog.Logger

	mu      sync.Mutex
	ml      *memberlist.Memberlist
	meta    NodeMeta
	metaB   []byte
	nodes   map[string]*Node
	closed  bool
	started bool
	stop    chan struct{} // closed by Close and Kill: ends the rejoin loop
}

// DefaultRejoinInterval is the default of Config.RejoinInterval.
const DefaultRejoinInterval = 15 * time.Second

// New checks cfg and returns a Membership that has not joined yet; Start
// binds and joins.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0:7946"
	}
	cfg.Meta.ID = cfg.Name
	b, err := encodeMeta(cfg.Meta)
	if err != nil {
		return nil, err
	}
	return &Membership{
		cfg:    cfg,
		logger: cfg.Logger.With("component", "membership", "node", cfg.Name),
		meta:   cfg.Meta,
		metaB:  b,
		nodes:  make(map[string]*Node),
		stop:   make(chan struct{}),
	}, nil
}

// Start binds the gossip ports and, when Config.Join is set, joins the
// cluster, retrying until one join succeeds or ctx is done. It returns an
// error wrapping the last join error when ctx ends first; the node then stays
// up on its own and Join can be tried again.
func (m *Membership) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.closed || m.started {
		m.mu.Unlock()
		return fmt.Errorf("membership: Start: %w", ErrClosed)
	}
	m.started = true
	m.mu.Unlock()

	mc, err := m.memberlistConfig()
	if err != nil {
		return err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("membership: start memberlist on %s: %w", m.cfg.BindAddr, err)
	}
	m.mu.Lock()
	m.ml = ml
	closed := m.closed
	m.mu.Unlock()
	if closed { // Close raced with Start
		ml.Shutdown()
		return fmt.Errorf("membership: Start: %w", ErrClosed)
	}
	m.logger.Info("gossip started", "addr", m.GossipAddr())
	if len(m.cfg.Join) == 0 {
		return nil
	}
	go m.rejoin()
	delay := 100 * time.Millisecond
	for {
		_, err := m.Join(ctx, m.cfg.Join)
		if err == nil {
			return nil
		}
		m.logger.Warn("join failed; retrying", "join", m.cfg.Join, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("membership: join %v: %w (%w)", m.cfg.Join, err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// rejoin contacts the Join addresses again every Config.RejoinInterval while this
// node sees a dead member or is alone, until Close or Kill.
func (m *Membership) rejoin() {
	every := m.cfg.RejoinInterval
	if every <= 0 {
		every = DefaultRejoinInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		others, dead := 0, 0
		for _, n := range m.Members() {
			if n.Meta.ID == m.cfg.Name {
				continue
			}
			others++
			if n.State == StateDead {
				dead++
			}
		}
		if others > 0 && dead == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := m.Join(ctx, m.cfg.Join)
		cancel()
		if err != nil {
			m.logger.Debug("rejoin", "join", m.cfg.Join, "err", err)
		} else {
			m.logger.Debug("rejoined", "join", m.cfg.Join, "answered", n)
		}
	}
}

// Join contacts the given gossip addresses and returns how many of them
// answered. It fails when none did, for example because they hold another
// cluster key.
func (m *Membership) Join(ctx context.Context, addrs []string) (int, error) {
	ml, err := m.list()
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// memberlist.Join is bounded by its TCP timeout per address; it takes
	// no context.
	n, err := ml.Join(addrs)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = errors.New("no member answered")
	}
	return 0, fmt.Errorf("membership: join %v: %w", addrs, err)
}

func (m *Membership) list() (*memberlist.Memberlist, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.ml == nil {
		return nil, ErrClosed
	}
	return m.ml, nil
}

// GossipAddr returns the host:port this node gossips on (with the port
// memberlist picked when BindAddr had port 0), or "" before Start.
func (m *Membership) GossipAddr() string {
	m.mu.Lock()
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return ""
	}
	n := ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Name returns the node id.
func (m *Membership) Name() string { return m.cfg.Name }

// Meta returns the metadata this node currently announces.
func (m *Membership) Meta() NodeMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta
}

// Members returns every node this process has seen, itself included, sorted
// by name: alive and suspect nodes, and dead or left ones with their last
// metadata.
func (m *Membership) Members() []Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Node, 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, *n)
	}
	slices.SortFunc(out, func(a, b Node) int {
		switch {
		case a.Meta.ID < b.Meta.ID:
			return -1
		case a.Meta.ID > b.Meta.ID:
			return 1
		}
		return 0
	})
	return out
}

// UpdateMeta replaces this node's metadata and broadcasts it, waiting up to
// ctx's deadline (at most 5s) for the broadcast to reach a member. meta.ID
// is forced to the node's name.
func (m *Membership) UpdateMeta(ctx context.Context, meta NodeMeta) error {
	meta.ID = m.cfg.Name
	b, err := encodeMeta(meta)
	if err != nil {
		return err
	}
	ml, err := m.list()
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.meta, m.metaB = meta, b
	m.mu.Unlock()
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return fmt.Errorf("membership: update meta: %w", context.DeadlineExceeded)
	}
	if err := ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: update meta: %w", err)
	}
	return nil
}

// Close leaves the cluster (announcing the departure for up to a second),
// then shuts gossip down. It is safe to call more than once.
func (m *Membership) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	ml := m.ml
	m.meta.Leaving = true
	m.metaB, _ = encodeMeta(m.meta)
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	// Announce Leaving in the metadata first, so the others can tell a
	// departure from a death; then the memberlist leave message.
	if err := ml.UpdateNode(500 * time.Millisecond); err != nil {
		m.logger.Debug("leave: meta broadcast", "err", err)
	}
	if err := ml.Leave(time.Second); err != nil {
		m.logger.Warn("leave", "err", err)
	}
	if err := ml.Shutdown(); err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	m.logger.Info("gossip stopped")
	return nil
}

// Kill shuts gossip down without leaving, as a crash would. For tests.
func (m *Membership) Kill() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	ml := m.ml
	m.mu.Unlock()
	if ml == nil {
		return nil
	}
	return ml.Shutdown()
}

func (m *Membership) memberlistConfig() (*memberlist.Config, error) {
	var mc *memberlist.Config
	switch m.cfg.Timing {
	case TimingLocal:
		mc = memberlist.DefaultLocalConfig()
	case TimingTest:
		mc = memberlist.DefaultLocalConfig()
		// Short, but not so short that a busy two-core CI machine (the
		// race detector, other tests) declares healthy nodes dead.
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 150 * time.Millisecond
		mc.SuspicionMult = 3
		mc.SuspicionMaxTimeoutMult = 2
		mc.GossipInterval = 30 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = m.cfg.Name
	host, port, err := splitHostPort(m.cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: BindAddr: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = "", 0
	if m.cfg.AdvertiseAddr != "" {
		host, port, err := splitHostPort(m.cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("membership: AdvertiseAddr: %w", err)
		}
		// memberlist wants an IP: resolve a host name (a container's or
		// pod's DNS name) once, at start.
		if net.ParseIP(host) == nil {
			ip, err := resolveIP(host)
			if err != nil {
				return nil, fmt.Errorf("membership: AdvertiseAddr: %w", err)
			}
			host = ip
		}
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	} else if port != 0 {
		mc.AdvertisePort = port
	}
	// A node that died and comes back under the same name at another
	// address (a Kubernetes pod with a new IP, a process on a new port)
	// is let in once it has been dead this long; memberlist's default, 0,
	// refuses it for good.
	mc.DeadNodeReclaimTime = 10 * time.Second
	if m.cfg.Timing == TimingTest {
		mc.DeadNodeReclaimTime = time.Second
	}
	mc.SecretKey = GossipKey(m.cfg.Key)
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Ping = (*pings)(m)
	mc.LogOutput = nil
	mc.Logger = log.New(&logWriter{m: m}, "", 0)
	return mc, nil
}

// resolveIP returns an address of host, IPv4 first.
func resolveIP(host string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", err
	}
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			return ip.IP.String(), nil
		}
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("no address for %q", host)
	}
	return ips[0].IP.String(), nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", s)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

func encodeMeta(meta NodeMeta) ([]byte, error) {
	b, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("membership: encode meta: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// setState records what gossip said about a node; it is called from
// memberlist's goroutines (sometimes under memberlist's own locks, so it
// must not call back into memberlist).
func (m *Membership) setState(n *memberlist.Node, state string) {
	var meta NodeMeta
	metaOK := len(n.Meta) > 0 && json.Unmarshal(n.Meta, &meta) == nil
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	m.setNamed(n.Name, state, addr, meta, metaOK)
}

func (m *Membership) setNamed(name, state, addr string, meta NodeMeta, metaOK bool) {
	m.mu.Lock()
	cur, ok := m.nodes[name]
	if !ok {
		if state == StateSuspect { // suspicion of a node we never saw alive
			m.mu.Unlock()
			return
		}
		cur = &Node{Meta: NodeMeta{ID: name}}
		m.nodes[name] = cur
	}
	before := *cur
	if state == StateSuspect && cur.State != StateAlive {
		m.mu.Unlock()
		return
	}
	if metaOK {
		cur.Meta = meta
		cur.Meta.ID = name
	}
	if addr != "" {
		cur.Addr = addr
	}
	if state == StateDead && cur.Meta.Leaving {
		state = StateLeft
	}
	if state == StateAlive && cur.Meta.Leaving { // an update announcing the leave
		state = before.State
		if state == "" {
			state = StateLeft
		}
	}
	if cur.State != state {
		cur.State = state
		cur.Since = time.Now()
	}
	after := *cur
	m.mu.Unlock()
	if after.State != before.State || after.Meta != before.Meta || after.Addr != before.Addr {
		if after.State != before.State {
			m.logger.Debug("member state", "member", name, "from", before.State, "to", after.State)
		}
		if m.cfg.OnChange != nil {
			m.cfg.OnChange(after)
		}
	}
}

// delegate supplies the node metadata.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.metaB) > limit { // cannot happen: checked by encodeMeta
		return nil
	}
	return slices.Clone(m.metaB)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the gossip-derived view.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node) { (*Membership)(e).setState(n, StateAlive) }
func (e *events) NotifyUpdate(n *memberlist.Node) {
	(*Membership)(e).setState(n, StateAlive)
}
func (e *events) NotifyLeave(n *memberlist.Node) { (*Membership)(e).setState(n, StateDead) }

// pings clears local suspicion when a probe of the node succeeds again (a
// refuted suspicion produces no memberlist event).
type pings Membership

func (p *pings) AckPayload() []byte { return nil }
func (p *pings) NotifyPingComplete(n *memberlist.Node, _ time.Duration, _ []byte) {
	m := (*Membership)(p)
	m.mu.Lock()
	cur, ok := m.nodes[n.Name]
	suspect := ok && cur.State == StateSuspect
	m.mu.Unlock()
	if suspect {
		m.setNamed(n.Name, StateAlive, "", NodeMeta{}, false)
	}
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*events)(nil)
	_ memberlist.PingDelegate  = (*pings)(nil)
	_ io.Writer                = (*logWriter)(nil)
)
