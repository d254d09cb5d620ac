package dataserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"depot"
)

// FsyncPolicy says when a write is made durable before it is acknowledged.
type FsyncPolicy string

// Fsync policies.
const (
	// FsyncGroup acknowledges a write after an fsync that covers it; writes
	// that arrive together share one fsync (group commit), waiting at most
	// GroupCommitDelay for companions. The default.
	FsyncGroup FsyncPolicy = "group"
	// FsyncAlways fsyncs as soon as each write is appended (fsyncs already
	// running are still shared by the writes they cover).
	FsyncAlways FsyncPolicy = "always"
	// FsyncNone never fsyncs on the write path: a process crash loses
	// nothing, a power loss may. For tests and benchmarks.
	FsyncNone FsyncPolicy = "none"
)

// ErrClosed is returned by every Store method called after Close.
var ErrClosed = errors.New("dataserver: store closed")

// StoreConfig configures a Store. The zero value of every field but Dirs
// means its documented default.
type StoreConfig struct {
	// Dirs are the data directories (one per disk), at least one. They are
	// created if missing. Each is locked against other processes.
	Dirs []string
	// Fsync is the durability policy; default FsyncGroup.
	Fsync FsyncPolicy
	// GroupCommitDelay bounds how long a group commit waits for more writes
	// to join it before fsyncing; default 2ms. It only waits while other
	// writes are still being appended, so a lone writer never waits.
	GroupCommitDelay time.Duration
	// MaxNeedleSize is the largest needle accepted; default and upper
	// bound 128 MiB - 1 (what the index can describe).
	MaxNeedleSize int64
	// MaxDirBytes, when positive, caps the bytes of shard and index files
	// kept in each directory: a write past it fails with ErrDiskFull as if
	// the disk were full. Default 0: only the filesystem limits.
	MaxDirBytes int64
	// MinFreeBytes is the free space a directory needs to receive a new
	// shard file; default 0.
	MinFreeBytes int64
	// CheckpointInterval is how often the index of each changed shard file
	// is written to its .idx checkpoint, so a restart scans only what came
	// after; default 30s, negative disables (checkpoints are still written
	// by Close and Compact).
	CheckpointInterval time.Duration
	// BlockSize is the number of needle bytes covered by one CRC32C in new
	// shard files; default 16 KiB. Existing files keep their own.
	BlockSize int
	// Logger receives recovery reports and errors; nil discards.
	Logger *slog.Logger
	// Registerer, if not nil, receives the store's metrics.
	Registerer prometheus.Registerer

	// writeFault, if set (tests only), is called before every write to a
	// shard file; an error it returns is treated as the write's error.
	writeFault func(path string, off int64, n int) error
}

// DefaultStoreConfig returns a StoreConfig for dirs with every default
// filled in.
func DefaultStoreConfig(dirs ...string) StoreConfig {
	return StoreConfig{
		Dirs:               dirs,
		Fsync:              FsyncGroup,
		GroupCommitDelay:   2 * time.Millisecond,
		MaxNeedleSize:      maxNeedleSize,
		CheckpointInterval: 30 * time.Second,
		BlockSize:          defaultBlock,
	}
}

func (c *StoreConfig) setDefaults() {
	d := DefaultStoreConfig()
	if c.Fsync == "" {
		c.Fsync = d.Fsync
	}
	if c.GroupCommitDelay == 0 {
		c.GroupCommitDelay = d.GroupCommitDelay
	}
	if c.MaxNeedleSize == 0 {
		c.MaxNeedleSize = d.MaxNeedleSize
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.BlockSize == 0 {
		c.BlockSize = d.BlockSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first problem with c, after defaults are applied.
func (c StoreConfig) Validate() error {
	c.setDefaults()
	switch {
	case len(c.Dirs) == 0:
		return errors.New("dataserver: no data directories")
	case c.Fsync != FsyncGroup && c.Fsync != FsyncAlways && c.Fsync != FsyncNone:
		return fmt.Errorf("dataserver: unknown fsync policy %q (want group, always or none)", c.Fsync)
	case c.GroupCommitDelay < 0:
		return errors.New("dataserver: negative group commit delay")
	case c.MaxNeedleSize < 0 || c.MaxNeedleSize > maxNeedleSize:
		return fmt.Errorf("dataserver: max needle size %d out of range [1, %d]", c.MaxNeedleSize, maxNeedleSize)
	case c.MaxDirBytes < 0 || c.MinFreeBytes < 0:
		return errors.New("dataserver: negative byte limit")
	case c.BlockSize < 512 || c.BlockSize > 1<<20:
		return fmt.Errorf("dataserver: block size %d out of range [512, 1MiB]", c.BlockSize)
	}
	seen := map[string]bool{}
	for _, d := range c.Dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return fmt.Errorf("dataserver: data directory %q: %w", d, err)
		}
		if seen[abs] {
			return fmt.Errorf("dataserver: data directory %q listed twice", d)
		}
		seen[abs] = true
	}
	return nil
}

type shardKey struct {
	vol depot.VolumeID
	idx int
}

func (k shardKey) String() string { return fmt.Sprintf("shard %d/%d", k.vol, k.idx) }

// dataDir is one data directory.
type dataDir struct {
	path     string
	lock     *os.File
	used     atomic.Int64 // bytes of depot files in it
	readOnly atomic.Bool  // set when a write found the disk full
}

// free returns the bytes that may still be written to d.
func (d *dataDir) free(limit int64) int64 {
	free, _, err := diskFree(d.path)
	if err != nil {
		return 0
	}
	if limit > 0 {
		free = min(free, limit-d.used.Load())
	}
	return max(free, 0)
}

// Store keeps shard files in local data directories. All methods are safe
// for concurrent use.
type Store struct {
	cfg StoreConfig
	log *slog.Logger

	dirs []*dataDir

	mu      sync.RWMutex // guards files, closed
	files   map[shardKey]*shardFile
	closed  bool
	createM sync.Mutex // serialises shard file creation

	ignored []string // files in data directories that are not ours

	checksumFailures prometheus.Counter
	spooled          prometheus.Counter
	needles          prometheus.GaugeFunc
	failures         atomic.Int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var (
	shardNameRE = regexp.MustCompile(`^([0-9]{1,10})_([0-9]{1,5})\.shard$`)
	indexNameRE = regexp.MustCompile(`^([0-9]{1,10})_([0-9]{1,5})\.idx$`)
)

func shardName(k shardKey) string { return fmt.Sprintf("%d_%d.shard", k.vol, k.idx) }

// OpenStore opens (creating if needed) the shard files in cfg.Dirs and
// recovers their indexes: each index checkpoint is loaded and only the
// records written after it are scanned; a torn tail is cut off. Files that
// are not depot's are reported in the log and by Ignored, not fatal. It
// starts one goroutine, the checkpointer, which Close stops.
func OpenStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Store{
		cfg:   cfg,
		log:   cfg.Logger,
		files: map[shardKey]*shardFile{},
		stop:  make(chan struct{}),
	}
	s.checksumFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "depot_dataserver_checksum_failures_total",
		Help: "Needle reads or scans whose bytes failed their checksum.",
	})
	s.spooled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "depot_dataserver_spooled_bytes_total",
		Help: "Record bytes of bodies of unknown length that went through a spool file before their place in a shard file (written twice).",
	})
	s.needles = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "depot_dataserver_needles",
		Help: "Live needles held in all shard files.",
	}, func() float64 { return float64(s.liveNeedles()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.checksumFailures, s.spooled, s.needles} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("dataserver: register metrics: %w", err)
			}
		}
	}
	for _, p := range cfg.Dirs {
		if err := s.openDir(p); err != nil {
			s.closeFiles()
			return nil, err
		}
	}
	if cfg.CheckpointInterval > 0 {
		s.wg.Add(1)
		go s.checkpointer()
	}
	return s, nil
}

func (s *Store) openDir(p string) error {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("dataserver: data directory: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(p, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("dataserver: data directory: %w", err)
	}
	if err := lockDir(lf); err != nil {
		lf.Close()
		return fmt.Errorf("dataserver: data directory %s is in use by another process: %w", p, err)
	}
	d := &dataDir{path: p, lock: lf}
	s.dirs = append(s.dirs, d)
	ents, err := os.ReadDir(p)
	if err != nil {
		return fmt.Errorf("dataserver: data directory: %w", err)
	}
	shards := map[string]bool{}
	for _, e := range ents {
		if shardNameRE.MatchString(e.Name()) && e.Type().IsRegular() {
			shards[e.Name()] = true
		}
	}
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(p, name)
		switch ext := filepath.Ext(name); {
		case name == "LOCK":
		case ext == ".new" || ext == ".compact" || ext == ".tmp":
			// Leftover of a creation, compaction or checkpoint that a crash
			// interrupted: never referenced, safe to drop.
			s.log.Info("removing leftover temporary file", "path", full)
			os.Remove(full)
		case shardNameRE.MatchString(name) && e.Type().IsRegular():
			m := shardNameRE.FindStringSubmatch(name)
			vol, err1 := strconv.ParseUint(m[1], 10, 32)
			idx, err2 := strconv.Atoi(m[2])
			if err1 != nil || err2 != nil {
				s.ignore(full, "bad shard file name")
				continue
			}
			k := shardKey{depot.VolumeID(vol), idx}
			if other, ok := s.files[k]; ok {
				s.ignore(full, "duplicate of "+other.path)
				continue
			}
			f, err := openShardFile(s, d, k, full)
			if err != nil {
				if errors.Is(err, depot.ErrCorrupt) {
					// An unreadable superblock: keep the bytes aside for an
					// operator, free the slot so repair can rebuild it.
					bad := full + ".bad"
					s.log.Error("quarantining unreadable shard file", "path", full, "as", bad, "err", err)
					if rerr := os.Rename(full, bad); rerr != nil {
						return fmt.Errorf("dataserver: quarantine %s: %w", full, rerr)
					}
					s.ignored = append(s.ignored, bad)
					continue
				}
				return err
			}
			s.files[k] = f
		case indexNameRE.MatchString(name) && shards[name[:len(name)-len(ext)]+".shard"]:
			if fi, err := e.Info(); err == nil {
				d.used.Add(fi.Size())
			}
		default:
			s.ignore(full, "not a depot file")
		}
	}
	return nil
}

func (s *Store) ignore(path, why string) {
	s.log.Warn("ignoring file in data directory", "path", path, "reason", why)
	s.ignored = append(s.ignored, path)
}

// Ignored returns the files found in the data directories at open that the
// store does not use: foreign files, duplicates and quarantined shard files.
func (s *Store) Ignored() []string { return slices.Clone(s.ignored) }

// ChecksumFailures returns how many reads found a checksum mismatch since
// the store was opened (also the metric depot_dataserver_checksum_failures_total).
func (s *Store) ChecksumFailures() int64 { return s.failures.Load() }

func (s *Store) countFailure() {
	s.failures.Add(1)
	s.checksumFailures.Inc()
}

func (s *Store) liveNeedles() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	for _, f := range s.files {
		f.mu.RLock()
		n += f.liveN
		f.mu.RUnlock()
	}
	return n
}

// shard returns the open shard file for k, or ErrNotFound.
func (s *Store) shard(k shardKey) (*shardFile, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	f, ok := s.files[k]
	if !ok {
		return nil, fmt.Errorf("%v: %w", k, depot.ErrNotFound)
	}
	return f, nil
}

// shardForWrite returns the shard file for k, creating it in the
// directory with the most room if it does not exist.
func (s *Store) shardForWrite(k shardKey) (*shardFile, error) {
	f, err := s.shard(k)
	if !errors.Is(err, depot.ErrNotFound) {
		return f, err
	}
	s.createM.Lock()
	defer s.createM.Unlock()
	if f, err := s.shard(k); !errors.Is(err, depot.ErrNotFound) {
		return f, err
	}
	var best *dataDir
	var bestFree int64
	for _, d := range s.dirs {
		if d.readOnly.Load() {
			continue
		}
		free := d.free(s.cfg.MaxDirBytes)
		if free < s.cfg.MinFreeBytes+superSize || free <= bestFree {
			continue
		}
		best, bestFree = d, free
	}
	if best == nil {
		return nil, fmt.Errorf("%w: no data directory has room for %v", depot.ErrDiskFull, k)
	}
	f, err = createShardFile(s, best, k, s.cfg.BlockSize)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		f.close()
		return nil, ErrClosed
	}
	s.files[k] = f
	return f, nil
}

func checkKey(vol depot.VolumeID, idx int) (shardKey, error) {
	if idx < 0 || idx > 99999 {
		return shardKey{}, fmt.Errorf("%w: shard index %d out of range", depot.ErrBadRequest, idx)
	}
	return shardKey{vol, idx}, nil
}

// Write stores the needle id of shard idx of volume vol with cookie,
// reading its bytes from r: exactly size bytes, or up to EOF when size is
// -1. Writing an id again with the same cookie (a retry) replaces it;
// writing an id that is live with another cookie is refused (only repair
// replaces such a needle, with Rewrite). Write returns the bytes stored
// once they are durable under the fsync policy. The body is read without
// holding up other writers of the shard file. Outcomes:
//   - the id live with another cookie: ErrCookieConflict (wrapping
//     depot.ErrExists), nothing changed;
//   - a body shorter or longer than size, or cut short (r failing with
//     io.ErrUnexpectedEOF): ErrBadRequest, nothing visible;
//   - more than MaxNeedleSize bytes: ErrTooLarge, nothing visible;
//   - no room in the directory: ErrDiskFull, the directory turns read-only;
//   - a read error from r: that error, nothing visible;
//   - ctx done while waiting for fsync: ctx's error (the needle may be
//     visible but was not acknowledged).
func (s *Store) Write(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64) (int64, error) {
	f, err := s.writeTarget(ctx, vol, idx, id, size)
	if err != nil {
		return 0, err
	}
	return f.write(ctx, id, cookie, r, size, true, false)
}

// Rewrite is Write for repair: it replaces a needle of the same id
// whatever its cookie, since repair rebuilds what the nameserver records
// and a needle held here under another cookie is stale.
func (s *Store) Rewrite(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, r io.Reader, size int64) (int64, error) {
	f, err := s.writeTarget(ctx, vol, idx, id, size)
	if err != nil {
		return 0, err
	}
	return f.write(ctx, id, cookie, r, size, true, true)
}

// writeTarget checks a write's arguments and returns the shard file it
// appends to (Write and WriteNoSync).
func (s *Store) writeTarget(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, size int64) (*shardFile, error) {
	k, err := checkKey(vol, idx)
	if err != nil {
		return nil, err
	}
	if size > s.cfg.MaxNeedleSize {
		return nil, fmt.Errorf("%v needle %x: %w: %d bytes, limit %d", k, uint64(id), depot.ErrTooLarge, size, s.cfg.MaxNeedleSize)
	}
	if size < -1 {
		return nil, fmt.Errorf("%v needle %x: %w: size %d", k, uint64(id), depot.ErrBadRequest, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.shardForWrite(k)
}

// Open returns the needle for reading after checking its cookie and
// header; the caller must Close it. A missing or deleted needle, or a wrong
// cookie, is ErrNotFound; a damaged header wraps ErrCorrupt.
func (s *Store) Open(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) (*Needle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := checkKey(vol, idx)
	if err != nil {
		return nil, err
	}
	f, err := s.shard(k)
	if err != nil {
		return nil, err
	}
	return f.open(id, cookie, true)
}

// Stat returns a needle's size after checking its cookie, reading only its
// header. Errors as for Open.
func (s *Store) Stat(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	k, err := checkKey(vol, idx)
	if err != nil {
		return 0, err
	}
	f, err := s.shard(k)
	if err != nil {
		return 0, err
	}
	n, err := f.open(id, cookie, false)
	if err != nil {
		return 0, err
	}
	n.Close()
	return n.Size(), nil
}

// Read returns a whole needle's bytes, verified. Errors as for Open, plus
// an error wrapping ErrCorrupt (naming the needle) when a block fails its
// checksum.
func (s *Store) Read(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) ([]byte, error) {
	n, err := s.Open(ctx, vol, idx, id, cookie)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	w := appendWriter{b: make([]byte, 0, n.Size())}
	if _, err := n.ReadRange(ctx, &w, 0, n.Size()); err != nil {
		return nil, err
	}
	return w.b, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// ReadRange writes length bytes of the needle from offset off to w,
// verifying exactly the blocks the range touches, each before any of its
// bytes is written. length -1 means to the end. Errors as for Read, plus
// ErrBadRequest for a range outside the needle.
func (s *Store) ReadRange(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie, off, length int64, w io.Writer) (int64, error) {
	n, err := s.Open(ctx, vol, idx, id, cookie)
	if err != nil {
		return 0, err
	}
	defer n.Close()
	if length < 0 {
		length = n.Size() - off
	}
	return n.ReadRange(ctx, w, off, length)
}

// Delete deletes a needle by appending a tombstone, durable under the
// fsync policy. A missing or already deleted needle, or a wrong cookie, is
// ErrNotFound.
func (s *Store) Delete(ctx context.Context, vol depot.VolumeID, idx int, id depot.NeedleID, cookie depot.Cookie) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k, err := checkKey(vol, idx)
	if err != nil {
		return err
	}
	f, err := s.shard(k)
	if err != nil {
		return err
	}
	return f.delete(ctx, id, cookie)
}

// NeedleInfo describes one needle of a shard file, as List returns it.
type NeedleInfo struct {
	ID      depot.NeedleID
	Cookie  depot.Cookie
	Size    int64 // 0 when deleted
	Deleted bool
	// Record is the offset of the needle's latest record in its shard
	// file: a needle written again (a repair copy after a delete) gets a
	// new one, and so does every needle a compaction moves.
	Record int64
}

// List returns every needle of a shard file, deleted ones included (so
// that repair does not resurrect them), sorted by id. An unknown shard
// file is ErrNotFound.
func (s *Store) List(ctx context.Context, vol depot.VolumeID, idx int) ([]NeedleInfo, error) {
	k, err := checkKey(vol, idx)
	if err != nil {
		return nil, err
	}
	f, err := s.shard(k)
	if err != nil {
		return nil, err
	}
	return f.list(ctx)
}

// CompactResult reports what a compaction did.
type CompactResult struct {
	Before    int64 `json:"before"`    // file bytes before
	After     int64 `json:"after"`     // file bytes after
	Reclaimed int64 `json:"reclaimed"` // Before - After
	Needles   int   `json:"needles"`   // records kept (live needles and tombstones)
	Dropped   int   `json:"dropped"`   // corrupt records that could not be kept
}

// Compact rewrites a shard file without the bytes of deleted and replaced
// needles, while reads and writes go on. An unknown shard file is
// ErrNotFound.
func (s *Store) Compact(ctx context.Context, vol depot.VolumeID, idx int) (CompactResult, error) {
	k, err := checkKey(vol, idx)
	if err != nil {
		return CompactResult{}, err
	}
	f, err := s.shard(k)
	if err != nil {
		return CompactResult{}, err
	}
	res, err := f.compact(ctx)
	if err != nil {
		return res, err
	}
	if err := f.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
		s.log.Error("checkpoint after compaction failed", "shard", k.String(), "err", err)
	}
	return res, nil
}

// Checkpoint writes the index checkpoint of every shard file that changed
// since its last one.
func (s *Store) Checkpoint(ctx context.Context) error {
	var errs []error
	for _, f := range s.allFiles() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Store) allFiles() []*shardFile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fs := make([]*shardFile, 0, len(s.files))
	for _, f := range s.files {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *shardFile) int {
		if a.key.vol != b.key.vol {
			return int(a.key.vol) - int(b.key.vol)
		}
		return a.key.idx - b.key.idx
	})
	return fs
}

func (s *Store) checkpointer() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Checkpoint(context.Background()); err != nil {
				s.log.Error("index checkpoint failed", "err", err)
			}
		}
	}
}

// DirStatus describes one data directory.
type DirStatus struct {
	Path     string `json:"path"`
	Used     int64  `json:"used"`
	Free     int64  `json:"free"`
	ReadOnly bool   `json:"read_only"`
}

// FileStatus describes one shard file.
type FileStatus struct {
	Volume       depot.VolumeID `json:"volume"`
	Index        int            `json:"index"`
	Dir          string         `json:"dir"`
	Needles      int64          `json:"needles"`
	LiveBytes    int64          `json:"live_bytes"`
	GarbageBytes int64          `json:"garbage_bytes"`
	FileBytes    int64          `json:"file_bytes"`
	// MaxNeedle is the highest needle id the file's index holds, live or
	// deleted: a restored nameserver leases above it.
	MaxNeedle depot.NeedleID `json:"max_needle"`
}

// StoreStatus is a snapshot of the store's directories and shard files.
type StoreStatus struct {
	Dirs    []DirStatus  `json:"dirs"`
	Files   []FileStatus `json:"files"`
	Ignored []string     `json:"ignored,omitempty"`
}

// Status returns a snapshot of the store's directories and files.
func (s *Store) Status() StoreStatus {
	var st StoreStatus
	for _, d := range s.dirs {
		st.Dirs = append(st.Dirs, DirStatus{Path: d.path, Used: d.used.Load(), Free: d.free(s.cfg.MaxDirBytes), ReadOnly: d.readOnly.Load()})
	}
	for _, f := range s.allFiles() {
		st.Files = append(st.Files, f.status())
	}
	st.Ignored = s.Ignored()
	return st
}

// Close makes every shard file durable, writes its index checkpoint and
// closes it. Writes being appended finish first; a write still receiving
// its body fails with ErrClosed, storing nothing; later calls get
// ErrClosed.
// Needles still open stay readable until they are closed. Safe to call
// twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closeErr = s.closeFiles()
	})
	return s.closeErr
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, f := range s.files {
		if err := f.checkpoint(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
		if err := f.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range s.dirs {
		d.lock.Close()
	}
	return errors.Join(errs...)
}

// diskFullErr classifies a write error: ENOSPC and EDQUOT become
// ErrDiskFull.
func diskFullErr(err error) error {
	if err == nil || errors.Is(err, depot.ErrDiskFull) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", depot.ErrDiskFull, err)
	}
	return err
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
