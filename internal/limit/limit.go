// Package limit holds the small admission controls the network services
// share: a per-source token-bucket rate limiter whose idle entries expire
// (Rate), concurrency caps per key and overall (Conc), and a logger helper
// that rate-limits repeated warnings so a flood cannot flood the log (Logger).
//
// The token buckets are golang.org/x/time/rate limiters; this package only
// keeps one per key, forgets idle ones, and lets the limits change at run
// time (for SIGHUP reloads) without dropping state.
package limit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate limits events per key (typically a client address) with one token
// bucket per key. Buckets idle for longer than the expiry are forgotten, so
// memory stays bounded by the number of keys seen within that window. The
// zero value is not usable; use NewRate. It is safe for concurrent use.
type Rate[K comparable] struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	expiry  time.Duration
	maxKeys int
	m       map[K]*bucket
	now     func() time.Time
	sweepAt time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

// NewRate returns a limiter allowing perSecond events per second per key with
// the given burst. perSecond <= 0 means unlimited. Keys idle for expiry (0:
// one minute) are dropped. maxKeys caps the table (0: 65536); when it is
// full, events from new keys are refused until old ones expire, so an
// address-spraying flood degrades to refusals, never to unbounded memory.
func NewRate[K comparable](perSecond float64, burst int, expiry time.Duration, maxKeys int) *Rate[K] {
	r := &Rate[K]{m: make(map[K]*bucket), now: time.Now}
	r.set(perSecond, burst, expiry, maxKeys)
	return r
}

func (r *Rate[K]) set(perSecond float64, burst int, expiry time.Duration, maxKeys int) {
	r.limit = rate.Inf
	if perSecond > 0 {
		r.limit = rate.Limit(perSecond)
	}
	if burst < 1 {
		burst = 1
	}
	if expiry <= 0 {
		expiry = time.Minute
	}
	if maxKeys <= 0 {
		maxKeys = 65536
	}
	r.burst, r.expiry, r.maxKeys = burst, expiry, maxKeys
}

// SetLimit changes the rate and burst for every key, keeping the buckets'
// current fill.
func (r *Rate[K]) SetLimit(perSecond float64, burst int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set(perSecond, burst, r.expiry, r.maxKeys)
	for _, b := range r.m {
		b.l.SetLimit(r.limit)
		b.l.SetBurst(r.burst)
	}
}

// Allow reports whether one event for key may happen now, and takes a token
// when it may.
func (r *Rate[K]) Allow(key K) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit == rate.Inf {
		return true
	}
	now := r.now()
	if now.After(r.sweepAt) {
		r.sweep(now)
	}
	b := r.m[key]
	if b == nil {
		if len(r.m) >= r.maxKeys {
			r.sweep(now)
			if len(r.m) >= r.maxKeys {
				return false
			}
		}
		b = &bucket{l: rate.NewLimiter(r.limit, r.burst)}
		r.m[key] = b
	}
	b.seen = now
	return b.l.AllowN(now, 1)
}

// sweep drops idle buckets. A bucket idle for expiry is full again (for any
// expiry longer than burst/rate), so forgetting it changes no decision.
func (r *Rate[K]) sweep(now time.Time) {
	for k, b := range r.m {
		if now.Sub(b.seen) > r.expiry {
			delete(r.m, k)
		}
	}
	r.sweepAt = now.Add(r.expiry / 2)
}

// Len returns the number of keys currently tracked.
func (r *Rate[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// Errors returned by Conc.Acquire.
var (
	ErrGlobal = errors.New("limit: too many concurrent operations")
	ErrPerKey = errors.New("limit: too many concurrent operations for this client")
)

// Conc caps concurrent operations overall and per key. Limits of 0 mean
// unlimited. The zero value is unlimited and ready to use. It is safe for
// concurrent use.
type Conc[K comparable] struct {
	mu     sync.Mutex
	global int
	perKey int
	active int
	m      map[K]int
}

// NewConc returns a Conc with the given caps.
func NewConc[K comparable](global, perKey int) *Conc[K] {
	return &Conc[K]{global: global, perKey: perKey}
}

// SetLimits changes the caps. Running operations keep their slots; new ones
// see the new caps.
func (c *Conc[K]) SetLimits(global, perKey int) {
	c.mu.Lock()
	c.global, c.perKey = global, perKey
	c.mu.Unlock()
}

// Acquire takes a slot for key. On success it returns a release function,
// which must be called exactly once (later calls do nothing). Otherwise it
// returns ErrGlobal or ErrPerKey.
func (c *Conc[K]) Acquire(key K) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.global > 0 && c.active >= c.global {
		return nil, ErrGlobal
	}
	if c.m == nil {
		c.m = make(map[K]int)
	}
	if c.perKey > 0 && c.m[key] >= c.perKey {
		return nil, ErrPerKey
	}
	c.active++
	c.m[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.active--
			if c.m[key] <= 1 {
				delete(c.m, key)
			} else {
				c.m[key]--
			}
			c.mu.Unlock()
		})
	}, nil
}

// Check reports, without taking a slot, the error Acquire would return now.
// It is a cheap early refusal; Acquire remains the authority.
func (c *Conc[K]) Check(key K) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.global > 0 && c.active >= c.global {
		return ErrGlobal
	}
	if c.perKey > 0 && c.m[key] >= c.perKey {
		return ErrPerKey
	}
	return nil
}

// Active returns the number of slots taken overall.
func (c *Conc[K]) Active() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

// ActiveFor returns the number of slots taken by key.
func (c *Conc[K]) ActiveFor(key K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// Logger rate-limits repeated log lines per kind: at most burst lines per
// interval for each kind; the lines held back are counted and reported as
// "suppressed" on the next line of that kind that gets through. The zero
// value is not usable; use NewLogger. It is safe for concurrent use.
type Logger struct {
	l        *slog.Logger
	interval time.Duration
	burst    int
	now      func() time.Time
	mu       sync.Mutex
	kinds    map[string]*logState
}

type logState struct {
	start      time.Time
	n          int
	suppressed int
}

// NewLogger wraps l (nil: discard). interval <= 0 means 10s, burst < 1
// means 1.
func NewLogger(l *slog.Logger, interval time.Duration, burst int) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = 10 * time.Second
	}
	if burst < 1 {
		burst = 1
	}
	return &Logger{l: l, interval: interval, burst: burst, now: time.Now, kinds: make(map[string]*logState)}
}

// Allow reports whether a line of kind may be logged now; when it returns
// true, suppressed is the number of lines of that kind held back since the
// last one let through.
func (lg *Logger) Allow(kind string) (ok bool, suppressed int) {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	now := lg.now()
	st := lg.kinds[kind]
	if st == nil {
		if len(lg.kinds) > 1024 { // kinds are meant to be a small fixed set
			clear(lg.kinds)
		}
		st = &logState{start: now}
		lg.kinds[kind] = st
	}
	if now.Sub(st.start) >= lg.interval {
		st.start, st.n = now, 0
	}
	if st.n >= lg.burst {
		st.suppressed++
		return false, 0
	}
	st.n++
	s := st.suppressed
	st.suppressed = 0
	return true, s
}

// Log emits msg at level with args and a "kind" attribute, unless lines of
// this kind are being suppressed; a "suppressed" count is added when lines
// were held back before it.
func (lg *Logger) Log(level slog.Level, kind, msg string, args ...any) {
	ok, n := lg.Allow(kind)
	if !ok {
		return
	}
	args = append(args, slog.String("kind", kind))
	if n > 0 {
		args = append(args, slog.Int("suppressed", n))
	}
	lg.l.Log(context.Background(), level, msg, args...)
}

// Warn is Log at warning level.
func (lg *Logger) Warn(kind, msg string, args ...any) { lg.Log(slog.LevelWarn, kind, msg, args...) }
