package dhcp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
)

var (
	srvIP     = netip.MustParseAddr("10.231.0.1")
	macBIOS   = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x01}
	macIgnore = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xee}
	macLocal  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xdd}
	macResv   = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x77}
	resvIP    = netip.MustParseAddr("10.231.0.50")
	guid      = append([]byte{0}, bytes.Repeat([]byte{0xab}, 16)...)
)

// fakePlanner mimics profiles: a boot file per firmware, the iPXE script for
// iPXE, Ignore and Local for two MACs, one reservation.
type fakePlanner struct{ err error }

func (p fakePlanner) Plan(_ context.Context, f profiles.Facts) (profiles.Plan, error) {
	if p.err != nil {
		return profiles.Plan{}, p.err
	}
	var mac units.MAC
	copy(mac[:], macIgnore)
	if f.MAC == mac {
		return profiles.Plan{Action: profiles.Ignore}, nil
	}
	copy(mac[:], macLocal)
	if f.MAC == mac {
		return profiles.Plan{Action: profiles.Local}, nil
	}
	pl := profiles.Plan{Action: profiles.Boot, Profile: "p", Hostname: "node-" + f.MAC.Dashed()[12:]}
	switch {
	case f.UserClass == "iPXE":
		pl.Firmware, pl.BootFile = profiles.IPXE, "ipxe/"+f.MAC.Dashed()+".ipxe"
	case !f.HasArch || f.Arch == 0:
		pl.Firmware, pl.BootFile = profiles.BIOS, "undionly.kpxe"
	case f.Arch == 7 || f.Arch == 9:
		pl.Firmware, pl.BootFile = profiles.EFIx64, "ipxe.efi"
	case f.Arch == 11:
		pl.Firmware, pl.BootFile = profiles.EFIARM64, "ipxe-arm64.efi"
	case f.Arch == 16:
		pl.Firmware, pl.BootFile, pl.HTTP = profiles.EFIx64HTTP, "efi/ipxe.efi", true
	default:
		return profiles.Plan{Action: profiles.Ignore}, nil
	}
	return pl, nil
}

func (fakePlanner) Reservations() map[units.MAC]netip.Addr {
	var mac units.MAC
	copy(mac[:], macResv)
	return map[units.MAC]netip.Addr{mac: resvIP}
}

// testServer builds a server bound to nothing, with the interface faked.
func testServer(t testing.TB, mode string, planner Planner, tweak ...func(*Config)) *Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Mode, cfg.Interface, cfg.RatePerMAC = mode, "test0", 0
	cfg.Pools = []Pool{
		{Range: "10.231.0.100-10.231.0.109", Router: units.Addr{Addr: srvIP}, DNS: []units.Addr{{Addr: srvIP}}, Domain: "lab"},
		{Range: "10.231.5.10-10.231.5.20", Subnet: units.Prefix{Prefix: netip.MustParsePrefix("10.231.5.0/24")}, Router: units.Addr{Addr: netip.MustParseAddr("10.231.5.1")}},
	}
	for _, f := range tweak {
		f(&cfg)
	}
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := New(cfg, Deps{Planner: planner, LeasePath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.setInterface(3, []netip.Prefix{netip.MustParsePrefix("10.231.0.1/24")}); err != nil {
		t.Fatal(err)
	}
	if mode == ModeServer {
		if s.leases, err = OpenLeaseStore(path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.leases.Close() })
	}
	return s
}

type pktOpt func(*dhcpv4.DHCPv4)

func pxe(class string, arch iana.Arch) pktOpt {
	return func(d *dhcpv4.DHCPv4) {
		d.UpdateOption(dhcpv4.OptClassIdentifier(class))
		d.UpdateOption(dhcpv4.OptClientArch(arch))
		d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
}

func opt(o dhcpv4.Option) pktOpt { return func(d *dhcpv4.DHCPv4) { d.UpdateOption(o) } }

func without(c dhcpv4.OptionCode) pktOpt { return func(d *dhcpv4.DHCPv4) { d.Options.Del(c) } }

func relayed(gi string) pktOpt {
	return func(d *dhcpv4.DHCPv4) {
		d.GatewayIPAddr = net.ParseIP(gi).To4()
		d.HopCount = 1
		d.UpdateOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("port7"))))
	}
}

func ciaddr(ip string) pktOpt {
	return func(d *dhcpv4.DHCPv4) { d.ClientIPAddr = net.ParseIP(ip).To4() }
}

func packet(t testing.TB, typ dhcpv4.MessageType, mac net.HardwareAddr, opts ...pktOpt) []byte {
	t.Helper()
	d, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(typ))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		o(d)
	}
	return d.ToBytes()
}

type want struct {
	typ        dhcpv4.MessageType
	file       string
	class      string
	opt43      []byte // nil: absent
	siaddr     string
	yiaddr     string // "" = 0.0.0.0
	inPool     bool   // yiaddr anywhere in the first pool
	dst        string
	lease      bool // option 51 present
	broadcast  bool
	echo82     bool
	noGUIDEcho bool
}

func check(t *testing.T, out *outbound, w *want) *dhcpv4.DHCPv4 {
	t.Helper()
	if w == nil {
		if out != nil {
			p, _ := dhcpv4.FromBytes(out.b)
			t.Fatalf("got a reply, want none:\n%s", p.Summary())
		}
		return nil
	}
	if out == nil {
		t.Fatalf("no reply, want %s", w.typ)
	}
	p, err := dhcpv4.FromBytes(out.b)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if p.MessageType() != w.typ {
		t.Fatalf("type %s, want %s", p.MessageType(), w.typ)
	}
	if p.OpCode != dhcpv4.OpcodeBootReply {
		t.Errorf("op %v", p.OpCode)
	}
	if got := addr4(p.ServerIdentifier()); got != srvIP {
		t.Errorf("option 54 = %v, want %v", got, srvIP)
	}
	if p.BootFileName != w.file || p.BootFileNameOption() != strings.TrimSpace(w.file) && w.file != "" {
		t.Errorf("file %q option 67 %q, want %q", p.BootFileName, p.BootFileNameOption(), w.file)
	}
	if w.file == "" && p.Options.Has(dhcpv4.OptionBootfileName) {
		t.Errorf("option 67 %q present, want none", p.BootFileNameOption())
	}
	if got := p.ClassIdentifier(); got != w.class {
		t.Errorf("option 60 %q, want %q", got, w.class)
	}
	if got := p.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, w.opt43) {
		t.Errorf("option 43 % x, want % x", got, w.opt43)
	}
	if got := p.Options.Get(dhcpv4.OptionVendorSpecificInformation); len(got) > 0 && got[len(got)-1] != 255 {
		t.Errorf("option 43 does not end with END")
	}
	if w.siaddr != "" && p.ServerIPAddr.String() != w.siaddr {
		t.Errorf("siaddr %v, want %s", p.ServerIPAddr, w.siaddr)
	}
	if w.siaddr != "" && w.class == "PXEClient" && p.TFTPServerName() != w.siaddr {
		t.Errorf("option 66 %q, want %s", p.TFTPServerName(), w.siaddr)
	}
	yi := addr4(p.YourIPAddr)
	switch {
	case w.inPool:
		if yi.Less(netip.MustParseAddr("10.231.0.100")) || netip.MustParseAddr("10.231.0.109").Less(yi) {
			t.Errorf("yiaddr %v not in the pool", yi)
		}
	case w.yiaddr == "":
		if yi.IsValid() {
			t.Errorf("yiaddr %v, want 0.0.0.0", yi)
		}
	default:
		if yi.String() != w.yiaddr {
			t.Errorf("yiaddr %v, want %s", yi, w.yiaddr)
		}
	}
	if got := out.dst.String(); got != w.dst {
		t.Errorf("sent to %s, want %s", got, w.dst)
	}
	if got := p.Options.Has(dhcpv4.OptionIPAddressLeaseTime); got != w.lease {
		t.Errorf("option 51 present = %v, want %v", got, w.lease)
	}
	if w.broadcast && !p.IsBroadcast() {
		t.Errorf("broadcast flag not set")
	}
	if got := p.Options.Has(dhcpv4.OptionRelayAgentInformation); got != w.echo82 {
		t.Errorf("option 82 echoed = %v, want %v", got, w.echo82)
	}
	if w.file != "" && !w.noGUIDEcho && !bytes.Equal(p.Options.Get(dhcpv4.OptionClientMachineIdentifier), guid) {
		t.Errorf("option 97 not echoed")
	}
	return p
}

const bcast = "255.255.255.255:68"

var (
	direct43 = []byte{6, 1, 8, 255}
	ipxeUC   = opt(dhcpv4.OptUserClass("iPXE"))
)

func TestProxy(t *testing.T) {
	inDHCP := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	in4011 := inbound{src: netip.MustParseAddrPort("10.231.0.77:68"), ifIndex: 3, bootServer: true}
	proxyOffer := func(file string, o43 []byte) *want {
		return &want{typ: dhcpv4.MessageTypeOffer, file: file, class: "PXEClient", opt43: o43, siaddr: "10.231.0.1", dst: bcast, broadcast: true}
	}
	cases := []struct {
		name  string
		tweak func(*Config)
		pkt   []byte
		in    inbound
		want  *want
	}{
		{"bios arch 0", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000:UNDI:002001", 0)), inDHCP,
			proxyOffer("undionly.kpxe", direct43)},
		{"uefi x64 arch 7 boot server", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00007:UNDI:003016", 7)), inDHCP,
			proxyOffer("ipxe.efi", nil)},
		{"uefi x64 arch 9 like 7", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00009:UNDI:003016", 9)), inDHCP,
			proxyOffer("ipxe.efi", nil)},
		{"arch 9 follows efi-x64 direct", func(c *Config) { c.ProxyStrategy = map[string]string{"efi-x64": "direct"} },
			packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00009:UNDI:003016", 9)), inDHCP,
			proxyOffer("ipxe.efi", direct43)},
		{"arm64 arch 11", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00011:UNDI:003016", 11)), inDHCP,
			proxyOffer("ipxe-arm64.efi", nil)},
		{"arm64 direct", func(c *Config) { c.ProxyStrategy = map[string]string{"efi-arm64": "direct"} },
			packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00011:UNDI:003016", 11)), inDHCP,
			proxyOffer("ipxe-arm64.efi", direct43)},
		{"http boot arch 16", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("HTTPClient:Arch:00016:UNDI:003001", 16)), inDHCP,
			&want{typ: dhcpv4.MessageTypeOffer, file: "http://10.231.0.1/efi/ipxe.efi", class: "HTTPClient", siaddr: "10.231.0.1", dst: bcast, broadcast: true}},
		{"ipxe gets its script", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000:UNDI:002001", 0), ipxeUC), inDHCP,
			proxyOffer("ipxe/52-54-00-00-00-01.ipxe", direct43)},
		{"missing option 97", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000:UNDI:002001", 0), without(dhcpv4.OptionClientMachineIdentifier)), inDHCP,
			&want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: bcast, broadcast: true, noGUIDEcho: true}},
		{"missing option 93 is bios", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient", 0), without(dhcpv4.OptionClientSystemArchitectureType)), inDHCP,
			proxyOffer("undionly.kpxe", direct43)},
		{"unknown machine ignored", nil, packet(t, dhcpv4.MessageTypeDiscover, macIgnore, pxe("PXEClient:Arch:00000", 0)), inDHCP, nil},
		{"local machine no reply", nil, packet(t, dhcpv4.MessageTypeDiscover, macLocal, pxe("PXEClient:Arch:00000", 0)), inDHCP, nil},
		{"non-PXE client", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS), inDHCP, nil},
		{"unknown arch ignored by planner", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00099", 99)), inDHCP, nil},
		{"relayed discover", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000", 0), relayed("10.231.5.1")), inDHCP,
			&want{typ: dhcpv4.MessageTypeOffer, file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: "10.231.5.1:67", broadcast: true, echo82: true}},
		{"request for us", nil, packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient:Arch:00000", 0), opt(dhcpv4.OptServerIdentifier(srvIP.AsSlice()))), inDHCP,
			&want{typ: dhcpv4.MessageTypeAck, file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: bcast, broadcast: true}},
		{"request for another server ignored", nil, packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient:Arch:00000", 0), opt(dhcpv4.OptServerIdentifier(net.IP{10, 231, 0, 9}))), inDHCP, nil},
		{"renew ignored, never NAK", nil, packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient:Arch:00000", 0), ciaddr("10.231.0.77")), inDHCP, nil},
		{"4011 request gets ACK", nil, packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient:Arch:00007:UNDI:003016", 7), ciaddr("10.231.0.77")), in4011,
			&want{typ: dhcpv4.MessageTypeAck, file: "ipxe.efi", class: "PXEClient", siaddr: "10.231.0.1", yiaddr: "", dst: "10.231.0.77:68"}},
		{"4011 echoes boot item", nil, packet(t, dhcpv4.MessageTypeRequest, macBIOS, pxe("PXEClient:Arch:00000", 0), ciaddr("10.231.0.77"),
			opt(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{71, 4, 0x80, 0, 0, 0, 255}))), in4011,
			&want{typ: dhcpv4.MessageTypeAck, file: "undionly.kpxe", class: "PXEClient", opt43: []byte{71, 4, 0x80, 0, 0, 0, 255}, siaddr: "10.231.0.1", dst: "10.231.0.77:68"}},
		{"4011 discover ignored", nil, packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient", 0)), in4011, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tw []func(*Config)
			if tc.tweak != nil {
				tw = append(tw, tc.tweak)
			}
			s := testServer(t, ModeProxy, fakePlanner{}, tw...)
			out := s.handle(context.Background(), tc.pkt, tc.in)
			check(t, out, tc.want)
		})
	}
}

func TestServerMode(t *testing.T) {
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	cases := []struct {
		name string
		pkt  []byte
		want *want
	}{
		{"plain client gets address only", packet(t, dhcpv4.MessageTypeDiscover, macBIOS),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, dst: bcast, lease: true}},
		{"bios pxe", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000", 0)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"uefi 7", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00007", 7)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "ipxe.efi", class: "PXEClient", siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"uefi 9", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00009", 9)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "ipxe.efi", class: "PXEClient", siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"arm64 11", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00011", 11)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "ipxe-arm64.efi", class: "PXEClient", siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"http 16", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("HTTPClient:Arch:00016", 16)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "http://10.231.0.1/efi/ipxe.efi", class: "HTTPClient", siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"ipxe", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00007", 7), ipxeUC),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "ipxe/52-54-00-00-00-01.ipxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: bcast, lease: true}},
		{"missing 97", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000", 0), without(dhcpv4.OptionClientMachineIdentifier)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: bcast, lease: true, noGUIDEcho: true}},
		{"ignored machine", packet(t, dhcpv4.MessageTypeDiscover, macIgnore, pxe("PXEClient", 0)), nil},
		{"local machine gets address, no boot file", packet(t, dhcpv4.MessageTypeDiscover, macLocal, pxe("PXEClient", 0)),
			&want{typ: dhcpv4.MessageTypeOffer, inPool: true, dst: bcast, lease: true}},
		{"reservation", packet(t, dhcpv4.MessageTypeDiscover, macResv),
			&want{typ: dhcpv4.MessageTypeOffer, yiaddr: "10.231.0.50", dst: bcast, lease: true}},
		{"relayed to second pool", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000", 0), relayed("10.231.5.1")),
			&want{typ: dhcpv4.MessageTypeOffer, yiaddr: "10.231.5.10", file: "undionly.kpxe", class: "PXEClient", opt43: direct43, siaddr: "10.231.0.1", dst: "10.231.5.1:67", lease: true, echo82: true}},
		{"relay with no pool", packet(t, dhcpv4.MessageTypeDiscover, macBIOS, relayed("10.99.0.1")), nil},
		{"request for another server", packet(t, dhcpv4.MessageTypeRequest, macBIOS, opt(dhcpv4.OptServerIdentifier(net.IP{10, 231, 0, 9})), opt(dhcpv4.OptRequestedIPAddress(net.IP{10, 231, 0, 100}))), nil},
		{"init-reboot unknown client is silent", packet(t, dhcpv4.MessageTypeRequest, macBIOS, opt(dhcpv4.OptRequestedIPAddress(net.IP{10, 231, 0, 100}))), nil},
		{"init-reboot wrong network NAK", packet(t, dhcpv4.MessageTypeRequest, macBIOS, opt(dhcpv4.OptRequestedIPAddress(net.IP{192, 168, 1, 5}))),
			&want{typ: dhcpv4.MessageTypeNak, dst: bcast}},
		{"init-reboot reservation ACK", packet(t, dhcpv4.MessageTypeRequest, macResv, opt(dhcpv4.OptRequestedIPAddress(resvIP.AsSlice()))),
			&want{typ: dhcpv4.MessageTypeAck, yiaddr: "10.231.0.50", dst: bcast, lease: true}},
		{"renew adopts a free address", packet(t, dhcpv4.MessageTypeRequest, macBIOS, ciaddr("10.231.0.105")),
			&want{typ: dhcpv4.MessageTypeAck, yiaddr: "10.231.0.105", dst: "10.231.0.105:68", lease: true}},
		{"renew outside pool NAK", packet(t, dhcpv4.MessageTypeRequest, macBIOS, ciaddr("10.231.0.5")),
			&want{typ: dhcpv4.MessageTypeNak, dst: bcast}},
		{"renew of a reserved address by another MAC NAK", packet(t, dhcpv4.MessageTypeRequest, macBIOS, ciaddr("10.231.0.50")),
			&want{typ: dhcpv4.MessageTypeNak, dst: bcast}},
		{"inform", packet(t, dhcpv4.MessageTypeInform, macBIOS, ciaddr("10.231.0.30")),
			&want{typ: dhcpv4.MessageTypeAck, dst: "10.231.0.30:68"}},
	}
	for _, tc := range cases {
		if tc.pkt == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			s := testServer(t, ModeServer, fakePlanner{})
			out := s.handle(context.Background(), tc.pkt, in)
			p := check(t, out, tc.want)
			if p != nil && tc.want.typ != dhcpv4.MessageTypeNak && p.SubnetMask() == nil {
				t.Errorf("no subnet mask")
			}
		})
	}
}

// dora runs DISCOVER/REQUEST for mac and returns the bound address.
func dora(t *testing.T, s *Server, mac net.HardwareAddr, opts ...pktOpt) netip.Addr {
	t.Helper()
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	out := s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, mac, opts...), in)
	if out == nil {
		t.Fatalf("%s: no offer", mac)
	}
	offer, _ := dhcpv4.FromBytes(out.b)
	req := append([]pktOpt{opt(dhcpv4.OptServerIdentifier(srvIP.AsSlice())), opt(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))}, opts...)
	out = s.handle(context.Background(), packet(t, dhcpv4.MessageTypeRequest, mac, req...), in)
	if out == nil {
		t.Fatalf("%s: no ack", mac)
	}
	ack, _ := dhcpv4.FromBytes(out.b)
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("%s: %s", mac, ack.MessageType())
	}
	return addr4(ack.YourIPAddr)
}

func TestLeaseLifecycle(t *testing.T) {
	s := testServer(t, ModeServer, fakePlanner{})
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	ctx := context.Background()
	mac := func(i byte) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, i} }

	a := dora(t, s, mac(1))
	if b := dora(t, s, mac(1)); b != a {
		t.Fatalf("same client got %v then %v", a, b)
	}
	b := dora(t, s, mac(2))
	if a == b {
		t.Fatalf("two clients share %v", a)
	}
	// A REQUEST for another client's address is NAKed.
	out := s.handle(ctx, packet(t, dhcpv4.MessageTypeRequest, mac(3), opt(dhcpv4.OptServerIdentifier(srvIP.AsSlice())), opt(dhcpv4.OptRequestedIPAddress(a.AsSlice()))), in)
	check(t, out, &want{typ: dhcpv4.MessageTypeNak, dst: bcast})
	// Init-reboot of a known client is ACKed; with a wrong address NAKed.
	out = s.handle(ctx, packet(t, dhcpv4.MessageTypeRequest, mac(1), opt(dhcpv4.OptRequestedIPAddress(a.AsSlice()))), in)
	check(t, out, &want{typ: dhcpv4.MessageTypeAck, yiaddr: a.String(), dst: bcast, lease: true})
	out = s.handle(ctx, packet(t, dhcpv4.MessageTypeRequest, mac(1), opt(dhcpv4.OptRequestedIPAddress(b.AsSlice()))), in)
	check(t, out, &want{typ: dhcpv4.MessageTypeNak, dst: bcast})
	// Rebinding (broadcast, ciaddr set) is ACKed to ciaddr.
	out = s.handle(ctx, packet(t, dhcpv4.MessageTypeRequest, mac(2), ciaddr(b.String())), in)
	check(t, out, &want{typ: dhcpv4.MessageTypeAck, yiaddr: b.String(), dst: b.String() + ":68", lease: true})

	// DECLINE quarantines the address: the decliner gets another one and
	// nobody gets the declined one.
	s.handle(ctx, packet(t, dhcpv4.MessageTypeDecline, mac(2), opt(dhcpv4.OptRequestedIPAddress(b.AsSlice())), opt(dhcpv4.OptServerIdentifier(srvIP.AsSlice()))), in)
	if l, _ := s.leases.lookup(b); l.State != StateDeclined {
		t.Fatalf("declined address state %q", l.State)
	}
	if c := dora(t, s, mac(2)); c == b {
		t.Fatalf("declined address %v handed out again", b)
	}
	// RELEASE frees the address but remembers the client.
	s.handle(ctx, packet(t, dhcpv4.MessageTypeRelease, mac(1), ciaddr(a.String()), opt(dhcpv4.OptServerIdentifier(srvIP.AsSlice()))), in)
	if l, _ := s.leases.lookup(a); l.State != StateReleased {
		t.Fatalf("released address state %q", l.State)
	}
	if c := dora(t, s, mac(1)); c != a {
		t.Fatalf("released client got %v, want its old %v", c, a)
	}
	if got := s.Stats().Counts["decline"]; got != 1 {
		t.Errorf("decline count %d", got)
	}
}

func TestStarvation(t *testing.T) {
	s := testServer(t, ModeServer, fakePlanner{}, func(c *Config) {
		c.Pools[0].Range = "10.231.0.45-10.231.0.54" // holds the reserved 10.231.0.50
		c.OfferHold = units.Duration(time.Hour)
	})
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	got := map[netip.Addr]bool{}
	for i := range 200 {
		out := s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{6, 0, 0, 0, byte(i >> 8), byte(i)}), in)
		if out == nil {
			continue
		}
		p, _ := dhcpv4.FromBytes(out.b)
		a := addr4(p.YourIPAddr)
		if got[a] {
			t.Fatalf("address %v offered twice while held", a)
		}
		got[a] = true
	}
	if got[resvIP] {
		t.Fatalf("reserved address %v offered to a stranger", resvIP)
	}
	if len(got) != 9 {
		t.Errorf("offered %d addresses, want the 9 unreserved", len(got))
	}
	if s.Stats().Counts["drop_pool_exhausted"] == 0 {
		t.Errorf("exhaustion not counted")
	}
	// The reserved machine still gets its address.
	if a := dora(t, s, macResv); a != resvIP {
		t.Fatalf("reserved machine got %v", a)
	}
}

func TestOfferHoldExpires(t *testing.T) {
	s := testServer(t, ModeServer, fakePlanner{}, func(c *Config) { c.Pools[0].Range = "10.231.0.100-10.231.0.100" })
	now := time.Unix(1e9, 0)
	s.leases.now = func() time.Time { return now }
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	if s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{6, 0, 0, 0, 0, 1}), in) == nil {
		t.Fatal("no offer")
	}
	if s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{6, 0, 0, 0, 0, 2}), in) != nil {
		t.Fatal("second client got the held address")
	}
	now = now.Add(11 * time.Second)
	if s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{6, 0, 0, 0, 0, 2}), in) == nil {
		t.Fatal("hold did not expire")
	}
	// Expired leases are reclaimed.
	s2 := testServer(t, ModeServer, fakePlanner{}, func(c *Config) { c.Pools[0].Range = "10.231.0.100-10.231.0.100" })
	s2.leases.now = func() time.Time { return now }
	dora(t, s2, net.HardwareAddr{6, 0, 0, 0, 0, 1})
	now = now.Add(13 * time.Hour)
	if a := dora(t, s2, net.HardwareAddr{6, 0, 0, 0, 0, 2}); a != netip.MustParseAddr("10.231.0.100") {
		t.Fatalf("expired lease not reclaimed: %v", a)
	}
}

func TestEncodingRules(t *testing.T) {
	long := strings.Repeat("a", 128)
	s := testServer(t, ModeProxy, PlannerFunc(func(context.Context, profiles.Facts) (profiles.Plan, error) {
		return profiles.Plan{Action: profiles.Boot, BootFile: long}, nil
	}))
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	if out := s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient", 0)), in); out != nil {
		t.Fatal("128-byte boot file was sent (truncated)")
	}
	if s.Stats().Counts["drop_plan_error"] != 1 {
		t.Errorf("counts %v", s.Stats().Counts)
	}
	if err := checkBootFile(strings.Repeat("a", 127)); err != nil {
		t.Errorf("127 bytes refused: %v", err)
	}
	// Option 57: a reply bigger than the client accepts is not sent.
	big := strings.Repeat("d", 250)
	s = testServer(t, ModeServer, fakePlanner{}, func(c *Config) { c.Pools[0].Domain = big + "." + big })
	p := packet(t, dhcpv4.MessageTypeDiscover, macBIOS, opt(dhcpv4.OptMaxMessageSize(576)))
	if out := s.handle(context.Background(), p, in); out != nil {
		t.Fatalf("reply of %d bytes sent to a 576-byte client", len(out.b))
	}
	p = packet(t, dhcpv4.MessageTypeDiscover, macBIOS, opt(dhcpv4.OptMaxMessageSize(1500)))
	if out := s.handle(context.Background(), p, in); out == nil {
		t.Fatal("no reply to a 1500-byte client")
	}
	// A planner error means no reply.
	s = testServer(t, ModeProxy, fakePlanner{err: errors.New("boom")})
	if out := s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient", 0)), in); out != nil {
		t.Fatal("reply despite planner error")
	}
}

func TestRateLimit(t *testing.T) {
	s := testServer(t, ModeProxy, fakePlanner{}, func(c *Config) { c.RatePerMAC = 2 })
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	p := packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient", 0))
	n := 0
	for range 10 {
		if s.handle(context.Background(), p, in) != nil {
			n++
		}
	}
	if n != 2 || s.Stats().Counts["drop_rate_limit"] != 8 {
		t.Fatalf("answered %d of 10, counts %v", n, s.Stats().Counts)
	}
}

func TestFacts(t *testing.T) {
	d, _ := dhcpv4.FromBytes(packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00007", 7), ipxeUC, relayed("10.231.5.1")))
	f := factsFrom(d)
	if f.MAC.String() != "52:54:00:00:00:01" || f.Arch != 7 || !f.HasArch || f.UserClass != "iPXE" ||
		f.VendorClass != "PXEClient:Arch:00007" || !bytes.Equal(f.UUID, guid) || f.Relay.String() != "10.231.5.1" {
		t.Fatalf("facts %+v", f)
	}
	d, _ = dhcpv4.FromBytes(packet(t, dhcpv4.MessageTypeDiscover, macBIOS, opt(dhcpv4.OptRFC3004UserClass([]string{"foo", "iPXE"}))))
	if f := factsFrom(d); f.UserClass != "iPXE" || f.HasArch {
		t.Fatalf("facts %+v", f)
	}
}

// TestBootReplyLogged: every reply that carries a boot file is logged once,
// naming the client, the firmware, the file and the path it took.
func TestBootReplyLogged(t *testing.T) {
	var buf bytes.Buffer
	s := testServer(t, ModeProxy, fakePlanner{})
	s.log = slog.New(slog.NewTextHandler(&buf, nil))
	in := inbound{src: netip.MustParseAddrPort("0.0.0.0:68"), ifIndex: 3}
	if out := s.handle(context.Background(), packet(t, dhcpv4.MessageTypeDiscover, macBIOS, pxe("PXEClient:Arch:00000:UNDI:002001", 0)), in); out == nil {
		t.Fatal("no reply")
	}
	for _, want := range []string{`msg="boot reply"`, "mac=52:54:00:00:00:01", "reply=OFFER", "via=dhcp", "firmware=bios", "file=undionly.kpxe"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, buf.String())
		}
	}
}
