package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
)

// errNotRequest marks packets that parse but are no DHCP client request we
// can answer (wrong op code, hardware type or length, no message type).
var errNotRequest = errors.New("not a dhcp client request")

// parseRequest decodes a packet and checks the header fields every handler
// relies on. Anything it refuses is dropped without a reply.
func parseRequest(b []byte) (*dhcpv4.DHCPv4, error) {
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("dhcp: parse: %w", err)
	}
	switch {
	case p.OpCode != dhcpv4.OpcodeBootRequest:
		return nil, fmt.Errorf("%w: op code %d", errNotRequest, p.OpCode)
	case p.HWType != iana.HWTypeEthernet || len(p.ClientHWAddr) != 6:
		return nil, fmt.Errorf("%w: hardware type %d length %d", errNotRequest, p.HWType, len(p.ClientHWAddr))
	case p.MessageType() == dhcpv4.MessageTypeNone:
		return nil, fmt.Errorf("%w: no message type (BOOTP)", errNotRequest)
	}
	return p, nil
}

// factsFrom extracts what a request says about the client: MAC, option 93
// architecture, 60 vendor class, 77 user class, 97 UUID, relay and client
// address. Subnet is filled in by the caller, which knows the ingress
// interface and pools.
func factsFrom(p *dhcpv4.DHCPv4) profiles.Facts {
	var f profiles.Facts
	copy(f.MAC[:], p.ClientHWAddr)
	if v := p.Options.Get(dhcpv4.OptionClientSystemArchitectureType); len(v) >= 2 && len(v)%2 == 0 {
		f.Arch = uint16(v[0])<<8 | uint16(v[1])
		f.HasArch = true
	}
	f.VendorClass = p.ClassIdentifier()
	f.UserClass = userClass(p)
	if v := p.Options.Get(dhcpv4.OptionClientMachineIdentifier); len(v) > 0 {
		f.UUID = append([]byte(nil), v...)
	}
	f.Relay = addr4(p.GatewayIPAddr)
	f.ClientAddr = addr4(p.ClientIPAddr)
	return f
}

// userClass returns option 77. iPXE sends the bare string "iPXE" rather than
// the RFC 3004 length-prefixed list; both forms are accepted.
func userClass(p *dhcpv4.DHCPv4) string {
	uc := p.UserClass()
	for _, s := range uc {
		if s == "iPXE" {
			return s
		}
	}
	return strings.Join(uc, ",")
}

// bootClass reports which kind of network-boot client sent p: "PXEClient",
// "HTTPClient" or "" for everything else (option 60 prefix).
func bootClass(vendorClass string) string {
	switch {
	case strings.HasPrefix(vendorClass, "PXEClient"):
		return "PXEClient"
	case strings.HasPrefix(vendorClass, "HTTPClient"):
		return "HTTPClient"
	}
	return ""
}

// firmwareOf names the firmware of facts the way profiles does, for the
// proxy strategy; plan.Firmware wins when the planner sets it.
func firmwareOf(f profiles.Facts, plan profiles.Plan) string {
	if plan.Firmware != "" {
		return string(plan.Firmware)
	}
	if f.UserClass == "iPXE" {
		return string(profiles.IPXE)
	}
	switch f.Arch {
	case 6:
		return string(profiles.EFIIA32)
	case 7, 9: // RFC 4578 swapped these: treat both as x86-64 UEFI
		return string(profiles.EFIx64)
	case 11:
		return string(profiles.EFIARM64)
	case 16:
		return string(profiles.EFIx64HTTP)
	case 19:
		return string(profiles.EFIARM64HTTP)
	}
	return string(profiles.BIOS)
}

// addr4 converts a header address; 0.0.0.0 and garbage become the zero Addr.
func addr4(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip.To4())
	if !ok || a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// macOf returns the client hardware address of a parsed request.
func macOf(p *dhcpv4.DHCPv4) units.MAC {
	var m units.MAC
	copy(m[:], p.ClientHWAddr)
	return m
}

// ip4 converts to the net.IP the library wants; the zero Addr is 0.0.0.0.
func ip4(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IPv4zero.To4()
	}
	b := a.As4()
	return net.IP(b[:])
}
