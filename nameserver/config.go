package nameserver

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"depot/internal/auth"
	"depot/internal/membership"
	"depot/internal/tlsconf"
)

// Members is the nameserver's view of the gossip cluster; it takes every
// dataserver's address, rack, free space and liveness from it.
// *membership.Membership implements it.
type Members interface {
	Members() []membership.Node
}

var _ Members = (*membership.Membership)(nil)

// Config configures a nameserver. The zero value of a field means its
// default (see DefaultConfig), except Dir, Key and Members, which are
// required.
type Config struct {
	// Dir holds the database file, nameserver.db. Required.
	Dir string
	// Addr is the HTTP listen address. Default ":9330".
	Addr string
	// Key is the cluster key; every API request but /healthz, /readyz and
	// /metrics must carry its token (or AdminKey's). Required.
	Key auth.Key
	// AdminKey, when set, is the admin credential: the admin routes (user
	// management, rebalance and drain control, volume states, the /ui
	// status page) need a token signed with it, or HTTP Basic auth with it
	// (base64) as the password; a cluster-key token gets 403 there. Default
	// nil: the cluster key is also the admin credential.
	AdminKey auth.Key
	// TLS, when not nil, serves the API over mutual TLS (clients need a
	// certificate signed by the cluster CA) and makes the nameserver's own
	// requests to dataservers https. Default nil: plain HTTP.
	TLS *tlsconf.Cluster
	// MetricsToken, when not empty, is the bearer token /metrics requires
	// (auth.MetricsGate). Default empty: /metrics is open.
	MetricsToken string
	// Members is the gossip view. Required.
	Members Members
	// DefaultK and DefaultM are the erasure scheme of an assign that names
	// none. Defaults 4 and 2.
	DefaultK, DefaultM int
	// Unit is the stripe unit, in bytes, of new volumes. Default 1 MiB.
	Unit int
	// MinWritable is how many writable volumes of a scheme assign keeps
	// (creating one when there are fewer), so that concurrent writers
	// spread over volumes and disks. Default 8.
	MinWritable int
	// MaxLease is the largest needle-id lease one assign may take.
	// Default 10000.
	MaxLease int
	// GroupCommitWindow is how long the committer waits for more commands
	// once it has one, while other proposers are on their way; commands
	// that arrive in the window share one transaction and one fsync.
	// Default 1ms.
	GroupCommitWindow time.Duration
	// MaxBatch caps the commands in one transaction. Default 1024.
	MaxBatch int
	// SyncInterval is how often the dataserver records are synced from
	// gossip (assign also syncs on demand). Default 1s.
	SyncInterval time.Duration
	// ReadyDataservers is how many alive dataservers /readyz needs.
	// Default DefaultK+DefaultM.
	ReadyDataservers int
	// ShutdownTimeout bounds the graceful HTTP shutdown in Close.
	// Default 5s.
	ShutdownTimeout time.Duration
	// RepairAfter is how long a dataserver must stay down (dead, left or
	// unheard of) before its shards are rebuilt on others. Default 10m.
	RepairAfter time.Duration
	// RepairInterval is how often repairs are scheduled and the delete
	// queue is worked through. Default 5s.
	RepairInterval time.Duration
	// DeleteGrace is how long a queued segment waits before its needles
	// are deleted from the dataservers. Default 1m.
	DeleteGrace time.Duration
	// LifecycleInterval is how often the leader applies the buckets' S3
	// lifecycle rules (lifecycle.go); 0 turns the worker off. Default 10m.
	LifecycleInterval time.Duration
	// LifecycleRate caps the deletes and aborts the lifecycle worker
	// proposes per second. Default 100.
	LifecycleRate float64
	// LifecycleDay is the length of a day in lifecycle rules (S3 counts
	// Days in days of 24h). Default 24h; only tests shorten it.
	LifecycleDay time.Duration
	// ReadHoldMax is how long past DeleteGrace a queued segment's deletion
	// yields to readers: until then the delete queue asks the dataservers
	// to delete only idle needles (DELETE ?ifidle=1) and keeps the entry
	// queued while a GET of it is in progress or a reader holds it; after
	// it, the needles are deleted whatever readers remain, so a dead or
	// hostile reader keeps no space for longer. Default 1h.
	ReadHoldMax time.Duration
	// RebalanceInterval, when positive, starts a rebalance run on its own
	// whenever, checked that often, a dataserver's bytes lie outside
	// RebalanceBand of the mean. DefaultConfig has it on (every
	// DefaultRebalanceInterval), since an operator who adds a machine
	// expects it to fill; 0 turns it off (`depot admin rebalance` then
	// starts runs by hand). The chaos suite runs with it on, under drains,
	// kills and added dataservers.
	RebalanceInterval time.Duration
	// RebalanceBand is how far from the mean (a fraction of it) a
	// rebalance run lets a dataserver's bytes be. Default 0.1.
	RebalanceBand float64
	// RebalanceParallel caps the shard moves under way at once, over the
	// whole cluster (each is further throttled by the repair workers'
	// rate). Default 4.
	RebalanceParallel int
	// Raft, when Raft.ID is set, makes this nameserver a member of a raft
	// group that replicates its state (raft.go); otherwise it runs alone,
	// as `depot server` does.
	Raft RaftConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Peer is a member of the raft group: its id and raft address.
type Peer struct {
	ID   string
	Addr string
}

// RaftConfig configures a nameserver's membership of a raft group. Zero
// durations and counts take the defaults of DefaultRaftConfig.
type RaftConfig struct {
	// ID is this nameserver's id in the group, stable across restarts.
	// Empty: no raft.
	ID string
	// Addr is the raft listen address (TCP). Default ":9340".
	Addr string
	// Advertise is the raft address the others dial, when not Addr.
	Advertise string
	// AdvertiseHTTP is the HTTP host:port the others forward requests
	// to, when the listener's address is not reachable as such.
	AdvertiseHTTP string
	// Peers is the initial group, this nameserver included. When the
	// directory holds no raft state yet, the group is bootstrapped with
	// it (every member given the same list). Empty: the nameserver waits
	// to be added (`depot admin nameserver add`).
	Peers []Peer
	// Layer replaces the TCP listener on Addr (tests inject faults
	// through it). Optional.
	Layer raft.StreamLayer
	// HeartbeatTimeout and ElectionTimeout: how long without a leader's
	// contact before an election. Default 1s each.
	HeartbeatTimeout, ElectionTimeout time.Duration
	// LeaderLeaseTimeout: how long a leader cut off from a majority goes
	// on before stepping down. Default 500ms.
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: how long without an apply before the leader sends
	// an append that carries the commit index to the followers. Default
	// 50ms.
	CommitTimeout time.Duration
	// MaxAppendEntries caps the entries in one append (and one FSM
	// transaction). Default 256.
	MaxAppendEntries int
	// SnapshotInterval and SnapshotThreshold: a snapshot is taken, and
	// the log compacted, when this many entries accumulated, checked that
	// often. Defaults 30s and 8192.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many entries the log keeps after a snapshot,
	// for followers a little behind. Default 10240.
	TrailingLogs uint64
}

// DefaultRaftConfig returns the raft defaults, without ID and Peers.
func DefaultRaftConfig() RaftConfig {
	return RaftConfig{
		Addr:               ":9340",
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      50 * time.Millisecond,
		MaxAppendEntries:   256,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
	}
}

// TestRaftConfig returns raft settings for tests: the default timings
// (shorter ones make leadership flap on a loaded machine, which costs more
// than the faster failover gains), snapshots every 2048 entries.
func TestRaftConfig(id string, layer raft.StreamLayer, peers []Peer) RaftConfig {
	c := DefaultRaftConfig()
	c.ID, c.Layer, c.Peers = id, layer, peers
	c.Addr = "127.0.0.1:0"
	c.SnapshotInterval, c.SnapshotThreshold, c.TrailingLogs = 500*time.Millisecond, 2048, 128
	return c
}

func (c RaftConfig) withDefaults() RaftConfig {
	d := DefaultRaftConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = d.HeartbeatTimeout
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = d.ElectionTimeout
	}
	if c.LeaderLeaseTimeout == 0 {
		c.LeaderLeaseTimeout = min(d.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = d.CommitTimeout
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = d.MaxAppendEntries
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = d.SnapshotInterval
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	return c
}

// DefaultRebalanceInterval is how often, by default, the nameserver checks
// whether a rebalance run should start on its own.
const DefaultRebalanceInterval = 10 * time.Minute

// DefaultConfig returns the defaults, without the required fields.
func DefaultConfig() Config {
	return Config{
		Addr:              ":9330",
		DefaultK:          4,
		DefaultM:          2,
		Unit:              1 << 20,
		MinWritable:       8,
		MaxLease:          10000,
		GroupCommitWindow: time.Millisecond,
		MaxBatch:          1024,
		SyncInterval:      time.Second,
		ShutdownTimeout:   5 * time.Second,
		RepairAfter:       10 * time.Minute,
		RepairInterval:    5 * time.Second,
		DeleteGrace:       time.Minute,
		ReadHoldMax:       time.Hour,
		RebalanceInterval: DefaultRebalanceInterval,
		RebalanceBand:     0.1,
		RebalanceParallel: 4,
		LifecycleInterval: 10 * time.Minute,
		LifecycleRate:     100,
		LifecycleDay:      24 * time.Hour,
	}
}

// TestConfig returns a preset for tests: port 0 on loopback, 2 writable
// volumes per scheme, a fast gossip sync and a small unit.
func TestConfig(dir string, key auth.Key, members Members) Config {
	c := DefaultConfig()
	c.Dir, c.Key, c.Members = dir, key, members
	c.Addr = "127.0.0.1:0"
	c.Unit = 64 << 10
	c.MinWritable = 2
	c.SyncInterval = 50 * time.Millisecond
	c.ShutdownTimeout = time.Second
	c.RepairAfter, c.RepairInterval, c.DeleteGrace = 2*time.Second, 200*time.Millisecond, time.Second
	c.ReadHoldMax = 5 * time.Second
	c.LifecycleInterval = 200 * time.Millisecond
	return c
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.DefaultK == 0 && c.DefaultM == 0 {
		c.DefaultK, c.DefaultM = d.DefaultK, d.DefaultM
	}
	if c.Unit == 0 {
		c.Unit = d.Unit
	}
	if c.MinWritable == 0 {
		c.MinWritable = d.MinWritable
	}
	if c.MaxLease == 0 {
		c.MaxLease = d.MaxLease
	}
	if c.GroupCommitWindow == 0 {
		c.GroupCommitWindow = d.GroupCommitWindow
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = d.MaxBatch
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.ReadyDataservers == 0 {
		c.ReadyDataservers = c.DefaultK + c.DefaultM
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.RepairAfter == 0 {
		c.RepairAfter = d.RepairAfter
	}
	if c.RepairInterval == 0 {
		c.RepairInterval = d.RepairInterval
	}
	if c.DeleteGrace == 0 {
		c.DeleteGrace = d.DeleteGrace
	}
	if c.ReadHoldMax == 0 {
		c.ReadHoldMax = d.ReadHoldMax
	}
	if c.RebalanceBand == 0 {
		c.RebalanceBand = d.RebalanceBand
	}
	if c.LifecycleRate == 0 {
		c.LifecycleRate = d.LifecycleRate
	}
	if c.LifecycleDay == 0 {
		c.LifecycleDay = d.LifecycleDay
	}
	if c.RebalanceParallel == 0 {
		c.RebalanceParallel = d.RebalanceParallel
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Raft.ID != "" {
		c.Raft = c.Raft.withDefaults()
	}
	return c
}

// Validate reports whether c, with defaults filled in, is usable.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir is required"))
	}
	if len(c.Key) == 0 {
		errs = append(errs, errors.New("Key is required"))
	}
	if c.Members == nil {
		errs = append(errs, errors.New("Members is required"))
	}
	if err := checkScheme(c.DefaultK, c.DefaultM); err != nil {
		errs = append(errs, fmt.Errorf("default scheme: %w", err))
	}
	if c.Unit < 0 || c.MinWritable < 0 || c.MaxLease < 0 || c.MaxBatch < 0 || c.ReadyDataservers < 0 ||
		c.GroupCommitWindow < 0 || c.SyncInterval < 0 || c.ShutdownTimeout < 0 ||
		c.RepairAfter < 0 || c.RepairInterval < 0 || c.DeleteGrace < 0 || c.ReadHoldMax < 0 ||
		c.RebalanceInterval < 0 || c.RebalanceParallel < 0 || c.RebalanceBand < 0 || c.RebalanceBand >= 1 ||
		c.LifecycleInterval < 0 || c.LifecycleRate < 0 || c.LifecycleDay < 0 {
		errs = append(errs, errors.New("negative size, count or duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nameserver: config: %w", err)
	}
	return nil
}
