package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Field limits of the BOOTP header (RFC 2131 §2): the library would cut
// longer values silently, so they are errors here.
const (
	maxFileLen  = 127 // file, NUL-terminated in 128 bytes
	maxSnameLen = 63  // sname, NUL-terminated in 64 bytes
	minMaxSize  = 576 // RFC 2132 §9.10: the smallest legal option 57
	ipUDPHeader = 28  // IPv4 + UDP header, counted against option 57
)

// pxeDiscoveryControl is option 43 for the "direct" proxy strategy: PXE
// sub-option 6 (PXE_DISCOVERY_CONTROL) with bit 3 set ("boot file present:
// download it, no boot server discovery"), then the END byte the PXE spec
// requires at the end of the vendor options.
var pxeDiscoveryControl = []byte{6, 1, 0x08, 255}

// errTooBig is returned when a reply would exceed the client's option 57.
var errTooBig = errors.New("reply exceeds the client's maximum message size")

// bootInfo is the boot part of a reply.
type bootInfo struct {
	class  string     // option 60: "PXEClient" or "HTTPClient"
	file   string     // header file field and option 67; a URL for HTTP boot
	server netip.Addr // siaddr (next-server) and option 66
	direct bool       // add option 43 with discovery control

	firmware, profile string // for the log line only
}

// addrInfo is the address part of a server-mode reply.
type addrInfo struct {
	subnet    netip.Prefix
	router    netip.Addr
	dns       []netip.Addr
	domain    string
	leaseTime time.Duration // 0: no option 51/58/59 (INFORM)
	hostname  string
}

// reply describes one reply; encodeReply turns it into bytes.
type reply struct {
	typ       dhcpv4.MessageType
	serverID  netip.Addr // option 54
	yiaddr    netip.Addr
	ciaddr    netip.Addr
	broadcast bool // set the broadcast flag (proxy replies)
	boot      *bootInfo
	addr      *addrInfo
	message   string // option 56, for NAK
	bootItem  []byte // PXE boot item (sub-option 71) to echo in option 43
}

// bootURL builds the HTTP-boot URL of a boot file relative to the HTTP root,
// naming the server by IP literal.
func bootURL(server netip.Addr, file string) string {
	for len(file) > 0 && file[0] == '/' {
		file = file[1:]
	}
	return "http://" + server.String() + "/" + file
}

// checkBootFile refuses boot file names the header cannot carry whole.
func checkBootFile(name string) error {
	if len(name) > maxFileLen {
		return fmt.Errorf("dhcp: boot file %q is %d bytes, the DHCP header holds at most %d", name, len(name), maxFileLen)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return fmt.Errorf("dhcp: boot file %q contains a NUL byte", name)
		}
	}
	return nil
}

// maxReplySize returns the largest reply (DHCP payload) the client accepts.
func maxReplySize(req *dhcpv4.DHCPv4) int {
	n := minMaxSize
	if v, err := req.MaxMessageSize(); err == nil && int(v) > n {
		n = int(v)
	}
	return n - ipUDPHeader
}

// encodeReply builds the reply packet for req. It never truncates: an
// over-long boot file or server name and a reply larger than the client's
// option 57 are errors.
func encodeReply(req *dhcpv4.DHCPv4, r reply) ([]byte, error) {
	p, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(r.typ))
	if err != nil {
		return nil, fmt.Errorf("dhcp: build reply: %w", err)
	}
	p.YourIPAddr = ip4(r.yiaddr)
	p.ClientIPAddr = ip4(r.ciaddr)
	p.ServerIPAddr = net.IPv4zero.To4()
	if r.broadcast {
		p.SetBroadcast()
	}
	p.UpdateOption(dhcpv4.OptServerIdentifier(ip4(r.serverID)))
	if r.typ == dhcpv4.MessageTypeNak {
		p.ClientIPAddr = net.IPv4zero.To4()
		p.YourIPAddr = net.IPv4zero.To4()
		if p.GatewayIPAddr != nil && !p.GatewayIPAddr.IsUnspecified() {
			p.SetBroadcast() // RFC 2131 §4.3.2: relay must broadcast the NAK
		}
		if r.message != "" {
			p.UpdateOption(dhcpv4.OptMessage(r.message))
		}
		return finish(req, p)
	}
	if a := r.addr; a != nil {
		if a.subnet.IsValid() {
			p.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(a.subnet.Bits(), 32)))
		}
		if a.router.IsValid() {
			p.UpdateOption(dhcpv4.OptRouter(ip4(a.router)))
		}
		if len(a.dns) > 0 {
			ips := make([]net.IP, len(a.dns))
			for i, d := range a.dns {
				ips[i] = ip4(d)
			}
			p.UpdateOption(dhcpv4.OptDNS(ips...))
		}
		if a.domain != "" {
			p.UpdateOption(dhcpv4.OptDomainName(a.domain))
		}
		if a.hostname != "" {
			p.UpdateOption(dhcpv4.OptHostName(a.hostname))
		}
		if a.leaseTime > 0 {
			p.UpdateOption(dhcpv4.OptIPAddressLeaseTime(a.leaseTime))
			p.UpdateOption(dhcpv4.OptRenewTimeValue(a.leaseTime / 2))
			p.UpdateOption(dhcpv4.OptRebindingTimeValue(a.leaseTime * 7 / 8))
		}
	}
	if b := r.boot; b != nil {
		if err := checkBootFile(b.file); err != nil {
			return nil, err
		}
		server := b.server.String()
		if len(server) > maxSnameLen {
			return nil, fmt.Errorf("dhcp: server name %q is longer than %d bytes", server, maxSnameLen)
		}
		p.ServerIPAddr = ip4(b.server)
		p.BootFileName = b.file
		p.UpdateOption(dhcpv4.OptClassIdentifier(b.class))
		p.UpdateOption(dhcpv4.OptBootFileName(b.file))
		if b.class != "HTTPClient" {
			p.UpdateOption(dhcpv4.OptTFTPServerName(server))
		}
		switch {
		case len(r.bootItem) > 0:
			v := append([]byte{71, byte(len(r.bootItem))}, r.bootItem...)
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, append(v, 255)))
		case b.direct:
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
		}
		// PXE spec: the client machine identifier is echoed.
		if v := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); v != nil {
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, v))
		}
	}
	return finish(req, p)
}

// finish serialises p and enforces the client's maximum message size.
func finish(req, p *dhcpv4.DHCPv4) ([]byte, error) {
	b := p.ToBytes()
	if max := maxReplySize(req); len(b) > max {
		return nil, fmt.Errorf("dhcp: %w (%d > %d bytes)", errTooBig, len(b), max)
	}
	return b, nil
}
