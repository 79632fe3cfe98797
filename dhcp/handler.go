package dhcp

import (
	"context"
	"errors"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
)

// Ports of RFC 2131.
const (
	serverPort = 67
	clientPort = 68
)

var broadcastAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// inbound says where a packet came from.
type inbound struct {
	src        netip.AddrPort
	ifIndex    int  // ingress interface (IP_PKTINFO), 0 when unknown
	bootServer bool // arrived on the PXE boot-server port (4011)
}

// outbound is a reply and where it goes.
type outbound struct {
	b       []byte
	dst     netip.AddrPort
	ifIndex int // interface to send a broadcast out of
	typ     dhcpv4.MessageType
	boot    *bootInfo // boot part of the reply, nil for address-only replies
}

// handle answers one packet. It returns nil when nothing is to be sent; the
// reason is counted. It never panics on hostile input: parsing is the
// library's, and everything after it works on the parsed packet.
func (s *Server) handle(ctx context.Context, raw []byte, in inbound) *outbound {
	s.stats.add("received")
	req, err := parseRequest(raw)
	if err != nil {
		kind := "drop_malformed"
		if errors.Is(err, errNotRequest) {
			kind = "drop_not_request"
		}
		s.stats.add(kind)
		s.warnLimited(kind, "dropped packet", "src", in.src, "err", err)
		return nil
	}
	rt := s.rt.Load()
	mac := macOf(req)
	if !rt.limiter.allow(mac, s.now()) {
		s.stats.add("drop_rate_limit")
		s.warnLimited("rate", "per-MAC rate limit", "mac", mac)
		return nil
	}
	var out *outbound
	var why string
	if in.bootServer || rt.cfg.Mode == ModeProxy {
		out, why = s.handleProxy(ctx, rt, req, in)
	} else {
		out, why = s.handleServer(ctx, rt, req, in)
	}
	if out == nil {
		s.stats.add(why)
		s.log.Debug("no reply", "mac", mac, "type", req.MessageType().String(), "reason", why)
		return nil
	}
	s.stats.add(out.typ.String())
	if out.boot != nil {
		via := "dhcp"
		if in.bootServer {
			via = "bootserver"
		}
		s.log.Info("boot reply", "mac", mac, "reply", out.typ.String(), "via", via, "firmware", out.boot.firmware,
			"profile", out.boot.profile, "file", out.boot.file, "next_server", out.boot.server, "direct", out.boot.direct)
	}
	return out
}

// route picks the destination of a reply to req per RFC 2131 §4.1.
func route(req *dhcpv4.DHCPv4, in inbound, typ dhcpv4.MessageType) netip.AddrPort {
	if in.bootServer {
		return in.src // boot-server replies go back where the request came from
	}
	if gi := addr4(req.GatewayIPAddr); gi.IsValid() {
		return netip.AddrPortFrom(gi, serverPort)
	}
	if typ == dhcpv4.MessageTypeNak {
		return netip.AddrPortFrom(broadcastAddr, clientPort)
	}
	if ci := addr4(req.ClientIPAddr); ci.IsValid() {
		return netip.AddrPortFrom(ci, clientPort)
	}
	// No address yet: broadcast whether or not the flag is set. RFC 2131
	// allows it; unicasting to yiaddr would need an ARP entry we cannot add
	// without raw sockets.
	return netip.AddrPortFrom(broadcastAddr, clientPort)
}

// send encodes r and routes it.
func (s *Server) send(req *dhcpv4.DHCPv4, in inbound, r reply) (*outbound, string) {
	b, err := encodeReply(req, r)
	if err != nil {
		s.warnLimited("encode", "cannot build reply", "mac", macOf(req), "err", err)
		return nil, "drop_encode_error"
	}
	return &outbound{b: b, dst: route(req, in, r.typ), ifIndex: in.ifIndex, typ: r.typ, boot: r.boot}, ""
}

// plan asks the planner; a nil or Ignore plan means no reply.
func (s *Server) plan(ctx context.Context, f profiles.Facts) (profiles.Plan, string) {
	if !f.Server.IsValid() {
		f.Server = s.serverIP // .Server in templates: the address we announce
	}
	p, err := s.planner.Plan(ctx, f)
	if err != nil {
		s.warnLimited("plan", "planner failed", "mac", f.MAC, "err", err)
		return p, "drop_plan_error"
	}
	if p.Action == profiles.Ignore {
		return p, "drop_plan_ignore"
	}
	return p, ""
}

// boot builds the boot part of a reply from a plan.
func (s *Server) boot(rt *rtState, f profiles.Facts, plan profiles.Plan, atBootServer bool) (*bootInfo, error) {
	class := bootClass(f.VendorClass)
	if class == "" || plan.Action != profiles.Boot {
		return nil, nil
	}
	if plan.BootFile == "" {
		return nil, errors.New("dhcp: plan has no boot file")
	}
	b := &bootInfo{class: class, file: plan.BootFile, server: s.serverIP, firmware: firmwareOf(f, plan), profile: plan.Profile}
	if plan.HTTP || class == "HTTPClient" {
		b.class = "HTTPClient"
		b.file = bootURL(s.serverIP, plan.BootFile)
	}
	if err := checkBootFile(b.file); err != nil {
		return nil, err
	}
	b.direct = !atBootServer && b.class == "PXEClient" && rt.cfg.strategyFor(firmwareOf(f, plan)) == StrategyDirect
	return b, nil
}

// handleProxy answers PXE and HTTP-boot clients without touching addresses:
// DISCOVER on the DHCP port, REQUESTs naming us, and REQUEST/INFORM on the
// boot-server port. It never NAKs.
func (s *Server) handleProxy(ctx context.Context, rt *rtState, req *dhcpv4.DHCPv4, in inbound) (*outbound, string) {
	f := factsFrom(req)
	if bootClass(f.VendorClass) == "" {
		return nil, "drop_not_boot_client"
	}
	var typ dhcpv4.MessageType
	switch mt := req.MessageType(); {
	case in.bootServer && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
		typ = dhcpv4.MessageTypeAck
	case in.bootServer:
		return nil, "drop_message_type"
	case mt == dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest:
		if sid := addr4(req.ServerIdentifier()); sid != s.serverIP {
			return nil, "drop_not_for_us"
		}
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, "drop_message_type"
	}
	f.Subnet = s.ingressSubnet(f)
	plan, why := s.plan(ctx, f)
	if why != "" {
		return nil, why
	}
	if plan.Action == profiles.Local {
		return nil, "drop_plan_local"
	}
	b, err := s.boot(rt, f, plan, in.bootServer)
	if err != nil || b == nil {
		s.warnLimited("plan", "unusable plan", "mac", f.MAC, "err", err)
		return nil, "drop_plan_error"
	}
	r := reply{typ: typ, serverID: s.serverIP, boot: b, broadcast: !in.bootServer}
	if in.bootServer {
		r.ciaddr = addr4(req.ClientIPAddr)
		r.bootItem = pxeBootItem(req)
	}
	return s.send(req, in, r)
}

// pxeBootItem returns PXE sub-option 71 (boot item) of the request's option
// 43, which a boot server echoes.
func pxeBootItem(req *dhcpv4.DHCPv4) []byte {
	v := req.Options.Get(dhcpv4.OptionVendorSpecificInformation)
	for len(v) >= 2 && v[0] != 255 {
		if v[0] == 0 {
			v = v[1:]
			continue
		}
		n := int(v[1])
		if len(v) < 2+n {
			return nil
		}
		if v[0] == 71 && n == 4 {
			return append([]byte(nil), v[2:2+n]...)
		}
		v = v[2+n:]
	}
	return nil
}

// ingressSubnet is the subnet a client is on: the relay's, else the
// interface prefix.
func (s *Server) ingressSubnet(f profiles.Facts) netip.Prefix {
	for _, a := range s.ifAddrs {
		if !f.Relay.IsValid() || a.Contains(f.Relay) {
			return a.Masked()
		}
	}
	if f.Relay.IsValid() {
		return netip.PrefixFrom(f.Relay, 32)
	}
	return netip.Prefix{}
}

// poolFor picks the pool by giaddr (relayed) or by the ingress interface's
// prefixes (direct).
func (s *Server) poolFor(rt *rtState, relay netip.Addr) *pool {
	for _, p := range rt.pools {
		if relay.IsValid() {
			if p.subnet.Contains(relay) {
				return p
			}
			continue
		}
		for _, a := range s.ifAddrs {
			if p.subnet.Contains(a.Addr()) {
				return p
			}
		}
	}
	return nil
}

// reservations returns the planner's reservations by MAC and by address.
func (s *Server) reservations() (map[units.MAC]netip.Addr, map[netip.Addr]units.MAC) {
	byMAC := s.planner.Reservations()
	byIP := make(map[netip.Addr]units.MAC, len(byMAC))
	for m, a := range byMAC {
		byIP[a] = m
	}
	return byMAC, byIP
}

// hostname is the plan's host name, else the client's option 12.
func hostname(req *dhcpv4.DHCPv4, plan profiles.Plan) string {
	if plan.Hostname != "" {
		return plan.Hostname
	}
	return req.HostName()
}

// handleServer is the full DHCP server of RFC 2131: pools, reservations and
// durable leases, with boot information for PXE and HTTP-boot clients.
func (s *Server) handleServer(ctx context.Context, rt *rtState, req *dhcpv4.DHCPv4, in inbound) (*outbound, string) {
	f := factsFrom(req)
	mac := f.MAC
	p := s.poolFor(rt, f.Relay)
	if p == nil {
		s.warnLimited("nopool", "no pool for request", "mac", mac, "relay", f.Relay)
		return nil, "drop_no_pool"
	}
	f.Subnet = p.subnet
	resByMAC, resByIP := s.reservations()
	resv := resByMAC[mac]
	if resv.IsValid() && !p.subnet.Contains(resv) {
		resv = netip.Addr{} // reserved on another subnet: not here
	}
	requested := addr4(req.RequestedIPAddress())
	ciaddr := addr4(req.ClientIPAddr)
	nak := func(msg string) (*outbound, string) {
		return s.send(req, in, reply{typ: dhcpv4.MessageTypeNak, serverID: s.serverIP, message: msg})
	}

	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		plan, why := s.plan(ctx, f)
		if why != "" {
			return nil, why
		}
		ip, err := s.leases.allocate(mac, p, resv, requested, resByIP, rt.cfg.OfferHold.D())
		if err != nil {
			s.warnLimited("exhausted", "cannot offer an address", "mac", mac, "pool", p.idx, "err", err)
			return nil, "drop_pool_exhausted"
		}
		b, err := s.boot(rt, f, plan, false)
		if err != nil {
			s.warnLimited("plan", "unusable plan", "mac", mac, "err", err)
			return nil, "drop_plan_error"
		}
		return s.send(req, in, reply{typ: dhcpv4.MessageTypeOffer, serverID: s.serverIP, yiaddr: ip,
			addr: p.info(hostname(req, plan), true), boot: b})

	case dhcpv4.MessageTypeRequest:
		sid := addr4(req.ServerIdentifier())
		var target netip.Addr
		switch {
		case sid.IsValid(): // SELECTING
			if sid != s.serverIP {
				s.leases.dropOffer(mac)
				return nil, "drop_not_for_us"
			}
			target = requested
			if !target.IsValid() {
				target = ciaddr
			}
		case !ciaddr.IsValid(): // INIT-REBOOT
			target = requested
			if !target.IsValid() {
				return nil, "drop_no_address"
			}
			if !p.subnet.Contains(target) {
				return nak("wrong network")
			}
			l, ok := s.leases.lookup(target)
			known := ok && l.MAC == mac && l.State != StateDeclined
			if !known && target != resv {
				if _, ok := s.leases.addrOf(mac); ok {
					return nak("address not leased to this client")
				}
				return nil, "drop_no_record" // RFC 2131 §4.3.2: stay silent
			}
		default: // RENEWING or REBINDING
			target = ciaddr
		}
		if !target.IsValid() {
			return nil, "drop_no_address"
		}
		if resv.IsValid() && target != resv {
			return nak("client has a reserved address")
		}
		if target != resv && !p.holds(target) {
			return nak("address not in pool")
		}
		if !s.leases.canBind(target, mac, resByIP) {
			return nak("address in use")
		}
		plan, why := s.plan(ctx, f)
		if why != "" {
			return nil, why
		}
		b, err := s.boot(rt, f, plan, false)
		if err != nil {
			s.warnLimited("plan", "unusable plan", "mac", mac, "err", err)
			return nil, "drop_plan_error"
		}
		host := hostname(req, plan)
		if _, err := s.leases.bind(mac, target, host, p.leaseTime); err != nil {
			s.warnLimited("commit", "lease not committed, no ACK", "mac", mac, "ip", target, "err", err)
			return nil, "drop_commit_error"
		}
		s.log.Info("lease", "mac", mac, "ip", target, "hostname", host, "lease_time", p.leaseTime)
		return s.send(req, in, reply{typ: dhcpv4.MessageTypeAck, serverID: s.serverIP, yiaddr: target,
			ciaddr: ciaddr, addr: p.info(host, true), boot: b})

	case dhcpv4.MessageTypeDecline:
		if sid := addr4(req.ServerIdentifier()); sid.IsValid() && sid != s.serverIP {
			return nil, "drop_not_for_us"
		}
		ok, err := s.leases.decline(mac, requested, rt.cfg.DeclineHold.D())
		if err != nil {
			s.log.Error("decline not committed", "mac", mac, "ip", requested, "err", err)
		} else if ok {
			s.log.Warn("address declined: quarantined", "mac", mac, "ip", requested, "for", rt.cfg.DeclineHold.D())
		}
		return nil, "decline"

	case dhcpv4.MessageTypeRelease:
		if sid := addr4(req.ServerIdentifier()); sid.IsValid() && sid != s.serverIP {
			return nil, "drop_not_for_us"
		}
		ok, err := s.leases.release(mac, ciaddr)
		if err != nil {
			s.log.Error("release not committed", "mac", mac, "ip", ciaddr, "err", err)
		} else if ok {
			s.log.Info("lease released", "mac", mac, "ip", ciaddr)
		}
		return nil, "release"

	case dhcpv4.MessageTypeInform:
		if !ciaddr.IsValid() {
			return nil, "drop_no_address"
		}
		plan, why := s.plan(ctx, f)
		if why != "" {
			return nil, why
		}
		b, err := s.boot(rt, f, plan, false)
		if err != nil {
			return nil, "drop_plan_error"
		}
		return s.send(req, in, reply{typ: dhcpv4.MessageTypeAck, serverID: s.serverIP, ciaddr: ciaddr,
			addr: p.info("", false), boot: b})
	}
	return nil, "drop_message_type"
}
