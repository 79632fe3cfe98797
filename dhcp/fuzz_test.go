package dhcp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds arbitrary bytes to the packet handler in both modes and
// on both ports: it must never panic and never answer a packet that does not
// parse as a DHCP client request.
func FuzzHandle(f *testing.F) {
	seeds := [][]byte{
		packet(f, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000:UNDI:002001", 0)),
		packet(f, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00007", 7), ipxeUC),
		packet(f, dhcpv4.MessageTypeDiscover, macBIOS, pxe("HTTPClient:Arch:00016", 16), relayed("10.231.5.1")),
		packet(f, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient", 0), ciaddr("10.231.0.77")),
		packet(f, dhcpv4.MessageTypeRequest, macResv, opt(dhcpv4.OptRequestedIPAddress(resvIP.AsSlice()))),
		packet(f, dhcpv4.MessageTypeDecline, macBIOS, opt(dhcpv4.OptRequestedIPAddress(resvIP.AsSlice()))),
		packet(f, dhcpv4.MessageTypeInform, macBIOS, ciaddr("10.231.0.30")),
		{}, {1}, make([]byte, 240),
	}
	for _, s := range seeds {
		f.Add(s, uint8(0))
		f.Add(s, uint8(3))
	}
	proxy := testServer(f, ModeProxy, fakePlanner{})
	server := testServer(f, ModeServer, fakePlanner{})
	f.Fuzz(func(t *testing.T, b []byte, sel uint8) {
		s := proxy
		if sel&1 != 0 {
			s = server
		}
		in := inbound{src: netip.MustParseAddrPort("10.231.0.9:68"), ifIndex: 3, bootServer: sel&2 != 0}
		out := s.handle(context.Background(), b, in)
		if _, err := parseRequest(b); err != nil && out != nil {
			t.Fatalf("replied to unparseable input (%v)", err)
		}
		if out != nil {
			if _, err := dhcpv4.FromBytes(out.b); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
	})
}
