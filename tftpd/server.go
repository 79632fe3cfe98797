package tftpd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/internal/fsroot"
	"github.com/bootyard/bootyard/internal/limit"
)

// RenderRequest is what a Renderer is asked to produce.
type RenderRequest struct {
	// Name is the requested name after normalisation and remapping,
	// relative to the TFTP root ("ipxe/52-54-00-12-34-56.ipxe").
	Name string
	// Client is the address the request came from.
	Client netip.Addr
	// Server is the local address the request arrived on when it is
	// knowable, else the zero Addr.
	Server netip.Addr
}

// Renderer produces generated, per-client files (iPXE scripts, GRUB and
// pxelinux configurations). It is consulted before the file system.
// Implementations must be safe for concurrent use and should return quickly;
// ctx carries a deadline.
type Renderer interface {
	// Render returns the content for req.Name. ok=false means the name is
	// not a generated one and the file system should be tried; an error
	// fails the request (the client sees a generic error).
	Render(ctx context.Context, req RenderRequest) (data []byte, ok bool, err error)
}

// RendererFunc adapts a function to a Renderer.
type RendererFunc func(ctx context.Context, req RenderRequest) ([]byte, bool, error)

// Render calls f.
func (f RendererFunc) Render(ctx context.Context, req RenderRequest) ([]byte, bool, error) {
	return f(ctx, req)
}

// Deps are the server's collaborators.
type Deps struct {
	// Logger receives the service's log lines (nil: discard). The server
	// adds svc=tftp.
	Logger *slog.Logger
	// Renderer, when set, produces generated files before the file system
	// is tried.
	Renderer Renderer
	// Images, when set, is the read-only store of published images, served
	// under the name prefix "images/": a request for images/<name>/<path>
	// opens <name>/<path> in it instead of the TFTP root.
	Images fs.FS
}

// ErrNotListening is returned by Serve when Listen was not called first.
var ErrNotListening = errors.New("tftpd: Serve called before Listen")

// settings is the part of the configuration that can change on reload,
// compiled. It is swapped as a whole.
type settings struct {
	cfg   Config
	rules []rule
}

// allowed reports whether client may talk to the server.
func (st *settings) allowed(client netip.Addr) bool {
	if len(st.cfg.Allow) == 0 {
		return true
	}
	for _, p := range st.cfg.Allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// Server is a TFTP server. Create it with New, then call Listen and Serve.
type Server struct {
	log      *slog.Logger
	rlog     *limit.Logger
	renderer Renderer
	images   fs.FS

	boot Config // the configuration Listen used (listen, root, single_port, uploads.dir)
	cur  atomic.Pointer[settings]

	rate *limit.Rate[netip.Addr]
	conc *limit.Conc[netip.Addr]

	mu      sync.Mutex
	root    *fsroot.Root
	quota   *fsroot.Quota
	uploads bool // the upload directory is prepared
	conn    *net.UDPConn
	gate    *gate
	pin     *tftp.Server
	local   netip.Addr // the listen address when it is not a wildcard
	spBlock int        // single-port mode: pin/tftp's blksize cap (0 otherwise)

	ctx     context.Context // ends on Close; parents Renderer calls
	cancel  context.CancelFunc
	closing atomic.Bool

	pendMu  sync.Mutex
	pending map[string]pendingReq

	c counters
}

// pendingReq is what the packet gate learned about a request, handed to the
// transfer handler through the client's address and port.
type pendingReq struct {
	server  netip.Addr
	blksize int
	at      time.Time
}

// New validates cfg and builds a server. It opens no sockets and no files.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate().Err(); err != nil {
		return nil, fmt.Errorf("tftpd: invalid configuration: %w", err)
	}
	st, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	lg := deps.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	lg = lg.With("svc", "tftp")
	s := &Server{
		log:      lg,
		rlog:     limit.NewLogger(lg, 10*time.Second, 5),
		renderer: deps.Renderer,
		images:   deps.Images,
		boot:     cfg,
		rate:     limit.NewRate[netip.Addr](float64(cfg.RatePerClient), cfg.RatePerClient, time.Minute, 0),
		conc:     limit.NewConc[netip.Addr](cfg.MaxTransfers, cfg.MaxPerClient),
		pending:  make(map[string]pendingReq),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cur.Store(st)
	s.pin = tftp.NewServer(s.readHandler, s.writeHandler)
	s.applyPin(cfg)
	return s, nil
}

// compile builds the reloadable settings.
func compile(cfg Config) (*settings, error) {
	rules, err := compileRemap(cfg.Remap)
	if err != nil {
		return nil, err
	}
	return &settings{cfg: cfg, rules: rules}, nil
}

// applyPin hands the protocol settings to pin/tftp. They apply to transfers
// started afterwards.
func (s *Server) applyPin(cfg Config) {
	s.pin.SetTimeout(cfg.Timeout.D())
	s.pin.SetRetries(cfg.Retries)
	s.pin.SetBackoff(s.backoff)
	// The gate rewrites blksize to the cap for the interface the request
	// came in on, so pin/tftp's own MTU clamp (4 bytes too generous) is off.
	s.pin.SetBlockSizeNegotiation(false)
	if !s.boot.SinglePort {
		s.pin.SetAnticipate(uint(cfg.Anticipate))
	}
}

// backoff is the pause before a retransmission, on top of the timeout the
// sender already waited: 0, 1, 3, 7... times the timeout, so the gaps between
// sends double (1, 2, 4, 8 x timeout), capped at 32 x timeout.
func (s *Server) backoff(attempt int) time.Duration {
	cfg := s.cur.Load().cfg
	if cfg.Backoff == "constant" {
		return 0
	}
	if attempt > 5 {
		attempt = 5
	}
	return cfg.Timeout.D() * time.Duration((1<<attempt)-1)
}

// Listen opens the TFTP root (and prepares the upload directory when uploads
// are on) and binds the UDP socket. Call it before dropping privileges.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return errors.New("tftpd: Listen called twice")
	}
	root, err := fsroot.Open(s.boot.Root)
	if err != nil {
		return fmt.Errorf("tftpd: %w", err)
	}
	s.root = root
	if s.boot.Uploads.Enabled {
		if err := s.prepareUploads(s.boot.Uploads); err != nil {
			root.Close()
			return err
		}
	}
	ua, err := net.ResolveUDPAddr("udp", s.boot.Listen.String())
	if err != nil {
		root.Close()
		return fmt.Errorf("tftpd: listen %s: %w", s.boot.Listen, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		root.Close()
		return fmt.Errorf("tftpd: listen %s: %w", s.boot.Listen, err)
	}
	s.conn = conn
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && !ap.Addr().IsUnspecified() {
		s.local = ap.Addr().Unmap()
	}
	s.gate = newGate(s, conn)
	if s.boot.SinglePort {
		s.pin.EnableSinglePort()
		s.spBlock = s.singlePortBlock()
		s.pin.SetBlockSize(s.spBlock)
	}
	s.log.Info("listening", "addr", conn.LocalAddr().String(), "root", s.boot.Root, "single_port", s.boot.SinglePort, "uploads", s.uploads)
	return nil
}

// singlePortBlock is the blksize cap in single-port mode: max_block_size
// when set, else the largest block an up interface other than loopback
// carries (1468 on Ethernet, more with jumbo frames). pin/tftp allocates a
// read buffer of the cap plus 4 bytes for every packet it reads in
// single-port mode, ACKs included: loopback's 64 KiB MTU made that 64 KiB
// per ACK (2.2 GB allocated for a 16 MiB file at blksize 512), and single-
// port throughput fell 2-5x (BenchmarkSinglePort16MiB). Loopback clients
// get the cap too (pin/tftp's OACK says so). The cap is fixed at Listen.
// Callers hold s.mu.
func (s *Server) singlePortBlock() int {
	if s.boot.MaxBlockSize > 0 {
		return s.boot.MaxBlockSize
	}
	lan := 1468
	ifs, _ := net.Interfaces()
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 {
			lan = max(lan, clampBlock(mtuBlock(ifi.MTU, true)))
		}
	}
	return lan
}

// prepareUploads creates the upload directory inside the root when missing,
// removes uploads a crash left behind and counts what is stored. Callers
// hold s.mu.
func (s *Server) prepareUploads(u Uploads) error {
	dir := strings.Trim(path.Clean("/"+u.Dir), "/")
	if err := s.root.OS().Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("tftpd: create upload directory %q: %w", dir, err)
	}
	fi, err := s.root.OS().Lstat(dir)
	if err != nil {
		return fmt.Errorf("tftpd: upload directory %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("tftpd: upload directory %q is not a directory", dir)
	}
	if n, err := s.root.RemoveStaleUploads(dir); err != nil {
		return fmt.Errorf("tftpd: clean upload directory %q: %w", dir, err)
	} else if n > 0 {
		s.log.Warn("removed unfinished uploads", "dir", dir, "count", n)
	}
	used, err := s.root.DirSize(dir)
	if err != nil {
		return fmt.Errorf("tftpd: size upload directory %q: %w", dir, err)
	}
	s.quota = fsroot.NewQuota(int64(u.MaxTotal), used)
	s.uploads = true
	return nil
}

// Addr returns the bound address (after Listen), or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// Serve serves until ctx is done, then stops accepting requests, waits for
// running transfers to end and returns nil. It returns an error when the
// socket fails. Listen must have been called.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	g := s.gate
	s.mu.Unlock()
	if g == nil {
		return ErrNotListening
	}
	errc := make(chan error, 1)
	go func() { errc <- s.pin.Serve(g) }()
	select {
	case <-ctx.Done():
		s.log.Info("draining", "active", s.conc.Active())
		s.pin.Shutdown() // closes the gate; in multi-port mode waits for transfers
		<-errc           // in single-port mode pin/tftp returns after the drain
		s.log.Info("stopped")
		return nil
	case err := <-errc:
		if s.closing.Load() || err == nil {
			return nil
		}
		return fmt.Errorf("tftpd: serve: %w", err)
	}
}

// Close stops the server now: the socket is closed and running transfers
// fail at their next block (a transfer waiting for an ACK ends when its
// retransmission timer runs out). It does not wait.
func (s *Server) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	s.cancel()
	s.mu.Lock()
	g, root := s.gate, s.root
	s.mu.Unlock()
	var err error
	if g != nil {
		err = g.Close()
		go s.pin.Shutdown() // ends pin's accept loop; its wait runs in the background
	}
	_ = root // the root stays open for transfers still unwinding; the process is ending
	return err
}

// Reload applies what can change without a restart: allow list, limits,
// remap rules, block size cap, refuse_blksize, timeout, retries, backoff,
// anticipate, require_world_readable and the upload policy (caps, on/off).
// Listen address, root, single_port and uploads.dir need a restart; a
// change to them is logged and otherwise ignored. Running transfers keep
// the settings they started with.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.Validate().Err(); err != nil {
		return fmt.Errorf("tftpd: reload: %w", err)
	}
	st, err := compile(cfg)
	if err != nil {
		return fmt.Errorf("tftpd: reload: %w", err)
	}
	var restart []string
	if cfg.Listen != s.boot.Listen {
		restart = append(restart, "listen")
	}
	if cfg.Root != s.boot.Root {
		restart = append(restart, "root")
	}
	if cfg.SinglePort != s.boot.SinglePort {
		restart = append(restart, "single_port")
	}
	if cfg.Enabled != s.boot.Enabled {
		restart = append(restart, "enabled")
	}
	old := s.cur.Load().cfg
	s.mu.Lock()
	if cfg.Uploads.Dir != s.boot.Uploads.Dir && (s.uploads || cfg.Uploads.Enabled) {
		restart = append(restart, "uploads.dir")
		st.cfg.Uploads.Dir = s.boot.Uploads.Dir
	}
	if cfg.Uploads.Enabled && s.root != nil && (!s.uploads || cfg.Uploads.MaxTotal != old.Uploads.MaxTotal) {
		if err := s.prepareUploads(st.cfg.Uploads); err != nil {
			s.log.Warn("reload: uploads stay off", "err", err)
			st.cfg.Uploads.Enabled = false
		}
	}
	s.mu.Unlock()
	if s.boot.SinglePort {
		st.cfg.Anticipate = 0
	}
	s.cur.Store(st)
	s.rate.SetLimit(float64(cfg.RatePerClient), cfg.RatePerClient)
	s.conc.SetLimits(cfg.MaxTransfers, cfg.MaxPerClient)
	s.applyPin(st.cfg)
	if len(restart) > 0 {
		s.log.Warn("reload: changes need a restart", "keys", strings.Join(restart, ","))
	}
	s.log.Info("reloaded", "allow", len(cfg.Allow), "remap", len(cfg.Remap), "uploads", st.cfg.Uploads.Enabled)
	return nil
}

// takePending returns and forgets what the gate recorded for a client
// address and port.
func (s *Server) takePending(key string) pendingReq {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	p := s.pending[key]
	delete(s.pending, key)
	return p
}

// putPending records a request for its transfer handler. Entries nobody
// claimed (pin/tftp failed before calling the handler) are swept.
func (s *Server) putPending(key string, p pendingReq) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if len(s.pending) >= 4096 {
		for k, v := range s.pending {
			if p.at.Sub(v.at) > 10*time.Second {
				delete(s.pending, k)
			}
		}
		if len(s.pending) >= 4096 {
			clear(s.pending)
		}
	}
	s.pending[key] = p
}

// root returns the opened root (nil before Listen).
func (s *Server) fsRoot() *fsroot.Root {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.root
}

// uploadState returns the quota and whether the upload directory is ready.
func (s *Server) uploadState() (*fsroot.Quota, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quota, s.uploads
}
