package ftpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"golang.org/x/crypto/bcrypt"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// session is one control connection.
type session struct {
	srv    *Server
	tr     *tree
	conn   *ctlConn
	id     uint64
	key    string
	remote netip.Addr
	local  netip.Addr
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	tls    atomic.Bool
	authed atomic.Bool

	mu         sync.Mutex
	acct       *account
	user       string
	email      string // anonymous password, logged and written to xferlog, never used for access
	rate       int64
	lastRender *rendered
	timers     []*time.Timer
	stopOnce   sync.Once
	ccv        ftpserver.ClientContext
}

type rendered struct {
	name string
	data []byte
	at   time.Time
}

func (s *Server) newSession(tr *tree, raw net.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	se := &session{
		srv: s, tr: tr, id: s.ids.Add(1), key: raw.RemoteAddr().String(),
		remote: addrOf(raw.RemoteAddr()), local: addrOf(raw.LocalAddr()),
		start: time.Now(), ctx: ctx, cancel: cancel,
	}
	se.log = s.log.With("session", se.id, "client", se.remote.String())
	s.stats.conns.Add(1)
	s.mu.Lock()
	s.sessions[se] = struct{}{}
	s.byAddr[se.key] = se
	s.mu.Unlock()
	cfg := s.pol.Load().cfg
	if d := cfg.LoginTimeout.D(); d > 0 {
		se.timers = append(se.timers, time.AfterFunc(d, func() {
			if !se.authed.Load() {
				se.log.Info("login timeout", "after", d.String())
				se.close()
			}
		}))
	}
	if d := cfg.SessionTimeout.D(); d > 0 {
		se.timers = append(se.timers, time.AfterFunc(d, func() {
			se.log.Info("session timeout", "after", d.String())
			se.close()
		}))
	}
	return se
}

func (se *session) pol() *policy { return se.srv.pol.Load() }

func (se *session) root() *fsroot.Root { return se.tr.root }

func (se *session) anon() Anonymous {
	p := se.pol()
	if se.tr.idx < len(p.anon) {
		return p.anon[se.tr.idx]
	}
	return Anonymous{}
}

// incoming is the drop box directory, "" when anonymous uploads are off.
func (se *session) incoming() string { return se.anon().Incoming }

func (se *session) maxRate() int64 {
	if se.acct != nil && se.acct.anonymous {
		return int64(se.anon().MaxRate)
	}
	return se.rate
}

// dataAllowed refuses new transfers while the server drains.
func (se *session) dataAllowed() error {
	se.srv.mu.Lock()
	d := se.srv.draining
	se.srv.mu.Unlock()
	if d {
		return errors.New("service shutting down")
	}
	return nil
}

func (se *session) close() {
	if se.conn != nil {
		se.conn.Close()
	}
	se.stop()
}

func (se *session) stop() {
	se.stopOnce.Do(func() {
		for _, t := range se.timers {
			t.Stop()
		}
		se.cancel()
	})
}

func (se *session) lastCmd() string {
	if se.conn == nil {
		return ""
	}
	if cc := se.cc(); cc != nil {
		return cc.GetLastCommand()
	}
	return ""
}

var ccMu sync.Mutex

func (se *session) cc() ftpserver.ClientContext {
	ccMu.Lock()
	defer ccMu.Unlock()
	return se.ccv
}

// refused logs a command refused by the policy.
func (se *session) refused(o op, name, reason string) {
	se.srv.stats.cmdRefused.Add(1)
	se.log.Info("command refused", "user", se.user, "cmd", se.lastCmd(), "op", o.String(), "path", name, "reason", reason)
}

// refusedCmd logs a command refused by the control filter.
func (se *session) refusedCmd(cmd, reason string) {
	se.srv.stats.cmdRefused.Add(1)
	se.log.Info("command refused", "user", se.user, "cmd", cmd, "reason", reason)
}

func (se *session) event(msg string, args ...any) {
	se.log.Info(msg, append([]any{"user", se.user}, args...)...)
}

func (se *session) transferDone(kind, rel string, n int64, start time.Time, ok bool, cause error) {
	se.srv.transferEnded()
	d := time.Since(start)
	args := []any{"user", se.user, "path", "/" + rel, "bytes", n, "duration", d.Round(time.Millisecond).String(), "ok", ok}
	if d > 0 {
		args = append(args, "bytes_per_sec", int64(float64(n)/d.Seconds()))
	}
	if cause != nil {
		args = append(args, "err", cause.Error())
	}
	se.log.Info(kind, args...)
}

func (se *session) xfer(rel string, n int64, d time.Duration, dir byte, ok bool) {
	if se.srv.xlog == nil || se.acct == nil {
		return
	}
	se.srv.xlog.write(xferRecord{
		when: time.Now(), dur: d, host: se.remote.String(), size: n, name: "/" + rel,
		dir: dir, anonymous: se.acct.anonymous, user: se.xferUser(), complete: ok,
	})
}

// xferUser is the xferlog user field: the account name, or for anonymous
// sessions the e-mail string given as password (the format's convention).
func (se *session) xferUser() string {
	if se.acct != nil && se.acct.anonymous {
		return se.email
	}
	return se.user
}

// driver is the ftpserverlib MainDriver of one listener.
type driver struct {
	srv *Server
	lr  *listenerRT
}

var (
	_ ftpserver.MainDriver                      = (*driver)(nil)
	_ ftpserver.MainDriverExtensionUserVerifier = (*driver)(nil)
)

// GetSettings implements ftpserver.MainDriver.
func (d *driver) GetSettings() (*ftpserver.Settings, error) {
	cfg := d.srv.cfg
	idle := int((cfg.IdleTimeout.D() + time.Second - 1) / time.Second)
	if idle <= 0 {
		idle = 1 << 30 // "0" means no idle timeout; the library's 0 means 900 s
	}
	connTO := int((cfg.DataTimeout.D() + time.Second - 1) / time.Second)
	if connTO <= 0 || connTO > 30 {
		connTO = 30
	}
	st := &ftpserver.Settings{
		Listener:                        d.lr.ln,
		Banner:                          d.lr.banner,
		PassiveTransferPortRange:        ftpserver.PortRange{Start: int(cfg.PassivePorts.First), End: int(cfg.PassivePorts.Last)},
		PassiveTransferPortMultiplexing: true,
		PublicIPResolver:                d.publicIP,
		IdleTimeout:                     idle,
		ConnectionTimeout:               connTO,
		ActiveTransferPortNon20:         true,
		DisableMFMT:                     true,
		DisableSite:                     true,
		DisableActiveMode:               !cfg.Active,
		EnableHASH:                      false,
		DefaultTransferType:             ftpserver.TransferTypeBinary,
		DisableASCIIConversion:          true,
		ActiveConnectionsCheck:          ftpserver.IPMatchRequired,
		PasvConnectionsCheck:            ftpserver.IPMatchRequired,
		TLSRequired:                     ftpserver.ClearOrEncrypted,
	}
	if d.lr.implicit {
		// The ctlConn runs TLS on the control connection; this tells the
		// library that data connections are TLS too.
		st.TLSRequired = ftpserver.ImplicitEncryption
	}
	return st, nil
}

func (d *driver) publicIP(cc ftpserver.ClientContext) (string, error) {
	if a := d.srv.pol.Load().cfg.PublicAddress; a.IsValid() && a.Is4() {
		return a.String(), nil
	}
	ip := addrOf(cc.LocalAddr())
	if !ip.Is4() {
		return "", fmt.Errorf("PASV needs IPv4 (use EPSV)")
	}
	return ip.String(), nil
}

func (d *driver) session(cc ftpserver.ClientContext) *session {
	if se, ok := cc.Extra().(*session); ok {
		return se
	}
	return nil
}

// ClientConnected implements ftpserver.MainDriver.
func (d *driver) ClientConnected(cc ftpserver.ClientContext) (string, error) {
	d.srv.mu.Lock()
	se := d.srv.byAddr[cc.RemoteAddr().String()]
	d.srv.mu.Unlock()
	if se == nil {
		return "Internal error.", errors.New("unknown connection")
	}
	ccMu.Lock()
	se.ccv = cc
	ccMu.Unlock()
	cc.SetExtra(se)
	se.log.Debug("connected", "local", se.local.String(), "tls", se.tls.Load())
	return d.lr.banner, nil
}

// ClientDisconnected implements ftpserver.MainDriver.
func (d *driver) ClientDisconnected(cc ftpserver.ClientContext) {
	se := d.session(cc)
	if se == nil {
		return
	}
	if se.authed.Load() {
		se.log.Info("logout", "user", se.user, "duration", time.Since(se.start).Round(time.Millisecond).String())
	} else {
		se.log.Debug("disconnected before login", "duration", time.Since(se.start).Round(time.Millisecond).String())
	}
	se.stop()
}

func isAnonymousName(u string) bool {
	return strings.EqualFold(u, "anonymous") || strings.EqualFold(u, "ftp")
}

// PreAuthUser implements ftpserver.MainDriverExtensionUserVerifier: runs on
// USER, before any password is sent.
func (d *driver) PreAuthUser(cc ftpserver.ClientContext, user string) error {
	se := d.session(cc)
	if se == nil {
		return errors.New("login refused")
	}
	p := se.pol()
	user = strings.TrimSpace(user)
	switch {
	case p.deny[user] || strings.EqualFold(user, "root"):
		se.loginFailed(user, "denied user")
		return errors.New("login refused")
	case isAnonymousName(user):
		if !se.anon().Enabled {
			se.log.Info("login refused", "user", user, "reason", "anonymous access is off")
			return errors.New("anonymous access is off")
		}
	case !se.tls.Load() && (p.cfg.RequireTLS || !p.cfg.AllowPlaintextLogin):
		se.srv.stats.loginsFailed.Add(1)
		se.log.Info("login refused", "user", user, "reason", "plaintext login")
		return errors.New("TLS required: use AUTH TLS (FTPS) before USER")
	}
	return nil
}

// dummyHash keeps the time of a login for an unknown user close to that of
// a known one: it is compared against like a real hash.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("bootyard-no-such-user"), bcrypt.DefaultCost)
	return h
})

// AuthUser implements ftpserver.MainDriver.
func (d *driver) AuthUser(cc ftpserver.ClientContext, user, pass string) (ftpserver.ClientDriver, error) {
	se := d.session(cc)
	if se == nil {
		return nil, errors.New("login incorrect")
	}
	user = strings.TrimSpace(user)
	p := se.pol()
	if isAnonymousName(user) {
		a := se.anon()
		if !a.Enabled {
			return nil, errors.New("login incorrect")
		}
		email := sanitize(pass, 64)
		se.mu.Lock()
		se.acct = &account{name: "anonymous", anonymous: true, home: "."}
		se.user = "anonymous" // logs name the account; the e-mail string is client-chosen
		se.email = email
		se.mu.Unlock()
		se.loggedIn("anonymous", "email", email)
		return &sessionFS{s: se}, nil
	}
	u := p.users[user]
	var hash []byte
	if u != nil {
		hash = u.hash
	} else {
		hash = dummyHash()
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	if u == nil || err != nil {
		se.loginFailed(user, "bad password or unknown user")
		return nil, errors.New("login incorrect")
	}
	acct := u.acct
	se.mu.Lock()
	se.acct = &acct
	se.user = user
	se.rate = u.maxRate
	se.mu.Unlock()
	if p.cfg.RequireTLS {
		if err := cc.SetTLSRequirement(ftpserver.MandatoryEncryption); err != nil {
			return nil, errors.New("login incorrect")
		}
	}
	se.srv.fails.ok(se.remote)
	se.loggedIn(user)
	return &sessionFS{s: se}, nil
}

func (se *session) loggedIn(user string, args ...any) {
	se.authed.Store(true)
	se.srv.stats.loginsOK.Add(1)
	se.log.Info("login", append([]any{"user", user, "tls", se.tls.Load()}, args...)...)
}

// loginFailed counts a failure for the client address, sleeps the growing
// delay and bans the address when it has failed too often.
func (se *session) loginFailed(user, reason string) {
	se.srv.stats.loginsFailed.Add(1)
	cfg := se.pol().cfg
	delay, banned := se.srv.fails.fail(se.remote, time.Now(), cfg.MaxLoginFailures, cfg.BanTime.D(), cfg.LoginFailureDelay.D())
	se.log.Info("login failed", "user", sanitize(user, 64), "reason", reason, "delay", delay.String())
	if banned {
		se.srv.stats.bans.Add(1)
		se.log.Warn("address banned after failed logins", "for", cfg.BanTime.D().String())
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-se.ctx.Done():
			t.Stop()
		}
	}
}

// GetTLSConfig implements ftpserver.MainDriver (data connections).
func (d *driver) GetTLSConfig() (*tls.Config, error) {
	if d.srv.tlsCfg == nil {
		return nil, errors.New("TLS is not configured")
	}
	return d.srv.tlsCfg, nil
}

// sanitize makes a client string safe for logs: printable ASCII only, no
// spaces, at most n bytes.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= n {
			break
		}
		if r > ' ' && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// failTable tracks failed logins per client address.
type failTable struct {
	mu sync.Mutex
	m  map[netip.Addr]*failState
}

type failState struct {
	n      int
	last   time.Time
	banned time.Time // banned until
}

func (t *failTable) banned(ip netip.Addr, now time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[ip]
	if f == nil || !now.Before(f.banned) {
		return 0, false
	}
	return f.banned.Sub(now), true
}

// fail records a failure: the delay grows from base, doubling per failure
// (capped at 16 × base); at max failures within banFor the address is banned
// for banFor.
func (t *failTable) fail(ip netip.Addr, now time.Time, max int, banFor, base time.Duration) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) > 65536 { // bound memory under a spray of addresses
		for k, v := range t.m {
			if now.Sub(v.last) > banFor && !now.Before(v.banned) {
				delete(t.m, k)
			}
		}
	}
	f := t.m[ip]
	if f == nil || (now.Sub(f.last) > banFor && !now.Before(f.banned)) {
		f = &failState{}
		t.m[ip] = f
	}
	f.n++
	f.last = now
	delay := base << min(f.n-1, 4)
	if max > 0 && f.n >= max {
		f.banned = now.Add(banFor)
		f.n = 0
		return delay, true
	}
	return delay, false
}

func (t *failTable) ok(ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[ip]; f != nil && !time.Now().Before(f.banned) {
		delete(t.m, ip)
	}
}
