package nameserver

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	// RebalanceInterval, when positive, starts a rebalance run on its own
	// whenever, checked that often, a dataserver's bytes lie outside
	// RebalanceBand of the mean. Default 0: off (`depot admin rebalance`
	// starts runs by hand).
	RebalanceInterval time.Duration
	// RebalanceBand is how far from the mean (a fraction of it) a
	// rebalance run lets a dataserver's bytes be. Default 0.1.
	RebalanceBand float64
	// RebalanceParallel caps the shard moves under way at once, over the
	// whole cluster (each is further throttled by the repair workers'
	// rate). Default 4.
	RebalanceParallel int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

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
		RebalanceBand:     0.1,
		RebalanceParallel: 4,
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
	if c.RebalanceBand == 0 {
		c.RebalanceBand = d.RebalanceBand
	}
	if c.RebalanceParallel == 0 {
		c.RebalanceParallel = d.RebalanceParallel
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
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
		c.RepairAfter < 0 || c.RepairInterval < 0 || c.DeleteGrace < 0 ||
		c.RebalanceInterval < 0 || c.RebalanceParallel < 0 || c.RebalanceBand < 0 || c.RebalanceBand >= 1 {
		errs = append(errs, errors.New("negative size, count or duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nameserver: config: %w", err)
	}
	return nil
}
