package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// conn is one bound UDP socket with IP_PKTINFO control messages.
type conn struct {
	uc         *net.UDPConn
	pc         *ipv4.PacketConn
	bootServer bool
}

// listenConn binds 0.0.0.0:port (Linux delivers 255.255.255.255 only to a
// wildcard-bound socket), pinned to the interface with SO_BINDTODEVICE, with
// SO_BROADCAST, and deliberately without SO_REUSEADDR/SO_REUSEPORT: a second
// DHCP server on the port makes start-up fail loudly instead of sharing (and
// stealing) packets.
func listenConn(ifname string, port int, bootServer bool) (*conn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				serr = fmt.Errorf("SO_BROADCAST: %w", serr)
				return
			}
			if ifname != "" {
				if serr = unix.BindToDevice(int(fd), ifname); serr != nil {
					serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", ifname, serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	addr := net.JoinHostPort("0.0.0.0", strconv.Itoa(port))
	l, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen %s on %s: %w", addr, ifname, err)
	}
	uc := l.(*net.UDPConn)
	pc := ipv4.NewPacketConn(uc)
	if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		uc.Close()
		return nil, fmt.Errorf("dhcp: IP_PKTINFO on %s: %w", addr, err)
	}
	return &conn{uc: uc, pc: pc, bootServer: bootServer}, nil
}

// read receives one packet and its ingress interface.
func (c *conn) read(buf []byte) (int, inbound, error) {
	n, cm, src, err := c.pc.ReadFrom(buf)
	if err != nil {
		return 0, inbound{}, err
	}
	in := inbound{bootServer: c.bootServer}
	if ua, ok := src.(*net.UDPAddr); ok {
		in.src = ua.AddrPort()
		in.src = netip.AddrPortFrom(in.src.Addr().Unmap(), in.src.Port())
	}
	if cm != nil {
		in.ifIndex = cm.IfIndex
	}
	return n, in, nil
}

// send writes a reply; broadcasts leave through the ingress interface.
func (c *conn) send(out *outbound) error {
	var cm *ipv4.ControlMessage
	if out.dst.Addr() == broadcastAddr && out.ifIndex != 0 {
		cm = &ipv4.ControlMessage{IfIndex: out.ifIndex}
	}
	_, err := c.pc.WriteTo(out.b, cm, net.UDPAddrFromAddrPort(out.dst))
	return err
}
