package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"depot"
	"depot/erasure"
	"depot/internal/auth"
	"depot/internal/tlsconf"
	"depot/nameserver/nsclient"
)

// Nameserver is what the client needs from the nameserver: leases of
// needle ids on writable volumes, volume member lists, and a place to report
// members that missed a write. nsclient.Client implements it.
type Nameserver interface {
	// Assign returns a writable volume of scheme k+m and Count consecutive
	// needle ids starting at First, reserved for the caller.
	Assign(ctx context.Context, k, m, count int) (nsclient.Assignment, error)
	// Volume returns the volume's current description, or an error wrapping
	// depot.ErrNotFound.
	Volume(ctx context.Context, id depot.VolumeID) (depot.Volume, error)
	// Missed records that the given shard indexes of fid were not written.
	Missed(ctx context.Context, fid depot.Fid, shards []int) error
}

// Config configures a Client. The zero value of every field but
// Nameserver and Key takes the default documented beside it.
type Config struct {
	// Nameserver answers leases and volume lookups. Required.
	Nameserver Nameserver
	// Key is the cluster key that signs requests to dataservers. Required.
	Key auth.Key
	// TLS, when not nil, makes shard requests https with the cluster's
	// mutual TLS (the default HTTPClient's transport uses it). Default nil:
	// plain HTTP.
	TLS *tlsconf.Cluster
	// HTTPClient sends shard requests. Default: a client with a transport
	// tuned for many parallel streams to few hosts, speaking TLS when TLS
	// is set; requests are signed with Key.
	HTTPClient *http.Client
	// K and M are the erasure scheme of new writes. Default 4 and 2.
	K, M int
	// SegmentSize is the largest number of object bytes in one segment.
	// Default 32 MiB.
	SegmentSize int64
	// Quorum is how many members must acknowledge a segment. Default K+1
	// (capped at K+M).
	Quorum int
	// LeaseSize is how many needle ids one Assign call reserves. Default 256.
	LeaseSize int
	// Leases is how many leases (volumes) the client writes to in turn, so
	// concurrent writes spread over volumes. Default 8.
	Leases int
	// Attempts is how many volumes one segment write tries. Default 3.
	Attempts int
	// HedgeAfter starts a parity read when a data shard is slower than
	// this. Default 300ms; negative disables hedging.
	HedgeAfter time.Duration
	// StripeTimeout drops a member whose stream stalls for longer than this
	// while writing one stripe. Default 30s.
	StripeTimeout time.Duration
	// MaxBlobWrite bounds how long PutBlob may take to write a blob of
	// several segments; a longer one fails. It must stay below the orphan
	// sweep's grace (repair.Config.OrphanGrace, 1h), which deletes the
	// segments of a blob whose manifest is not readable by then. Default
	// 30m.
	MaxBlobWrite time.Duration
	// HoldTTL is the time to live of the hold a read of several segments
	// keeps on its segments' members (dataserver/doc.go, "Open readers and
	// holds"), renewed every HoldTTL/3 while the read is open: a reader
	// that vanishes without Close holds its segments this long. Default
	// 30s; at most dataserver.MaxHoldTTL (5m).
	HoldTTL time.Duration
	// VolumeTTL is how long a volume's member list is cached. Default 10s.
	VolumeTTL time.Duration
	// Logger receives warnings about failed members. Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultSegmentSize = 32 << 20
	DefaultLeaseSize   = 256
	DefaultLeases      = 8
)

func (c *Config) setDefaults() error {
	if c.Nameserver == nil {
		return errors.New("client: Config.Nameserver is required")
	}
	if len(c.Key) == 0 {
		return errors.New("client: Config.Key is required")
	}
	if c.K == 0 {
		c.K = 4
	}
	if c.M == 0 {
		c.M = 2
	}
	if c.SegmentSize <= 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.Quorum <= 0 {
		c.Quorum = c.K + 1
	}
	if c.Quorum > c.K+c.M {
		c.Quorum = c.K + c.M
	}
	if c.Quorum < c.K {
		return fmt.Errorf("client: quorum %d is below k=%d: data could not be read back", c.Quorum, c.K)
	}
	if c.LeaseSize <= 0 {
		c.LeaseSize = DefaultLeaseSize
	}
	if c.Leases <= 0 {
		c.Leases = DefaultLeases
	}
	if c.Attempts <= 0 {
		c.Attempts = 3
	}
	if c.HedgeAfter == 0 {
		c.HedgeAfter = 300 * time.Millisecond
	}
	if c.StripeTimeout <= 0 {
		c.StripeTimeout = 30 * time.Second
	}
	if c.MaxBlobWrite <= 0 {
		c.MaxBlobWrite = 30 * time.Minute
	}
	if c.HoldTTL <= 0 {
		c.HoldTTL = 30 * time.Second
	}
	c.HoldTTL = min(c.HoldTTL, 5*time.Minute)
	if c.VolumeTTL <= 0 {
		c.VolumeTTL = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HTTPClient == nil {
		tr := c.TLS.Transport()
		tr.MaxIdleConnsPerHost = 256
		tr.MaxConnsPerHost = 0
		tr.WriteBufferSize = 64 << 10
		tr.ReadBufferSize = 64 << 10
		tr.DisableCompression = true
		c.HTTPClient = &http.Client{Transport: &auth.Transport{Key: c.Key, Base: tr}}
	}
	return nil
}

// Client is depot's native API. It is safe for concurrent use.
type Client struct {
	cfg    Config
	ns     Nameserver
	http   *http.Client
	leases *leasePool

	codecMu sync.Mutex
	codecs  map[[3]int]*erasure.Codec

	volMu   sync.Mutex
	volumes map[depot.VolumeID]cachedVolume

	tags *lru.Cache[depot.Fid, Tag]
}

type cachedVolume struct {
	vol     depot.Volume
	fetched time.Time
}

// New returns a Client. It starts nothing and needs no Close.
func New(cfg Config) (*Client, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if _, err := erasure.New(cfg.K, cfg.M, 0); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	tags, err := lru.New[depot.Fid, Tag](64 << 10)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:     cfg,
		ns:      cfg.Nameserver,
		http:    cfg.HTTPClient,
		codecs:  make(map[[3]int]*erasure.Codec),
		volumes: make(map[depot.VolumeID]cachedVolume),
		tags:    tags,
	}
	c.leases = &leasePool{c: c}
	return c, nil
}

func (c *Client) codec(k, m, unit int) (*erasure.Codec, error) {
	c.codecMu.Lock()
	defer c.codecMu.Unlock()
	key := [3]int{k, m, unit}
	if cd, ok := c.codecs[key]; ok {
		return cd, nil
	}
	cd, err := erasure.New(k, m, unit)
	if err != nil {
		return nil, err
	}
	c.codecs[key] = cd
	return cd, nil
}

// volume returns the volume's description, from the cache when it is
// younger than VolumeTTL and was fetched after notBefore (a request that
// failed at notBefore asks for news newer than its failure).
func (c *Client) volume(ctx context.Context, id depot.VolumeID, notBefore time.Time) (depot.Volume, error) {
	vol, _, err := c.volumeAt(ctx, id, notBefore)
	return vol, err
}

// volumeAt is volume, with the time the member list was fetched.
func (c *Client) volumeAt(ctx context.Context, id depot.VolumeID, notBefore time.Time) (depot.Volume, time.Time, error) {
	c.volMu.Lock()
	cv, ok := c.volumes[id]
	c.volMu.Unlock()
	if ok && time.Since(cv.fetched) < c.cfg.VolumeTTL && cv.fetched.After(notBefore) {
		return cv.vol, cv.fetched, nil
	}
	vol, err := c.ns.Volume(ctx, id)
	if err != nil {
		return depot.Volume{}, time.Time{}, fmt.Errorf("volume %d: %w", id, err)
	}
	now := time.Now()
	c.volMu.Lock()
	c.volumes[id] = cachedVolume{vol: vol, fetched: now}
	c.volMu.Unlock()
	return vol, now, nil
}

func (c *Client) rememberVolume(vol depot.Volume) {
	c.volMu.Lock()
	c.volumes[vol.ID] = cachedVolume{vol: vol, fetched: time.Now()}
	c.volMu.Unlock()
}
