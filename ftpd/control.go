package ftpd

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxLine is the longest command line accepted, CRLF included. A longer
// line is answered with 500 and the connection closed; at most maxLine bytes
// of it are ever buffered.
const maxLine = 4096

var errLineTooLong = errors.New("command line too long")

// ctlConn is the control connection as ftpserverlib sees it. It sits between
// the socket and the library and reads the command stream line by line
// before the library does, which lets bootyard:
//
//   - refuse overlong lines with 500 without buffering them;
//   - refuse PORT/EPRT to another address or to a port below 1024 with 504
//     and log a bounce attempt (the library checks the address only, and
//     dials with its own net.Dialer, so no hook sees the port);
//   - run TLS on the control connection itself (AUTH TLS, and implicit FTPS
//     from the first byte), so those checks also hold on encrypted sessions;
//   - implement STOU on top of STOR (the library answers STOU with 502).
//
// The library keeps handling everything else, including PROT/PBSZ and TLS on
// data connections.
type ctlConn struct {
	raw  net.Conn // the TCP connection
	sess *session
	tls  *tls.Config // nil: no TLS offered

	mu     sync.Mutex // guards c, stou, writes
	c      net.Conn   // raw, or a *tls.Conn over it
	stou   string     // name chosen for a pending STOU
	br     *bufio.Reader
	part   []byte // partial line carried across read errors
	out    []byte // filtered bytes not yet handed to the library
	closed sync.Once
	onEnd  func()
}

func newCtlConn(raw net.Conn, sess *session, cfg *tls.Config, implicit bool) *ctlConn {
	c := &ctlConn{raw: raw, sess: sess, tls: cfg, c: raw}
	if implicit {
		c.c = tls.Server(raw, cfg)
		sess.tls.Store(true)
	}
	c.br = bufio.NewReaderSize(c.c, maxLine)
	return c
}

// Read hands the library one filtered command line at a time.
func (c *ctlConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		line, err := c.readLine()
		if errors.Is(err, errLineTooLong) {
			c.sess.refusedCmd("", "command line longer than 4096 bytes")
			c.reply("500 Command line too long.")
			return 0, io.EOF
		}
		if err != nil {
			return 0, err
		}
		if out, pass := c.filter(line); pass {
			c.out = append(out, '\r', '\n')
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// readLine returns the next line without its line ending.
func (c *ctlConn) readLine() (string, error) {
	for {
		c.mu.Lock()
		br := c.br
		c.mu.Unlock()
		frag, err := br.ReadSlice('\n')
		c.part = append(c.part, frag...)
		if len(c.part) > maxLine {
			c.part = nil
			return "", errLineTooLong
		}
		switch {
		case err == nil:
			line := strings.TrimRight(string(c.part), "\r\n")
			c.part = c.part[:0]
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return "", err
		}
	}
}

// filter inspects one command line; it returns the line to pass to the
// library, or pass=false when it answered the command itself.
func (c *ctlConn) filter(line string) (out []byte, pass bool) {
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "AUTH":
		c.startTLS(arg)
		return nil, false
	case "PORT", "EPRT":
		v := strings.ToUpper(verb)
		if !c.sess.pol().cfg.Active {
			c.sess.refusedCmd(v, "active mode is disabled")
			c.reply("502 Active mode is disabled; use PASV or EPSV.")
			return nil, false
		}
		target, err := parseActiveTarget(v, arg)
		if err != nil {
			c.reply("501 Syntax error in " + v + " argument.")
			return nil, false
		}
		if err := checkActiveTarget(c.sess.remote, target); err != nil {
			c.sess.srv.stats.bounces.Add(1)
			c.sess.log.Warn("bounce attempt refused", "cmd", v, "target", target.String(), "reason", err.Error())
			c.reply("504 Data connections go only to your own address and a port >= 1024.")
			return nil, false
		}
	case "STOU":
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		name := "stou-" + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(rnd[:])
		c.mu.Lock()
		c.stou = name
		c.mu.Unlock()
		return []byte("STOR " + name), true
	}
	return []byte(line), true
}

// startTLS answers AUTH and switches the connection to TLS.
func (c *ctlConn) startTLS(arg string) {
	switch {
	case c.tls == nil:
		c.reply("502 TLS is not available.")
		return
	case c.sess.tls.Load():
		c.reply("503 Already using TLS.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "TLS", "SSL", "TLS-C", "TLS-P":
	default:
		c.reply("504 Unsupported AUTH type; use AUTH TLS.")
		return
	}
	if c.br.Buffered() > 0 {
		// Bytes after AUTH before our reply: a client that does not wait,
		// or an injection attempt (CVE-2011-0411 style). Refuse.
		c.reply("503 Data after AUTH command; closing.")
		c.Close()
		return
	}
	c.reply("234 AUTH command ok. Expecting TLS negotiation.")
	c.mu.Lock()
	c.c = tls.Server(c.raw, c.tls)
	c.br = bufio.NewReaderSize(c.c, maxLine)
	c.mu.Unlock()
	c.sess.tls.Store(true)
}

// reply writes one reply line of ours.
func (c *ctlConn) reply(line string) {
	_, _ = c.Write([]byte(line + "\r\n"))
}

// Write sends the library's replies (rewriting the 150 of a STOU to carry the
// chosen name, RFC 1123 4.1.2.9).
func (c *ctlConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := p
	if c.stou != "" && len(p) >= 4 {
		switch {
		case bytes.HasPrefix(p, []byte("150 ")):
			out = []byte("150 FILE: " + c.stou + "\r\n")
			c.stou = ""
		case p[0] == '4' || p[0] == '5':
			c.stou = ""
		}
	}
	if _, err := c.c.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close closes the connection once (TLS close_notify first, bounded).
func (c *ctlConn) Close() error {
	var err error
	c.closed.Do(func() {
		_ = c.raw.SetWriteDeadline(time.Now().Add(time.Second))
		c.mu.Lock()
		cur := c.c
		c.mu.Unlock()
		if cur != c.raw {
			_ = cur.Close()
		}
		err = c.raw.Close()
		if c.onEnd != nil {
			c.onEnd()
		}
	})
	return err
}

// LocalAddr implements net.Conn.
func (c *ctlConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *ctlConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline implements net.Conn.
func (c *ctlConn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

// SetReadDeadline implements net.Conn.
func (c *ctlConn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

// SetWriteDeadline implements net.Conn.
func (c *ctlConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// addrOf returns the unmapped IP of a TCP address.
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// gateListener is the listener handed to ftpserverlib. It enforces bans,
// max_clients and max_per_ip before the library sees a connection (the
// library can only refuse with 500 from ClientConnected; RFC 959 wants 421),
// and wraps each accepted connection in a ctlConn.
type gateListener struct {
	net.Listener
	srv      *Server
	ln       *listenerRT
	implicit bool
}

// Accept implements net.Listener. Errors from the inner listener are passed
// through unchanged: the library recognises a closed listener by its text.
func (g *gateListener) Accept() (net.Conn, error) {
	for {
		raw, err := g.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := addrOf(raw.RemoteAddr())
		if msg, ok := g.srv.admit(ip); !ok {
			go refuse(raw, msg, g.implicit, g.srv.tlsCfg)
			continue
		}
		sess := g.srv.newSession(g.ln.tr, raw)
		c := newCtlConn(raw, sess, g.srv.tlsCfg, g.implicit)
		c.onEnd = func() { g.srv.release(sess) }
		sess.conn = c
		return c, nil
	}
}

// refuse answers a connection we will not serve with a 421 and closes it.
func refuse(raw net.Conn, msg string, implicit bool, cfg *tls.Config) {
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(2 * time.Second))
	var w io.Writer = raw
	if implicit {
		if cfg == nil {
			return
		}
		tc := tls.Server(raw, cfg)
		defer tc.Close()
		w = tc
	}
	_, _ = io.WriteString(w, "421 "+msg+"\r\n")
}
