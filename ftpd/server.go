package ftpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// Renderer produces generated files (installer answer files such as
// preseed/node01.cfg) served read-only by RETR and SIZE. ok=false means name
// is not a generated name; the file system is then consulted.
type Renderer interface {
	Render(ctx context.Context, req RenderRequest) (data []byte, ok bool, err error)
}

// RenderRequest names a file a client asked for.
type RenderRequest struct {
	Name   string     // cleaned, relative to the FTP tree root ("preseed/node01.cfg")
	Client netip.Addr // the client's address
	Server netip.Addr // the local address the client reached
}

// RendererFunc adapts a function to Renderer.
type RendererFunc func(ctx context.Context, req RenderRequest) ([]byte, bool, error)

// Render implements Renderer.
func (f RendererFunc) Render(ctx context.Context, req RenderRequest) ([]byte, bool, error) {
	return f(ctx, req)
}

// Deps are the service's dependencies.
type Deps struct {
	// Logger receives structured logs (nil: discard). svc=ftp is added.
	Logger *slog.Logger
	// StateDir holds the generated TLS certificate and key (and the default
	// xferlog). Empty: the certificate is generated in memory.
	StateDir string
	// Images is the read-only published images store, shown under /images/.
	// Optional. Files that are *os.File are sent with sendfile.
	Images fs.FS
	// Renderer serves generated files. Optional.
	Renderer Renderer
}

// Stats is a snapshot of the service counters.
type Stats struct {
	Sessions        int64 // control connections now
	Connections     int64 // control connections accepted since start
	Refused         int64 // connections refused (limits, bans, shutdown)
	LoginsOK        int64
	LoginsFailed    int64
	Bans            int64 // addresses banned for failed logins
	Bounces         int64 // PORT/EPRT refused as bounce attempts
	CommandsRefused int64 // commands refused by the drop-box/permission policy
	Downloads       int64
	Uploads         int64
	BytesOut        int64
	BytesIn         int64
	ActiveTransfers int64
}

type counters struct {
	conns, refused, loginsOK, loginsFailed, bans, bounces, cmdRefused atomic.Int64
	downloads, uploads, bytesOut, bytesIn                             atomic.Int64
}

// policy is everything Reload may change, swapped atomically.
type policy struct {
	cfg   Config
	users map[string]*userRT
	deny  map[string]bool
	anon  []Anonymous // per tree
}

type userRT struct {
	hash    []byte
	acct    account
	maxRate int64
}

// tree is one served root with its drop box.
type tree struct {
	idx   int
	dir   string
	root  *fsroot.Root
	quota atomic.Pointer[fsroot.Quota]
}

// listenerRT is one bound control listener and its ftpserverlib instance.
type listenerRT struct {
	addr     string
	banner   string
	implicit bool
	tr       *tree
	ln       net.Listener
	fsrv     *ftpserver.FtpServer
	stopOnce sync.Once
}

// Server is the FTP/FTPS service.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	pol    atomic.Pointer[policy]
	tlsCfg *tls.Config
	trees  []*tree
	lns    []*listenerRT
	xlog   *xferLog

	mu       sync.Mutex
	byAddr   map[string]*session
	sessions map[*session]struct{}
	perIP    map[netip.Addr]int
	draining bool
	active   int
	idle     chan struct{} // closed and replaced when active drops to 0

	fails failTable
	stats counters
	ids   atomic.Uint64
}

// New validates cfg and builds the service; no sockets are opened.
func New(cfg Config, deps Deps) (*Server, error) {
	if l := cfg.Validate(); len(l) > 0 {
		return nil, fmt.Errorf("ftpd: invalid configuration: %w", l.Err())
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		deps:     deps,
		log:      log.With("svc", "ftp"),
		byAddr:   map[string]*session{},
		sessions: map[*session]struct{}{},
		perIP:    map[netip.Addr]int{},
		idle:     make(chan struct{}),
	}
	p, err := compilePolicy(cfg)
	if err != nil {
		return nil, err
	}
	s.pol.Store(p)
	s.fails.m = map[netip.Addr]*failState{}
	return s, nil
}

func compilePolicy(cfg Config) (*policy, error) {
	p := &policy{cfg: cfg, users: map[string]*userRT{}, deny: map[string]bool{"root": true}}
	for _, d := range cfg.DenyUsers {
		p.deny[strings.TrimSpace(d)] = true
	}
	for _, u := range cfg.Users {
		home, err := fsroot.CleanName(u.Home)
		if u.Home == "" {
			home, err = ".", nil
		}
		if err != nil {
			return nil, fmt.Errorf("ftpd: user %q: home %q: %w", u.Name, u.Home, err)
		}
		perms := u.Permissions
		if perms == nil {
			perms = []string{"read"}
		}
		name := strings.TrimSpace(u.Name)
		p.users[name] = &userRT{
			hash:    []byte(u.PasswordHash),
			acct:    account{name: name, perms: parsePerms(perms), home: home},
			maxRate: int64(u.MaxRate),
		}
	}
	p.anon = []Anonymous{cfg.Anonymous}
	for _, l := range cfg.Listeners {
		a := cfg.Anonymous
		if l.Anonymous != nil {
			a = *l.Anonymous
		}
		p.anon = append(p.anon, a)
	}
	for i := range p.anon {
		in := strings.Trim(path.Clean("/"+p.anon[i].Incoming), "/")
		if !p.anon[i].Enabled || in == "" || in == "." {
			in = ""
		}
		p.anon[i].Incoming = in
	}
	return p, nil
}

// Listen binds every control listener, opens the roots, the drop boxes, the
// TLS certificate and the xferlog. Call it before dropping privileges.
func (s *Server) Listen() (err error) {
	defer func() {
		if err != nil {
			s.closeResources()
		}
	}()
	cfg := s.cfg
	cert, generated, err := loadOrCreateCert(cfg.TLSCert, cfg.TLSKey, s.deps.StateDir)
	if err != nil {
		return err
	}
	if generated {
		s.log.Info("generated self-signed TLS certificate", "dir", s.deps.StateDir)
	}
	s.tlsCfg = tlsConfig(cert)

	xl := cfg.Xferlog
	if xl == "" && s.deps.StateDir != "" {
		xl = filepath.Join(s.deps.StateDir, "xferlog")
	}
	if xl != "" {
		f, err := os.OpenFile(xl, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("ftpd: open xferlog: %w", err)
		}
		s.xlog = &xferLog{w: f}
	}

	pol := s.pol.Load()
	roots := []string{cfg.Root}
	for _, l := range cfg.Listeners {
		r := l.Root
		if r == "" {
			r = cfg.Root
		}
		roots = append(roots, r)
	}
	for i, dir := range roots {
		t, err := s.openTree(i, dir, pol.anon[i])
		if err != nil {
			return err
		}
		s.trees = append(s.trees, t)
	}
	type want struct {
		addr, banner string
		implicit     bool
		tr           *tree
	}
	var ws []want
	if !cfg.Listen.IsZero() {
		ws = append(ws, want{cfg.Listen.String(), cfg.Banner, false, s.trees[0]})
	}
	if !cfg.ImplicitTLSListen.IsZero() {
		ws = append(ws, want{cfg.ImplicitTLSListen.String(), cfg.Banner, true, s.trees[0]})
	}
	for i, l := range cfg.Listeners {
		b := l.Banner
		if b == "" {
			b = cfg.Banner
		}
		ws = append(ws, want{l.Listen.String(), b, false, s.trees[i+1]})
	}
	for _, w := range ws {
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			return fmt.Errorf("ftpd: listen %s: %w", w.addr, err)
		}
		lr := &listenerRT{addr: w.addr, banner: w.banner, implicit: w.implicit, tr: w.tr}
		lr.ln = &gateListener{Listener: ln, srv: s, ln: lr, implicit: w.implicit}
		lr.fsrv = ftpserver.NewFtpServer(&driver{srv: s, lr: lr})
		lr.fsrv.Logger = slog.New(minLevel{h: s.log.With("component", "ftpserverlib").Handler(), min: slog.LevelError})
		s.lns = append(s.lns, lr)
		if err := lr.fsrv.Listen(); err != nil {
			return fmt.Errorf("ftpd: listen %s: %w", w.addr, err)
		}
		s.log.Info("listening", "addr", ln.Addr().String(), "implicit_tls", w.implicit, "root", w.tr.dir)
	}
	return nil
}

func (s *Server) openTree(i int, dir string, a Anonymous) (*tree, error) {
	r, err := fsroot.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("ftpd: %w", err)
	}
	t := &tree{idx: i, dir: dir, root: r}
	var used int64
	if a.Incoming != "" {
		if err := r.OS().Mkdir(a.Incoming, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			r.Close()
			return nil, fmt.Errorf("ftpd: create drop box %q in %s: %w", a.Incoming, dir, err)
		}
		if n, err := r.RemoveStaleUploads(a.Incoming); err == nil && n > 0 {
			s.log.Info("removed unfinished uploads", "dir", a.Incoming, "count", n)
		}
		used, _ = r.DirSize(a.Incoming)
	}
	t.quota.Store(fsroot.NewQuota(int64(a.IncomingQuota), used))
	return t, nil
}

func (t *tree) quotaNow() *fsroot.Quota { return t.quota.Load() }

// Addr returns the first bound control address (plain/explicit, or the
// implicit TLS one when that is the only listener); nil before Listen.
func (s *Server) Addr() net.Addr {
	if len(s.lns) == 0 {
		return nil
	}
	return s.lns[0].ln.Addr()
}

// Addrs returns every bound control address, in the order: listen,
// implicit_tls_listen, then each [[ftp.listener]].
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.lns))
	for i, l := range s.lns {
		out[i] = l.ln.Addr()
	}
	return out
}

// Serve serves until ctx is done, then stops accepting, refuses new
// transfers, waits for running transfers to end and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if len(s.lns) == 0 {
		return errors.New("ftpd: Serve called before Listen")
	}
	errc := make(chan error, len(s.lns))
	var wg sync.WaitGroup
	for _, l := range s.lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.fsrv.Serve(); err != nil {
				errc <- fmt.Errorf("ftpd: serve %s: %w", l.addr, err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.stopListeners()
	if err == nil {
		s.log.Info("shutting down: waiting for transfers", "active", s.activeTransfers())
		for {
			s.mu.Lock()
			n, ch := s.active, s.idle
			s.mu.Unlock()
			if n == 0 {
				break
			}
			<-ch
		}
	}
	s.closeSessions()
	wg.Wait()
	s.closeResources()
	return err
}

// Close stops the service now, cutting running transfers (uploads in
// progress are discarded).
func (s *Server) Close() error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.stopListeners()
	s.closeSessions()
	return nil
}

func (s *Server) stopListeners() {
	for _, l := range s.lns {
		l.stopOnce.Do(func() {
			if err := l.fsrv.Stop(); err != nil && !errors.Is(err, ftpserver.ErrNotListening) {
				s.log.Debug("stop listener", "addr", l.addr, "err", err)
			}
		})
	}
}

func (s *Server) closeSessions() {
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		all = append(all, se)
	}
	s.mu.Unlock()
	for _, se := range all {
		se.close()
	}
}

func (s *Server) closeResources() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.xlog != nil {
		s.xlog.close()
	}
}

// Reload applies a new configuration: users, deny list, anonymous policy,
// limits, rates and timeouts take effect for new sessions and transfers
// (running transfers keep theirs). Changes that need a restart are logged.
func (s *Server) Reload(cfg Config) error {
	if l := cfg.Validate(); len(l) > 0 {
		return fmt.Errorf("ftpd: invalid configuration: %w", l.Err())
	}
	p, err := compilePolicy(cfg)
	if err != nil {
		return err
	}
	old := s.pol.Load().cfg
	var restart []string
	chk := func(key string, changed bool) {
		if changed {
			restart = append(restart, key)
		}
	}
	chk("listen", old.Listen != cfg.Listen)
	chk("implicit_tls_listen", old.ImplicitTLSListen != cfg.ImplicitTLSListen)
	chk("root", old.Root != cfg.Root)
	chk("passive_ports", old.PassivePorts != cfg.PassivePorts)
	chk("public_address", old.PublicAddress != cfg.PublicAddress)
	chk("tls_cert", old.TLSCert != cfg.TLSCert || old.TLSKey != cfg.TLSKey)
	chk("xferlog", old.Xferlog != cfg.Xferlog)
	chk("idle_timeout", old.IdleTimeout != cfg.IdleTimeout)
	chk("banner", old.Banner != cfg.Banner)
	chk("listener", len(old.Listeners) != len(cfg.Listeners))
	for i := range s.trees {
		if i < len(p.anon) && i < len(s.pol.Load().anon) {
			o, n := s.pol.Load().anon[i], p.anon[i]
			if o.Incoming != n.Incoming {
				restart = append(restart, "anonymous.incoming")
			}
			if o.IncomingQuota != n.IncomingQuota {
				s.trees[i].quota.Store(fsroot.NewQuota(int64(n.IncomingQuota), s.trees[i].quotaNow().Used()))
			}
		}
	}
	if len(p.anon) > len(s.trees) {
		p.anon = p.anon[:len(s.trees)]
	}
	s.pol.Store(p)
	if len(restart) > 0 {
		s.log.Warn("reloaded; some changes need a restart", "keys", strings.Join(restart, ","))
	} else {
		s.log.Info("reloaded")
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := int64(len(s.sessions))
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		Sessions: n, Connections: c.conns.Load(), Refused: c.refused.Load(),
		LoginsOK: c.loginsOK.Load(), LoginsFailed: c.loginsFailed.Load(), Bans: c.bans.Load(),
		Bounces: c.bounces.Load(), CommandsRefused: c.cmdRefused.Load(),
		Downloads: c.downloads.Load(), Uploads: c.uploads.Load(),
		BytesOut: c.bytesOut.Load(), BytesIn: c.bytesIn.Load(),
		ActiveTransfers: s.activeTransfers(),
	}
}

func (s *Server) activeTransfers() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.active)
}

func (s *Server) transferStarted() {
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
}

func (s *Server) transferEnded() {
	s.mu.Lock()
	s.active--
	if s.active == 0 {
		close(s.idle)
		s.idle = make(chan struct{})
	}
	s.mu.Unlock()
}

// admit decides whether a new control connection from ip is served and
// counts it; msg is the 421 text otherwise.
func (s *Server) admit(ip netip.Addr) (msg string, ok bool) {
	cfg := s.pol.Load().cfg
	if d, banned := s.fails.banned(ip, time.Now()); banned {
		s.stats.refused.Add(1)
		s.log.Info("connection refused", "client", ip.String(), "reason", "banned", "remaining", d.Round(time.Second).String())
		return "Too many failed logins from your address; try again later.", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		msg = "Service shutting down."
	case cfg.MaxClients > 0 && len(s.sessions) >= cfg.MaxClients:
		msg = "Too many users; try again later."
	case cfg.MaxPerIP > 0 && s.perIP[ip] >= cfg.MaxPerIP:
		msg = "Too many connections from your address."
	}
	if msg != "" {
		s.stats.refused.Add(1)
		s.log.Info("connection refused", "client", ip.String(), "reason", msg)
		return msg, false
	}
	s.perIP[ip]++
	return "", true
}

// release forgets a session when its control connection closes.
func (s *Server) release(se *session) {
	s.mu.Lock()
	if _, ok := s.sessions[se]; ok {
		delete(s.sessions, se)
		delete(s.byAddr, se.key)
		if s.perIP[se.remote]--; s.perIP[se.remote] <= 0 {
			delete(s.perIP, se.remote)
		}
	}
	s.mu.Unlock()
	se.stop()
}

// minLevel drops records below min (ftpserverlib logs a line per unknown
// command at Warn: an attacker could flood the log through it).
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler            { return minLevel{m.h.WithAttrs(a), m.min} }
func (m minLevel) WithGroup(n string) slog.Handler                 { return minLevel{m.h.WithGroup(n), m.min} }

var _ io.Closer = (*xferLog)(nil)
