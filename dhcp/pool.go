package dhcp

import (
	"fmt"
	"net/netip"
	"time"
)

// pool is a [[dhcp.pool]] resolved against the interface.
type pool struct {
	idx         int
	first, last netip.Addr
	subnet      netip.Prefix
	router      netip.Addr
	dns         []netip.Addr
	domain      string
	leaseTime   time.Duration
	exclude     map[netip.Addr]bool // our own address and the router
}

// inRange reports whether a lies in the pool's range.
func (p *pool) inRange(a netip.Addr) bool {
	return a.Is4() && !a.Less(p.first) && !p.last.Less(a)
}

// holds reports whether a is an address this pool may hand out by range.
func (p *pool) holds(a netip.Addr) bool { return p.inRange(a) && p.usable(a) }

// usable reports whether a is a host address of the subnet that is neither
// ours nor the router's.
func (p *pool) usable(a netip.Addr) bool {
	if !p.subnet.Contains(a) || p.exclude[a] {
		return false
	}
	if p.subnet.Bits() <= 30 {
		if a == p.subnet.Masked().Addr() || a == lastAddr(p.subnet) {
			return false
		}
	}
	return true
}

// info returns the address options of the pool for a reply.
func (p *pool) info(hostname string, withLease bool) *addrInfo {
	a := &addrInfo{subnet: p.subnet, router: p.router, dns: p.dns, domain: p.domain, hostname: hostname}
	if withLease {
		a.leaseTime = p.leaseTime
	}
	return a
}

// lastAddr returns the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// resolvePools builds the pools of cfg. A pool without a subnet takes the
// interface prefix that holds its range.
func resolvePools(cfg Config, ifAddrs []netip.Prefix, server netip.Addr) ([]*pool, error) {
	var out []*pool
	for i, pc := range cfg.Pools {
		first, last, err := ParseRange(pc.Range)
		if err != nil {
			return nil, fmt.Errorf("dhcp: pool[%d]: %w", i, err)
		}
		p := &pool{idx: i, first: first, last: last, router: pc.Router.Addr, domain: pc.Domain,
			leaseTime: pc.LeaseTime.D(), exclude: map[netip.Addr]bool{}}
		if p.leaseTime <= 0 {
			p.leaseTime = DefaultLeaseTime
		}
		for _, d := range pc.DNS {
			p.dns = append(p.dns, d.Addr)
		}
		if pc.Subnet.IsValid() {
			p.subnet = pc.Subnet.Masked()
		} else {
			for _, a := range ifAddrs {
				if a.Contains(first) && a.Contains(last) {
					p.subnet = a.Masked()
					break
				}
			}
			if !p.subnet.IsValid() {
				return nil, fmt.Errorf("dhcp: pool[%d]: range %s is on no prefix of the interface: set subnet (needed for pools served through a relay)", i, pc.Range)
			}
		}
		if server.IsValid() {
			p.exclude[server] = true
		}
		for _, a := range ifAddrs {
			p.exclude[a.Addr()] = true
		}
		if p.router.IsValid() {
			p.exclude[p.router] = true
		}
		out = append(out, p)
	}
	return out, nil
}
