package tftpd

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// lossyRelay stands between TFTP clients and a server on loopback and drops
// packets, because this kernel has no netem qdisc. Clients send their
// requests to Addr(); the relay forwards them to the server from a socket of
// its own per client (the "back" socket, whose port the server's transfer
// pins as the client's TID). Every server source port seen on a back socket
// (one per transfer) gets its own client-facing socket, so the client sees
// one relay port per transfer, exactly as it would see the server's.
//
// Requests (RRQ, WRQ) are never dropped: their only recovery is the
// client's own timer, the same with or without send-ahead, and a lost
// request would add seconds of noise to every comparison.
type lossyRelay struct {
	front  *net.UDPConn
	server netip.AddrPort
	// drop decides about one packet; up is client→server. nil: keep all.
	drop func(up bool, pkt []byte) bool

	mu       sync.Mutex
	closed   bool
	sessions map[netip.AddrPort]*relaySession
	conns    []*net.UDPConn
	wg       sync.WaitGroup

	upSent, upDropped, downSent, downDropped atomic.Int64
}

// relaySession is one client address and port.
type relaySession struct {
	client netip.AddrPort
	back   *net.UDPConn
	ports  map[uint16]*net.UDPConn // server transfer port → client-facing socket
}

// randomLoss drops each packet with probability lossUp (client→server) or
// lossDown (server→client), from RNGs seeded with seed, so a run can be
// repeated. It is safe for concurrent use.
func randomLoss(seed uint64, lossUp, lossDown float64) func(bool, []byte) bool {
	var mu sync.Mutex
	up := rand.New(rand.NewPCG(seed, 1))
	down := rand.New(rand.NewPCG(seed, 2))
	return func(isUp bool, _ []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		if isUp {
			return up.Float64() < lossUp
		}
		return down.Float64() < lossDown
	}
}

// dropBlockOnce drops the first DATA packet carrying block (when down) or
// the first ACK of block (when !down). It is safe for concurrent use.
func dropBlockOnce(block uint16, down bool) func(bool, []byte) bool {
	var done atomic.Bool
	op := uint16(opACK)
	if down {
		op = opDATA
	}
	return func(isUp bool, pkt []byte) bool {
		if isUp == down || len(pkt) < 4 {
			return false
		}
		if binary.BigEndian.Uint16(pkt) != op || binary.BigEndian.Uint16(pkt[2:]) != block {
			return false
		}
		return done.CompareAndSwap(false, true)
	}
}

// newLossyRelay starts a relay to server; it is closed when the test ends.
func newLossyRelay(t testing.TB, server *net.UDPAddr, drop func(up bool, pkt []byte) bool) *lossyRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("relay: %v", err)
	}
	r := &lossyRelay{
		front:    front,
		server:   server.AddrPort(),
		drop:     drop,
		sessions: map[netip.AddrPort]*relaySession{},
		conns:    []*net.UDPConn{front},
	}
	r.wg.Add(1)
	go r.pump(front, func(pkt []byte, from netip.AddrPort) {
		s := r.session(from)
		if s != nil && r.keep(true, pkt) {
			_, _ = s.back.WriteToUDPAddrPort(pkt, r.server)
		}
	})
	t.Cleanup(r.Close)
	return r
}

// Addr is where clients send their requests.
func (r *lossyRelay) Addr() *net.UDPAddr { return r.front.LocalAddr().(*net.UDPAddr) }

// keep counts a packet and reports whether it is forwarded.
func (r *lossyRelay) keep(up bool, pkt []byte) bool {
	isReq := up && len(pkt) >= 2 && (binary.BigEndian.Uint16(pkt) == opRRQ || binary.BigEndian.Uint16(pkt) == opWRQ)
	lost := !isReq && r.drop != nil && r.drop(up, pkt)
	switch {
	case up && lost:
		r.upDropped.Add(1)
	case up:
		r.upSent.Add(1)
	case lost:
		r.downDropped.Add(1)
	default:
		r.downSent.Add(1)
	}
	return !lost
}

// listen opens a loopback socket the relay owns, or nil once closed.
func (r *lossyRelay) listen() *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	// Room for a window of large blocks while a goroutine is descheduled.
	_ = c.SetReadBuffer(4 << 20)
	r.conns = append(r.conns, c)
	return c
}

// session returns the session of a client, creating it (and its back
// socket) on the first packet. Callers must not hold r.mu.
func (r *lossyRelay) session(client netip.AddrPort) *relaySession {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if s := r.sessions[client]; s != nil {
		return s
	}
	back := r.listen()
	if back == nil {
		return nil
	}
	s := &relaySession{client: client, back: back, ports: map[uint16]*net.UDPConn{}}
	r.sessions[client] = s
	r.wg.Add(1)
	go r.pump(back, func(pkt []byte, from netip.AddrPort) {
		if from.Addr() != r.server.Addr() {
			return
		}
		fc := r.clientSide(s, from.Port())
		if fc != nil && r.keep(false, pkt) {
			_, _ = fc.WriteToUDPAddrPort(pkt, s.client)
		}
	})
	return s
}

// clientSide returns the client-facing socket for one server transfer port.
func (r *lossyRelay) clientSide(s *relaySession, port uint16) *net.UDPConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if c := s.ports[port]; c != nil {
		return c
	}
	c := r.listen()
	if c == nil {
		return nil
	}
	s.ports[port] = c
	to := netip.AddrPortFrom(r.server.Addr(), port)
	r.wg.Add(1)
	go r.pump(c, func(pkt []byte, from netip.AddrPort) {
		if from != s.client {
			return // not this transfer's client: a real server would refuse it
		}
		if r.keep(true, pkt) {
			_, _ = s.back.WriteToUDPAddrPort(pkt, to)
		}
	})
	return c
}

// pump reads c until it is closed and hands every datagram to fn.
func (r *lossyRelay) pump(c *net.UDPConn, fn func(pkt []byte, from netip.AddrPort)) {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(time.Millisecond)
			continue
		}
		fn(buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
	}
}

// Close stops the relay and waits for its goroutines.
func (r *lossyRelay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	conns := r.conns
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	r.wg.Wait()
}

// counts returns packets forwarded and dropped in each direction.
func (r *lossyRelay) counts() (upSent, upDropped, downSent, downDropped int64) {
	return r.upSent.Load(), r.upDropped.Load(), r.downSent.Load(), r.downDropped.Load()
}

// TestLossyRelay checks the test relay itself: a transfer through it
// without loss is intact and uses one client-facing port per transfer; with
// loss, the fraction dropped is near the one asked for, per direction, and
// lock-step TFTP still delivers the file.
func TestLossyRelay(t *testing.T) {
	root := t.TempDir()
	want := randBytes(128<<10, 5)
	writeFile(t, root, "f.bin", want)
	cfg := testConfig(root)
	cfg.Timeout = units.Duration(20 * time.Millisecond)
	ts := start(t, cfg, Deps{})

	clean := newLossyRelay(t, ts.addr, nil)
	c := dialRaw(t)
	for range 2 {
		got, first, err := c.get(clean.Addr(), "f.bin", "blksize", "1024")
		if err != nil || string(got) != string(want) {
			t.Fatalf("through clean relay: %v, %d bytes (first reply %s)", err, len(got), describe(first))
		}
	}
	clean.mu.Lock()
	sessions, ports := len(clean.sessions), 0
	for _, s := range clean.sessions {
		ports += len(s.ports)
	}
	clean.mu.Unlock()
	if sessions != 1 || ports != 2 {
		t.Errorf("clean relay: %d sessions and %d transfer ports, want 1 and 2", sessions, ports)
	}
	if _, ud, _, dd := clean.counts(); ud+dd != 0 {
		t.Errorf("clean relay dropped %d+%d packets", ud, dd)
	}

	const loss = 0.10
	lossy := newLossyRelay(t, ts.addr, randomLoss(7, loss, loss))
	got, err := getPatient(t, lossy.Addr(), "f.bin")
	if err != nil || string(got) != string(want) {
		t.Fatalf("through lossy relay: %v, %d of %d bytes", err, len(got), len(want))
	}
	us, ud, ds, dd := lossy.counts()
	for _, d := range []struct {
		name          string
		sent, dropped int64
	}{{"client→server", us, ud}, {"server→client", ds, dd}} {
		frac := float64(d.dropped) / float64(d.sent+d.dropped)
		if d.sent+d.dropped < 100 || frac < loss/2 || frac > loss*2 {
			t.Errorf("%s: dropped %d of %d (%.3f), want about %.2f", d.name, d.dropped, d.sent+d.dropped, frac, loss)
		}
	}
}

// getPatient is a lock-step client that, unlike rawConn.get, keeps waiting
// through server retransmissions and re-ACKs the last block when a
// duplicate arrives (what tftp-hpa and curl do), so it survives loss.
func getPatient(t *testing.T, to *net.UDPAddr, name string) ([]byte, error) {
	t.Helper()
	c := dialRaw(t)
	c.send(to, rrq(opRRQ, name, "octet"))
	var data []byte
	next := uint16(1)
	for {
		b, from := c.recv(5 * time.Second)
		if b == nil {
			return data, errors.New("timeout")
		}
		if len(b) < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(b) {
		case opERROR:
			return data, errors.New(describe(b))
		case opDATA:
			blk := binary.BigEndian.Uint16(b[2:])
			switch blk {
			case next:
				data = append(data, b[4:]...)
				c.send(from, []byte{0, opACK, b[2], b[3]})
				if len(b)-4 < 512 {
					return data, nil
				}
				next++
			case next - 1:
				c.send(from, []byte{0, opACK, b[2], b[3]})
			}
		}
	}
}
