package guard

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Config configures a Limiter. Zero rates turn their limit off.
type Config struct {
	// PerIP is the sustained requests per second allowed to one client
	// IP. Default 0: no limit.
	PerIP float64
	// PerKey is the sustained requests per second allowed to one access
	// key. Default 0: no limit.
	PerKey float64
	// PerIPBurst and PerKeyBurst are how many requests an IP or a key may
	// send at once above its rate. Default twice the rate, at least 1.
	PerIPBurst, PerKeyBurst int
	// Tracked is how many IPs, and how many keys, have a bucket at once.
	// Default 10000.
	Tracked int
}

// DefaultTracked is the default of Config.Tracked.
const DefaultTracked = 10000

// Limiter hands out tokens per client IP and per access key. A nil
// *Limiter allows everything. It is safe for concurrent use.
type Limiter struct {
	cfg  Config
	mu   sync.Mutex // makes get-or-add atomic
	ips  *lru.Cache[string, *rate.Limiter]
	keys *lru.Cache[string, *rate.Limiter]
}

// New returns a Limiter, or nil when both rates are zero.
func New(cfg Config) (*Limiter, error) {
	if cfg.PerIP < 0 || cfg.PerKey < 0 || cfg.PerIPBurst < 0 || cfg.PerKeyBurst < 0 || cfg.Tracked < 0 {
		return nil, fmt.Errorf("guard: negative rate limit setting: %+v", cfg)
	}
	if cfg.PerIP == 0 && cfg.PerKey == 0 {
		return nil, nil
	}
	if cfg.Tracked == 0 {
		cfg.Tracked = DefaultTracked
	}
	l := &Limiter{cfg: cfg}
	var err error
	if l.ips, err = lru.New[string, *rate.Limiter](cfg.Tracked); err != nil {
		return nil, err
	}
	if l.keys, err = lru.New[string, *rate.Limiter](cfg.Tracked); err != nil {
		return nil, err
	}
	return l, nil
}

// AllowIP takes a token from the bucket of a client IP.
func (l *Limiter) AllowIP(ip string) bool {
	if l == nil {
		return true
	}
	return l.allow(l.ips, ip, l.cfg.PerIP, l.cfg.PerIPBurst)
}

// AllowKey takes a token from the bucket of an access key.
func (l *Limiter) AllowKey(key string) bool {
	if l == nil {
		return true
	}
	return l.allow(l.keys, key, l.cfg.PerKey, l.cfg.PerKeyBurst)
}

func (l *Limiter) allow(c *lru.Cache[string, *rate.Limiter], who string, r float64, burst int) bool {
	if r == 0 {
		return true
	}
	l.mu.Lock()
	lim, ok := c.Get(who)
	if !ok {
		if burst == 0 {
			burst = int(math.Max(1, math.Ceil(2*r)))
		}
		lim = rate.NewLimiter(rate.Limit(r), burst)
		c.Add(who, lim)
	}
	l.mu.Unlock()
	return lim.Allow()
}

// ErrBodyTimeout is returned (wrapped) by a Body whose client sent nothing
// for the timeout.
var ErrBodyTimeout = errors.New("request body stalled")

// Body returns r.Body wrapped so that each Read must get bytes within
// timeout, using w's connection read deadline. With timeout 0, or when
// the connection offers no deadline, r.Body is returned as it is.
func Body(w http.ResponseWriter, r *http.Request, timeout time.Duration) io.ReadCloser {
	if timeout <= 0 || r.Body == nil || r.Body == http.NoBody {
		return r.Body
	}
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return r.Body // errors.Is(err, http.ErrNotSupported): HTTP/2 or a test writer
	}
	return &deadlineBody{ReadCloser: r.Body, rc: rc, timeout: timeout}
}

type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if !b.done {
		b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: nothing received for %v", ErrBodyTimeout, b.timeout)
	}
	return n, err
}
