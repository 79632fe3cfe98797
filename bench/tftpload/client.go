// Package tftpload is the TFTP load client of bootyard's benchmarks: a lean
// RFC 1350 read client with the RFC 2347 option extension, RFC 2348 blksize
// and RFC 2349 tsize, that can bind each transfer to its own source address
// (so a boot storm looks like many machines, not one), and a Storm driver
// that starts many such transfers at once and reports wall time, failures
// and per-transfer latency.
//
// It is lock-step, like the PXE ROMs and boot loaders it stands in for: one
// DATA block in flight, ACKed before the next. It writes nothing to disk; it
// counts bytes and, when asked, hashes them.
package tftpload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Options configures one read transfer.
type Options struct {
	// Server is the server's request address, e.g. 127.0.0.2:69.
	Server netip.AddrPort
	// Local is the source address to bind; the zero value lets the kernel
	// choose.
	Local netip.Addr
	// BlockSize is the blksize to request; 0 or 512 sends no blksize option.
	BlockSize int
	// TSize sends "tsize 0" as PXE ROMs do, so the server reports the size.
	TSize bool
	// Timeout is the retransmission timeout (RRQ or last ACK). Default 1s.
	Timeout time.Duration
	// Retries is how many retransmissions in a row are tolerated. Default 5.
	Retries int
	// Hash, when set, receives every payload byte in order.
	Hash hash.Hash
}

// Result describes one finished transfer.
type Result struct {
	// Bytes is the number of payload bytes received.
	Bytes int64
	// BlockSize is the block size in effect (negotiated or 512).
	BlockSize int
	// TSize is the size the server announced in its OACK, or -1.
	TSize int64
	// Retransmits counts the packets this client sent again after a timeout.
	Retransmits int
	// Duration runs from the first RRQ to the last ACK.
	Duration time.Duration
}

// MBps returns the transfer's throughput in megabytes (10^6) per second.
func (r Result) MBps() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Duration.Seconds() / 1e6
}

// ServerError is an ERROR packet the server sent.
type ServerError struct {
	// Code is the TFTP error code.
	Code uint16
	// Msg is the server's message.
	Msg string
}

// Error implements error.
func (e *ServerError) Error() string {
	return fmt.Sprintf("tftpload: server error %d: %s", e.Code, e.Msg)
}

// ErrTimeout reports a transfer given up after Retries timeouts in a row.
var ErrTimeout = errors.New("tftpload: timed out")

// Get fetches name from the server and returns what it measured. The
// transfer ends early, with ctx's error, when ctx is done.
func Get(ctx context.Context, opt Options, name string) (res Result, err error) {
	res = Result{TSize: -1, BlockSize: 512}
	if opt.Timeout <= 0 {
		opt.Timeout = time.Second
	}
	if opt.Retries <= 0 {
		opt.Retries = 5
	}
	if !opt.Server.IsValid() {
		return res, fmt.Errorf("tftpload: no server address")
	}
	var laddr *net.UDPAddr
	if opt.Local.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(opt.Local, 0))
	}
	network := "udp4"
	if opt.Server.Addr().Is6() && !opt.Server.Addr().Is4In6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, laddr)
	if err != nil {
		return res, fmt.Errorf("tftpload: bind %v: %w", opt.Local, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	want := 512
	if opt.BlockSize > 0 {
		want = opt.BlockSize
	}
	rrq := buildRRQ(name, want, opt.TSize)
	last := rrq                  // the packet to retransmit on timeout
	lastTo := opt.Server         // where it goes
	var peer netip.AddrPort      // the server's transfer ID, once known
	var expect uint16 = 1        // next DATA block wanted
	buf := make([]byte, 65536+4) // largest possible DATA packet
	ack := make([]byte, 4)
	binary.BigEndian.PutUint16(ack, opACK)
	strikes := 0
	started := time.Now()
	defer func() { res.Duration = time.Since(started) }()

	if _, err := conn.WriteToUDPAddrPort(rrq, opt.Server); err != nil {
		return res, fmt.Errorf("tftpload: send request: %w", err)
	}
	for {
		if err := conn.SetReadDeadline(time.Now().Add(opt.Timeout)); err != nil {
			return res, fmt.Errorf("tftpload: %w", err)
		}
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("tftpload: %s: %w", name, ctx.Err())
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				strikes++
				if strikes > opt.Retries {
					return res, fmt.Errorf("%w after %d bytes of %s", ErrTimeout, res.Bytes, name)
				}
				res.Retransmits++
				if _, err := conn.WriteToUDPAddrPort(last, lastTo); err != nil {
					return res, fmt.Errorf("tftpload: retransmit: %w", err)
				}
				continue
			}
			return res, fmt.Errorf("tftpload: receive: %w", err)
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if n < 4 {
			continue
		}
		if !peer.IsValid() {
			if from.Addr() != opt.Server.Addr().Unmap() {
				continue
			}
			peer = from
		} else if from != peer {
			// RFC 1350: a packet from a stranger gets an error, the
			// transfer goes on.
			_, _ = conn.WriteToUDPAddrPort(errorPacket(5, "unknown transfer ID"), from)
			continue
		}
		pkt := buf[:n]
		switch binary.BigEndian.Uint16(pkt) {
		case opOACK:
			if expect != 1 || res.Bytes != 0 {
				continue // a late duplicate OACK
			}
			bs, ts, err := parseOACK(pkt[2:])
			if err != nil {
				return res, err
			}
			if bs > 0 {
				res.BlockSize = bs
			}
			res.TSize = ts
			binary.BigEndian.PutUint16(ack[2:], 0)
			last, lastTo = ack, peer
			strikes = 0
			if _, err := conn.WriteToUDPAddrPort(ack, peer); err != nil {
				return res, fmt.Errorf("tftpload: send ack: %w", err)
			}
		case opDATA:
			block := binary.BigEndian.Uint16(pkt[2:])
			payload := pkt[4:]
			switch block {
			case expect:
				if len(payload) > res.BlockSize {
					return res, fmt.Errorf("tftpload: block %d has %d bytes, block size is %d", block, len(payload), res.BlockSize)
				}
				res.Bytes += int64(len(payload))
				if opt.Hash != nil {
					opt.Hash.Write(payload)
				}
				binary.BigEndian.PutUint16(ack[2:], block)
				last, lastTo = ack, peer
				strikes = 0
				if _, err := conn.WriteToUDPAddrPort(ack, peer); err != nil {
					return res, fmt.Errorf("tftpload: send ack: %w", err)
				}
				expect++ // wraps to 0 after 65535, as every peer does
				if len(payload) < res.BlockSize {
					return res, nil
				}
			case expect - 1:
				// Our ACK was lost and the server sent the block again.
				_, _ = conn.WriteToUDPAddrPort(ack, peer)
			}
		case opERROR:
			code := binary.BigEndian.Uint16(pkt[2:])
			msg := string(bytes.TrimRight(pkt[4:], "\x00"))
			return res, &ServerError{Code: code, Msg: msg}
		}
	}
}

func buildRRQ(name string, blksize int, tsize bool) []byte {
	b := make([]byte, 2, 64+len(name))
	binary.BigEndian.PutUint16(b, opRRQ)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, "octet"...)
	b = append(b, 0)
	if blksize != 512 {
		b = append(b, "blksize"...)
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(blksize), 10)
		b = append(b, 0)
	}
	if tsize {
		b = append(b, "tsize"...)
		b = append(b, 0, '0', 0)
	}
	return b
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}

// parseOACK returns the blksize (0 when absent) and tsize (-1 when absent)
// of an OACK body.
func parseOACK(body []byte) (blksize int, tsize int64, err error) {
	tsize = -1
	body = bytes.TrimSuffix(body, []byte{0})
	if len(body) == 0 {
		return 0, -1, nil
	}
	fields := bytes.Split(body, []byte{0})
	if len(fields)%2 != 0 {
		return 0, -1, fmt.Errorf("tftpload: malformed OACK %q", body)
	}
	for i := 0; i < len(fields); i += 2 {
		k, v := string(bytes.ToLower(fields[i])), string(fields[i+1])
		switch k {
		case "blksize":
			n, err := strconv.Atoi(v)
			if err != nil || n < 8 || n > 65464 {
				return 0, -1, fmt.Errorf("tftpload: bad blksize %q in OACK", v)
			}
			blksize = n
		case "tsize":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return 0, -1, fmt.Errorf("tftpload: bad tsize %q in OACK", v)
			}
			tsize = n
		}
	}
	return blksize, tsize, nil
}

// IsTimeout reports whether err is a transfer given up after timeouts, as
// opposed to a refusal or a local failure.
func IsTimeout(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded)
}
