package tftpd

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// TestSinglePortReplySource: in single-port mode on a wildcard socket,
// replies leave from the address the client sent its request to (here
// 127.0.0.8, which is not loopback's preferred source 127.0.0.1), so
// clients and firewalls that check the source accept them.
func TestSinglePortReplySource(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Listen = units.MustListenAddr("0.0.0.0:0") // traffic below stays on 127.0.0.0/8
	cfg.SinglePort = true
	ts := start(t, cfg, Deps{})
	writeFile(t, ts.root, "two-blocks.bin", randBytes(700, 3))
	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 8), Port: ts.addr.Port}

	c := dialRaw(t)
	c.send(target, rrq(1, "two-blocks.bin", "octet"))
	for block := uint16(1); block <= 2; block++ {
		p, from := c.recv(2 * time.Second)
		if len(p) < 4 || binary.BigEndian.Uint16(p) != 3 || binary.BigEndian.Uint16(p[2:]) != block {
			t.Fatalf("want DATA %d, got %s", block, describe(p))
		}
		if !from.IP.Equal(target.IP) || from.Port != target.Port {
			t.Fatalf("DATA %d came from %s, want %s", block, from, target)
		}
		ack := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 4), block)
		c.send(target, ack)
	}
}
