package tftpd

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/bootyard/bootyard/internal/limit"
)

// gate is the net.PacketConn pin/tftp serves on. It reads the real socket
// (with the packet's destination address and interface), and passes on only
// requests that survive the checks pin/tftp cannot make: the allow list, the
// per-client rate limit, well-formedness, the transfer mode, the name policy,
// the upload policy and the concurrency caps. Refusals that deserve an answer
// get one here, with the right TFTP error code (pin/tftp can only send code
// 1); floods and strangers get silence. Options are rewritten on the way:
// names lowercased, blksize clamped to the interface's MTU, unknown options
// dropped.
//
// ReadFrom is called by one goroutine only (pin/tftp's accept loop).
type gate struct {
	s    *Server
	conn *net.UDPConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
	buf  []byte
	mtus map[int]mtuEntry

	closeOnce sync.Once
	closed    chan struct{}

	// In single-port mode every reply goes out through WriteTo. locals
	// remembers, per client address and port, the local address its
	// packets arrived on, so replies leave from that address (as the
	// client expects) rather than from the kernel's preferred source of a
	// wildcard socket.
	localsMu sync.Mutex
	locals   map[netip.AddrPort]localEntry
}

type localEntry struct {
	addr netip.Addr
	at   time.Time
}

// localsMax bounds the remembered client addresses; past it, entries idle
// for localsIdle are swept.
const (
	localsMax  = 4096
	localsIdle = 2 * time.Minute
)

// remember records that packets from src arrive on local address dst.
func (g *gate) remember(src *net.UDPAddr, dst netip.Addr) {
	if !dst.IsValid() {
		return
	}
	key := clientKey(src)
	now := time.Now()
	g.localsMu.Lock()
	defer g.localsMu.Unlock()
	if g.locals == nil {
		g.locals = map[netip.AddrPort]localEntry{}
	}
	if e, ok := g.locals[key]; ok && e.addr == dst && now.Sub(e.at) < time.Second {
		return // refreshed recently: keep the per-packet cost to a lookup
	}
	if len(g.locals) >= localsMax {
		for k, e := range g.locals {
			if now.Sub(e.at) > localsIdle {
				delete(g.locals, k)
			}
		}
	}
	g.locals[key] = localEntry{addr: dst, at: now}
}

// localFor returns the local address packets from to arrived on, if known.
func (g *gate) localFor(to *net.UDPAddr) netip.Addr {
	g.localsMu.Lock()
	defer g.localsMu.Unlock()
	return g.locals[clientKey(to)].addr
}

// clientKey is a client's address and port with IPv4-mapped addresses
// unmapped, so the same client has one key whatever form the socket gave.
func clientKey(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

type mtuEntry struct {
	mtu int
	at  time.Time
}

func newGate(s *Server, conn *net.UDPConn) *gate {
	g := &gate{s: s, conn: conn, buf: make([]byte, 65536), mtus: map[int]mtuEntry{}, closed: make(chan struct{})}
	la, _ := conn.LocalAddr().(*net.UDPAddr)
	if la != nil && la.IP.To4() != nil {
		p := ipv4.NewPacketConn(conn)
		if p.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil {
			g.p4 = p
		}
	} else {
		p := ipv6.NewPacketConn(conn)
		if p.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil {
			g.p6 = p
		}
	}
	return g
}

// read reads one datagram with its destination address and interface.
func (g *gate) read() (n int, src *net.UDPAddr, dst netip.Addr, ifIndex int, err error) {
	var a net.Addr
	switch {
	case g.p4 != nil:
		var cm *ipv4.ControlMessage
		n, cm, a, err = g.p4.ReadFrom(g.buf)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
			ifIndex = cm.IfIndex
		}
	case g.p6 != nil:
		var cm *ipv6.ControlMessage
		n, cm, a, err = g.p6.ReadFrom(g.buf)
		if cm != nil {
			dst, _ = netip.AddrFromSlice(cm.Dst)
			ifIndex = cm.IfIndex
		}
	default:
		n, a, err = g.conn.ReadFrom(g.buf)
	}
	if err != nil {
		return 0, nil, netip.Addr{}, 0, err
	}
	src, _ = a.(*net.UDPAddr)
	if src == nil {
		return 0, nil, netip.Addr{}, 0, errors.New("tftpd: read: not a UDP address")
	}
	return n, src, dst.Unmap(), ifIndex, nil
}

// ReadFrom returns the next request that passed the checks.
func (g *gate) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, src, dst, ifIndex, err := g.read()
		if err != nil {
			select {
			case <-g.closed:
				// pin/tftp's loops retry reads until they see their own
				// cancellation (single-port mode: until transfers end);
				// keep that from spinning.
				time.Sleep(20 * time.Millisecond)
				return 0, nil, net.ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, nil, err
			}
			g.s.c.readErrors.Add(1)
			g.s.rlog.Warn("read", "socket read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			return 0, nil, err
		}
		if m, ok := g.inspect(g.buf[:n], src, dst, ifIndex, p); ok {
			if g.s.boot.SinglePort {
				g.remember(src, dst)
			}
			return m, src, nil
		}
	}
}

// drop counts and logs (rate-limited) a packet dropped without an answer.
func (g *gate) drop(ctr *counter, kind, msg string, client netip.Addr, args ...any) {
	ctr.Add(1)
	g.s.rlog.Log(slog.LevelInfo, kind, msg, append([]any{"client", client.String()}, args...)...)
}

// refuse answers a request with an ERROR packet, counts and logs it
// (rate-limited).
func (g *gate) refuse(ctr *counter, src *net.UDPAddr, dst netip.Addr, code uint16, text, kind string, args ...any) {
	ctr.Add(1)
	g.s.c.refused.Add(1)
	g.reply(src, dst, errorPacket(code, text))
	client := src.AddrPort().Addr().Unmap()
	g.s.rlog.Log(slog.LevelInfo, kind, "request refused", append([]any{"client", client.String(), "code", code}, args...)...)
}

// reply sends b to dst from the address the request arrived on.
func (g *gate) reply(to *net.UDPAddr, from netip.Addr, b []byte) {
	var err error
	switch {
	case g.p4 != nil && from.IsValid():
		_, err = g.p4.WriteTo(b, &ipv4.ControlMessage{Src: from.AsSlice()}, to)
	case g.p6 != nil && from.IsValid() && from.Is6():
		_, err = g.p6.WriteTo(b, &ipv6.ControlMessage{Src: from.AsSlice()}, to)
	case g.p6 != nil && from.IsValid():
		// A dual-stack socket (wildcard listen) takes an IPv4 source as
		// its v4-mapped form in IPV6_PKTINFO, and Linux applies it to the
		// IPv4 packet; x/net/ipv6 will not marshal a v4-mapped source, so
		// build the control message with x/sys.
		oob := unix.PktInfo6(&unix.Inet6Pktinfo{Addr: netip.AddrFrom16(from.As16()).As16()})
		_, _, err = g.conn.WriteMsgUDP(b, oob, to)
	default:
		_, err = g.conn.WriteToUDP(b, to)
	}
	if err != nil {
		_, _ = g.conn.WriteToUDP(b, to)
	}
}

// inspect decides about one datagram. When it passes, the (possibly
// rewritten) packet is in p and its length is returned.
func (g *gate) inspect(b []byte, src *net.UDPAddr, dst netip.Addr, ifIndex int, p []byte) (int, bool) {
	s := g.s
	c := &s.c
	st := s.cur.Load()
	client := src.AddrPort().Addr().Unmap()
	if !st.allowed(client) {
		g.drop(&c.notAllowed, "not_allowed", "packet from a client outside tftp.allow dropped", client)
		return 0, false
	}
	if len(b) < 2 {
		g.drop(&c.malformed, "malformed", "malformed packet dropped", client, "len", len(b))
		return 0, false
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		if s.boot.SinglePort && op >= opDATA && op <= opOACK && len(b) <= len(p) {
			// Transfer traffic shares the port in single-port mode.
			return copy(p, b), true
		}
		g.drop(&c.malformed, "malformed", "packet that is not a request dropped", client, "opcode", op, "len", len(b))
		return 0, false
	}
	c.requests.Add(1)
	if !s.rate.Allow(client) {
		g.drop(&c.rateLimited, "rate_limited", "request over tftp.rate_per_client dropped", client)
		return 0, false
	}
	req, err := parseRequest(b)
	if err != nil || len(b) > maxRequest {
		g.refuse(&c.malformed, src, dst, codeIllegalOp, "malformed request", "malformed", "len", len(b))
		return 0, false
	}
	if req.mode != "octet" && req.mode != "netascii" {
		g.refuse(&c.malformed, src, dst, codeIllegalOp, "unknown transfer mode", "bad_mode", "mode", strconv.Quote(req.mode))
		return 0, false
	}
	name, err := normalize(req.name, st.rules)
	if err != nil {
		g.refuse(&c.denied, src, dst, codeAccess, "access violation", "denied", "file", strconv.Quote(req.name), "reason", err.Error())
		return 0, false
	}
	if req.op == opWRQ {
		_, ready := s.uploadState()
		if !st.cfg.Uploads.Enabled || !ready {
			g.refuse(&c.denied, src, dst, codeAccess, "access violation", "upload_off", "file", strconv.Quote(req.name))
			return 0, false
		}
		if err := uploadName(name, st.cfg.Uploads.Dir); err != nil {
			g.refuse(&c.denied, src, dst, codeAccess, "access violation", "upload_denied", "file", strconv.Quote(req.name), "reason", err.Error())
			return 0, false
		}
		if _, err := s.fsRoot().OS().Lstat(name); err == nil {
			g.refuse(&c.exists, src, dst, codeFileExists, "file already exists", "upload_exists", "file", name)
			return 0, false
		} else if !errors.Is(err, fs.ErrNotExist) {
			g.refuse(&c.denied, src, dst, codeAccess, "access violation", "upload_denied", "file", name, "reason", err.Error())
			return 0, false
		}
		if v, ok := req.get("tsize"); ok && st.cfg.Uploads.MaxBytes > 0 {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > int64(st.cfg.Uploads.MaxBytes) {
				g.refuse(&c.tooLarge, src, dst, codeDiskFull, "file too large", "upload_too_large", "file", name, "tsize", n)
				return 0, false
			}
		}
	}
	if err := s.conc.Check(client); err != nil {
		kind := "busy"
		if errors.Is(err, limit.ErrPerKey) {
			kind = "busy_client"
		}
		g.refuse(&c.busy, src, dst, codeUndefined, "server busy, try again later", kind)
		return 0, false
	}
	blk := req.negotiate(g.maxBlock(st, ifIndex, client.Is4()), st.cfg.RefuseBlksize)
	m, ok := req.marshal(p)
	if !ok {
		g.refuse(&c.malformed, src, dst, codeIllegalOp, "malformed request", "malformed", "len", len(b))
		return 0, false
	}
	server := s.local
	if !server.IsValid() {
		server = dst
	}
	s.putPending(src.String(), pendingReq{server: server, blksize: blk, at: time.Now()})
	return m, true
}

// maxBlock is the largest blksize granted on interface ifIndex: the
// configured max_block_size, or else the interface MTU less the IP, UDP and
// TFTP headers (1468 on a 1500-byte IPv4 link; pin/tftp's own clamp forgets
// the 4-byte TFTP header), or 1468 when the interface is unknown.
func (g *gate) maxBlock(st *settings, ifIndex int, v4 bool) int {
	if st.cfg.MaxBlockSize > 0 {
		return st.cfg.MaxBlockSize
	}
	mtu := g.mtu(ifIndex)
	if mtu <= 0 {
		return 1468
	}
	return clampBlock(mtuBlock(mtu, v4))
}

// mtuBlock is the largest TFTP block that fits a packet of mtu bytes.
func mtuBlock(mtu int, v4 bool) int {
	if v4 {
		return mtu - 20 - 8 - 4
	}
	return mtu - 40 - 8 - 4
}

func clampBlock(n int) int {
	return min(max(n, 512), 65464)
}

// mtu returns the MTU of an interface, cached for a minute (the lookup is a
// netlink round trip).
func (g *gate) mtu(ifIndex int) int {
	if ifIndex <= 0 {
		return 0
	}
	if e, ok := g.mtus[ifIndex]; ok && time.Since(e.at) < time.Minute {
		return e.mtu
	}
	ifi, err := net.InterfaceByIndex(ifIndex)
	if err != nil {
		return 0
	}
	if len(g.mtus) > 256 {
		clear(g.mtus)
	}
	g.mtus[ifIndex] = mtuEntry{mtu: ifi.MTU, at: time.Now()}
	return ifi.MTU
}

// Close closes the socket. It is safe to call more than once.
func (g *gate) Close() error {
	var err error
	g.closeOnce.Do(func() {
		close(g.closed)
		err = g.conn.Close()
	})
	return err
}

// WriteTo sends b to addr (single-port mode sends all transfer traffic
// through the listening socket), from the local address the client's
// packets arrived on.
func (g *gate) WriteTo(b []byte, addr net.Addr) (int, error) {
	if to, ok := addr.(*net.UDPAddr); ok {
		if from := g.localFor(to); from.IsValid() {
			g.reply(to, from, b)
			return len(b), nil
		}
	}
	return g.conn.WriteTo(b, addr)
}

// LocalAddr returns the listening address.
func (g *gate) LocalAddr() net.Addr { return g.conn.LocalAddr() }

// SetDeadline sets the socket's deadlines.
func (g *gate) SetDeadline(t time.Time) error { return g.conn.SetDeadline(t) }

// SetReadDeadline sets the socket's read deadline.
func (g *gate) SetReadDeadline(t time.Time) error { return g.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the socket's write deadline.
func (g *gate) SetWriteDeadline(t time.Time) error { return g.conn.SetWriteDeadline(t) }

var _ net.PacketConn = (*gate)(nil)
