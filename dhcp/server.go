package dhcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
)

// Planner decides what a client boots. profiles.Set satisfies it through an
// adapter the appliance provides.
type Planner interface {
	// Plan returns the decision for a client; Action Ignore means no reply.
	Plan(ctx context.Context, f profiles.Facts) (profiles.Plan, error)
	// Reservations returns the fixed addresses of [[machine]] entries.
	Reservations() map[units.MAC]netip.Addr
}

// PlannerFunc adapts a function to Planner; it has no reservations.
type PlannerFunc func(ctx context.Context, f profiles.Facts) (profiles.Plan, error)

// Plan calls fn.
func (fn PlannerFunc) Plan(ctx context.Context, f profiles.Facts) (profiles.Plan, error) {
	return fn(ctx, f)
}

// Reservations returns nil.
func (fn PlannerFunc) Reservations() map[units.MAC]netip.Addr { return nil }

// Deps are what the DHCP service needs from the rest of the appliance.
type Deps struct {
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Planner makes every boot decision; required unless the mode is off.
	Planner Planner
	// LeasePath is the bbolt lease file, <state_dir>/leases.db; required in
	// server mode.
	LeasePath string
}

// Stats is a snapshot of the service's counters.
type Stats struct {
	// Counts holds packets by outcome: "received", replies by message type
	// ("OFFER", "ACK", "NAK"), "decline", "release", and drops by reason
	// ("drop_malformed", "drop_rate_limit", "drop_pool_exhausted",
	// "drop_overload", "send_error", ...).
	Counts map[string]uint64
	// LeasesBound is the number of leases in use (server mode).
	LeasesBound int
}

// rtState is the part of the configuration a reload may swap.
type rtState struct {
	cfg     Config
	pools   []*pool
	limiter *macLimiter
}

// Server is the DHCP service: proxyDHCP, full server and PXE boot server.
type Server struct {
	log       *slog.Logger
	planner   Planner
	leasePath string
	cfg       Config // as given to New; listen-time fields come from here
	now       func() time.Time

	rt       atomic.Pointer[rtState]
	ifIndex  int
	ifAddrs  []netip.Prefix
	serverIP netip.Addr
	leases   *LeaseStore
	conns    []*conn

	stats     counters
	warnMu    sync.Mutex
	warnLast  map[string]time.Time
	warnSkip  map[string]int
	closeOnce sync.Once
	closed    chan struct{}
}

// New validates cfg and builds a server; it opens nothing yet.
func New(cfg Config, deps Deps) (*Server, error) {
	d := DefaultConfig()
	if cfg.OfferHold == 0 {
		cfg.OfferHold = d.OfferHold
	}
	if cfg.DeclineHold == 0 {
		cfg.DeclineHold = d.DeclineHold
	}
	if cfg.Workers == 0 {
		cfg.Workers = d.Workers
	}
	if cfg.Mode == "" {
		cfg.Mode = d.Mode
	}
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("dhcp: config: %w", err)
	}
	if cfg.Mode != ModeOff && deps.Planner == nil {
		return nil, errors.New("dhcp: no planner")
	}
	if cfg.Mode == ModeServer && deps.LeasePath == "" {
		return nil, errors.New("dhcp: server mode needs a lease store path")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		log: log.With("svc", "dhcp"), planner: deps.Planner, leasePath: deps.LeasePath, cfg: cfg,
		now: time.Now, warnLast: map[string]time.Time{}, warnSkip: map[string]int{},
		closed: make(chan struct{}),
	}
	s.stats.m = map[string]uint64{}
	s.rt.Store(&rtState{cfg: cfg, limiter: newMACLimiter(cfg.RatePerMAC)})
	return s, nil
}

// setInterface records the interface and resolves the pools against it.
func (s *Server) setInterface(index int, addrs []netip.Prefix) error {
	s.ifIndex, s.ifAddrs = index, addrs
	s.serverIP = s.cfg.ServerAddress.Addr
	if !s.serverIP.IsValid() {
		if len(addrs) == 0 {
			return fmt.Errorf("dhcp: interface %q has no IPv4 address: set dhcp.server_address", s.cfg.Interface)
		}
		s.serverIP = addrs[0].Addr()
	}
	rt := *s.rt.Load()
	pools, err := resolvePools(rt.cfg, addrs, s.serverIP)
	if err != nil {
		return err
	}
	rt.pools = pools
	s.rt.Store(&rt)
	return nil
}

// interfaceAddrs looks up an interface's index and IPv4 prefixes.
func interfaceAddrs(name string) (int, []netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, nil, fmt.Errorf("dhcp: interface %q: %w", name, err)
	}
	as, err := ifi.Addrs()
	if err != nil {
		return 0, nil, fmt.Errorf("dhcp: interface %q: %w", name, err)
	}
	var out []netip.Prefix
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(ipn.IP.To4())
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return ifi.Index, out, nil
}

// Listen binds the DHCP socket (and the boot-server socket when
// proxy_port is not 0) to the interface and opens the lease store.
func (s *Server) Listen() error {
	if s.cfg.Mode == ModeOff {
		return nil
	}
	idx, addrs, err := interfaceAddrs(s.cfg.Interface)
	if err != nil {
		return err
	}
	if err := s.setInterface(idx, addrs); err != nil {
		return err
	}
	if s.cfg.Mode == ModeServer {
		if s.leases, err = OpenLeaseStore(s.leasePath); err != nil {
			return err
		}
	}
	c, err := listenConn(s.cfg.Interface, s.cfg.Port, false)
	if err != nil {
		s.closeAll()
		return err
	}
	s.conns = append(s.conns, c)
	if s.cfg.ProxyPort != 0 {
		c, err := listenConn(s.cfg.Interface, s.cfg.ProxyPort, true)
		if err != nil {
			s.closeAll()
			return err
		}
		s.conns = append(s.conns, c)
	}
	for _, c := range s.conns {
		s.log.Info("listening", "addr", c.uc.LocalAddr().String(), "interface", s.cfg.Interface,
			"mode", s.cfg.Mode, "server_address", s.serverIP, "boot_server", c.bootServer)
	}
	return nil
}

// Addr returns the bound DHCP address (nil before Listen or when off).
func (s *Server) Addr() net.Addr {
	if len(s.conns) == 0 {
		return nil
	}
	return s.conns[0].uc.LocalAddr()
}

// BootServerAddr returns the bound boot-server (4011) address, or nil.
func (s *Server) BootServerAddr() net.Addr {
	if len(s.conns) < 2 {
		return nil
	}
	return s.conns[1].uc.LocalAddr()
}

// job is one received packet waiting for a worker.
type job struct {
	b  []byte
	in inbound
	c  *conn
}

// Serve reads packets and answers them with a bounded pool of workers until
// ctx is done, then stops reading, lets running handlers finish, closes the
// lease store and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if s.cfg.Mode == ModeOff {
		s.log.Info("dhcp is off")
		select {
		case <-ctx.Done():
		case <-s.closed:
		}
		return nil
	}
	if len(s.conns) == 0 {
		return errors.New("dhcp: Serve before Listen")
	}
	workers := s.rt.Load().cfg.Workers
	jobs := make(chan job, 4*workers)
	var readers, handlers sync.WaitGroup
	errc := make(chan error, len(s.conns))
	for _, c := range s.conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			if err := s.readLoop(c, jobs); err != nil {
				errc <- err
			}
		}()
	}
	for range workers {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			for j := range jobs {
				s.work(ctx, j)
			}
		}()
	}
	sweep := time.NewTicker(5 * time.Second)
	defer sweep.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-s.closed:
			break loop
		case err = <-errc:
			break loop
		case <-sweep.C:
			if s.leases != nil {
				s.leases.sweep()
			}
			s.rt.Load().limiter.sweep(s.now())
		}
	}
	for _, c := range s.conns {
		c.uc.Close()
	}
	readers.Wait()
	close(jobs)
	handlers.Wait()
	s.closeAll()
	if err != nil {
		return fmt.Errorf("dhcp: serve: %w", err)
	}
	return nil
}

// work handles one job and sends its reply.
func (s *Server) work(ctx context.Context, j job) {
	out := s.handle(ctx, j.b, j.in)
	if out == nil {
		return
	}
	if err := j.c.send(out); err != nil {
		s.stats.add("send_error")
		s.warnLimited("send", "send failed", "dst", out.dst, "err", err)
		return
	}
	s.stats.add("sent")
}

// readLoop reads one socket until it is closed. A full queue drops the
// packet (counted): the server sheds load instead of growing without bound.
func (s *Server) readLoop(c *conn, jobs chan<- job) error {
	buf := make([]byte, 65536)
	for {
		n, in, err := c.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.warnLimited("read", "read failed", "err", err)
			continue
		}
		j := job{b: append([]byte(nil), buf[:n]...), in: in, c: c}
		select {
		case jobs <- j:
		default:
			s.stats.add("drop_overload")
			s.warnLimited("overload", "request queue full, dropping")
		}
	}
}

// closeAll closes sockets and the lease store once.
func (s *Server) closeAll() {
	s.closeOnce.Do(func() {
		for _, c := range s.conns {
			c.uc.Close()
		}
		if s.leases != nil {
			if err := s.leases.Close(); err != nil {
				s.log.Error("close lease store", "err", err)
			}
		}
	})
}

// Close stops the server now.
func (s *Server) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	for _, c := range s.conns {
		c.uc.Close()
	}
	return nil
}

// Reload applies what can change without a restart: pools, proxy
// strategies, hold times, rate limit. Mode, interface, ports, server address
// and worker count need a restart; a change is logged and otherwise ignored.
func (s *Server) Reload(cfg Config) error {
	old := s.rt.Load()
	if cfg.OfferHold == 0 {
		cfg.OfferHold = old.cfg.OfferHold
	}
	if cfg.DeclineHold == 0 {
		cfg.DeclineHold = old.cfg.DeclineHold
	}
	if err := cfg.Validate().Err(); err != nil {
		return fmt.Errorf("dhcp: reload: %w", err)
	}
	if cfg.Mode != s.cfg.Mode || cfg.Interface != s.cfg.Interface || cfg.Port != s.cfg.Port ||
		cfg.ProxyPort != s.cfg.ProxyPort || cfg.ServerAddress != s.cfg.ServerAddress || (cfg.Workers != 0 && cfg.Workers != s.cfg.Workers) {
		s.log.Warn("reload: mode, interface, port, proxy_port, server_address and workers need a restart; keeping the running values")
	}
	cfg.Mode, cfg.Interface, cfg.Port, cfg.ProxyPort, cfg.ServerAddress, cfg.Workers =
		s.cfg.Mode, s.cfg.Interface, s.cfg.Port, s.cfg.ProxyPort, s.cfg.ServerAddress, s.cfg.Workers
	rt := &rtState{cfg: cfg, limiter: old.limiter}
	if cfg.RatePerMAC != old.cfg.RatePerMAC {
		rt.limiter = newMACLimiter(cfg.RatePerMAC)
	}
	if s.serverIP.IsValid() {
		pools, err := resolvePools(cfg, s.ifAddrs, s.serverIP)
		if err != nil {
			return fmt.Errorf("dhcp: reload: %w", err)
		}
		rt.pools = pools
	}
	s.rt.Store(rt)
	s.log.Info("reloaded", "pools", len(rt.pools))
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	st := Stats{Counts: s.stats.snapshot()}
	if s.leases != nil {
		st.LeasesBound = s.leases.Bound()
	}
	return st
}

// counters are the per-outcome packet counters.
type counters struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (c *counters) add(k string) {
	c.mu.Lock()
	c.m[k]++
	c.mu.Unlock()
}

func (c *counters) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// warnLimited logs a warning of a kind at most once per 10 seconds, with the
// number of lines suppressed since the last one.
func (s *Server) warnLimited(kind, msg string, args ...any) {
	s.warnMu.Lock()
	now := s.now()
	if last, ok := s.warnLast[kind]; ok && now.Sub(last) < 10*time.Second {
		s.warnSkip[kind]++
		s.warnMu.Unlock()
		return
	}
	skipped := s.warnSkip[kind]
	s.warnLast[kind], s.warnSkip[kind] = now, 0
	s.warnMu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed", skipped)
	}
	s.log.Warn(msg, args...)
}

// macLimiter is a per-MAC token bucket; nil allows everything.
type macLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[units.MAC]*macEntry
}

type macEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newMACLimiter(perSecond int) *macLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &macLimiter{limit: rate.Limit(perSecond), burst: perSecond, m: map[units.MAC]*macEntry{}}
}

func (l *macLimiter) allow(mac units.MAC, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[mac]
	if !ok {
		if len(l.m) >= 100000 {
			l.sweepLocked(now)
		}
		e = &macEntry{l: rate.NewLimiter(l.limit, l.burst)}
		l.m[mac] = e
	}
	e.seen = now
	return e.l.AllowN(now, 1)
}

func (l *macLimiter) sweep(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *macLimiter) sweepLocked(now time.Time) {
	for m, e := range l.m {
		if now.Sub(e.seen) > 10*time.Second {
			delete(l.m, m)
		}
	}
}

// Leases returns the server-mode lease records (nil in proxy mode or before
// Listen), for the control socket's `leases` command.
func (s *Server) Leases() []Lease {
	if s.leases == nil {
		return nil
	}
	return s.leases.Leases()
}
