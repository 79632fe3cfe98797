package dhcp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/bootyard/bootyard/internal/cfgerr"
	"github.com/bootyard/bootyard/internal/units"
)

// Modes of the DHCP service.
const (
	ModeProxy  = "proxy"  // answer PXE clients only, never hand out addresses
	ModeServer = "server" // full DHCP server with pools and leases
	ModeOff    = "off"
)

// Config is the [dhcp] section of the configuration file.
type Config struct {
	// Mode is proxy (default), server or off.
	Mode string `toml:"mode"`
	// Interface is the network interface to serve; required unless off.
	Interface string `toml:"interface"`
	// ServerAddress is announced as next-server and option 54. Default: the
	// interface's first IPv4 address.
	ServerAddress units.Addr `toml:"server_address"`
	// Port is the DHCP server port. Default 67 (change only for tests).
	Port int `toml:"port"`
	// ProxyPort is the PXE boot-server port answered in proxy mode.
	// Default 4011; 0 turns it off.
	ProxyPort int `toml:"proxy_port"`
	// Pools are the address pools of server mode.
	Pools []Pool `toml:"pool"`
	// ProxyStrategy chooses, per firmware name, how a PXE client that gets
	// its address elsewhere learns its boot file: "direct" puts option 43
	// (PXE discovery control: use the boot file in this offer) in the reply,
	// "bootserver" leaves option 43 out so the client asks the boot server
	// on UDP 4011. A firmware not listed gets the built-in default:
	// bootserver for efi-ia32, efi-x64, efi-bc and efi-arm64, direct for
	// everything else.
	ProxyStrategy map[string]string `toml:"proxy_strategy"`
	// OfferHold is how long an OFFER reserves its address for the client
	// (server mode). Default "10s".
	OfferHold units.Duration `toml:"offer_hold"`
	// DeclineHold is how long an address a client DECLINEd stays
	// quarantined. Default "10m".
	DeclineHold units.Duration `toml:"decline_hold"`
	// RatePerMAC is the number of requests per second one MAC address may
	// make (burst alike); more are dropped and counted. Default 10, 0 =
	// unlimited.
	RatePerMAC int `toml:"rate_per_mac"`
	// Workers is the number of packets handled at once. Default 256: in
	// server mode every REQUEST waits for its lease to be committed (one
	// fsync, shared by the commits in flight through bbolt's Batch), so
	// the worker count bounds how many ACKs share one fsync. Measured with
	// perfdhcp (bench/RESULTS.md): 16 workers held 1,000 DORA/s without
	// drops, 256 held 8,000/s (Kea memfile: 6,000/s). Idle workers cost a
	// goroutine each.
	Workers int `toml:"workers"`
}

// Proxy strategies (values of proxy_strategy).
const (
	StrategyDirect     = "direct"
	StrategyBootServer = "bootserver"
)

// knownFirmware are the firmware names proxy_strategy accepts.
var knownFirmware = []string{"bios", "efi-ia32", "efi-x64", "efi-bc", "efi-arm64", "efi-x64-http", "efi-arm64-http", "ipxe"}

// strategyFor returns the proxy strategy of a firmware name.
func (c *Config) strategyFor(fw string) string {
	if fw == "efi-bc" {
		if v, ok := c.ProxyStrategy[fw]; ok {
			return v
		}
		fw = "efi-x64" // arch 7 and 9 are the same firmware (RFC 4578 erratum)
	}
	if v, ok := c.ProxyStrategy[fw]; ok {
		return v
	}
	switch fw {
	case "efi-ia32", "efi-x64", "efi-arm64":
		return StrategyBootServer
	}
	return StrategyDirect
}

// Pool is one [[dhcp.pool]] block.
type Pool struct {
	// Range is the inclusive address range handed out, "10.0.0.100-10.0.0.200".
	Range string `toml:"range"`
	// Subnet is the prefix clients of this pool live on. Default: the
	// interface prefix that holds the range.
	Subnet units.Prefix `toml:"subnet"`
	// Router is option 3. Optional.
	Router units.Addr `toml:"router"`
	// DNS is option 6. Optional.
	DNS []units.Addr `toml:"dns"`
	// Domain is option 15. Optional.
	Domain string `toml:"domain"`
	// LeaseTime is the lease duration. Default "12h".
	LeaseTime units.Duration `toml:"lease_time"`
}

// DefaultConfig returns the documented defaults of the [dhcp] section.
func DefaultConfig() Config {
	return Config{
		Mode:        ModeProxy,
		Port:        67,
		ProxyPort:   4011,
		OfferHold:   units.Duration(10 * time.Second),
		DeclineHold: units.Duration(10 * time.Minute),
		RatePerMAC:  10,
		Workers:     256,
	}
}

// DefaultLeaseTime is a pool's lease time when none is configured.
const DefaultLeaseTime = 12 * time.Hour

// ParseRange parses an inclusive IPv4 range "a.b.c.d-e.f.g.h".
func ParseRange(s string) (first, last netip.Addr, err error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return first, last, fmt.Errorf("invalid range %q: want first-last such as 10.0.0.100-10.0.0.200", s)
	}
	if first, err = netip.ParseAddr(strings.TrimSpace(lo)); err != nil || !first.Is4() {
		return first, last, fmt.Errorf("invalid range %q: %q is not an IPv4 address", s, strings.TrimSpace(lo))
	}
	if last, err = netip.ParseAddr(strings.TrimSpace(hi)); err != nil || !last.Is4() {
		return first, last, fmt.Errorf("invalid range %q: %q is not an IPv4 address", s, strings.TrimSpace(hi))
	}
	if last.Less(first) {
		return first, last, fmt.Errorf("invalid range %q: inverted (%s > %s)", s, first, last)
	}
	return first, last, nil
}

// Validate checks the section. Keys are relative to the section. The section
// of a service that is off is only type-checked.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	switch c.Mode {
	case ModeProxy, ModeServer, ModeOff:
	default:
		l.Addf("mode", "unknown mode %q (want proxy, server or off)", c.Mode)
		return l
	}
	if c.Mode == ModeOff {
		return l
	}
	if c.Interface == "" {
		l.Addf("interface", "required unless mode = \"off\" (the interface PXE clients are on)")
	}
	if c.ServerAddress.IsValid() && !c.ServerAddress.Is4() {
		l.Addf("server_address", "%s is not an IPv4 address", c.ServerAddress)
	}
	if c.Port < 0 || c.Port > 65535 { // 0 = any free port (tests)
		l.Addf("port", "%d is not a port", c.Port)
	}
	if c.ProxyPort < 0 || c.ProxyPort > 65535 {
		l.Addf("proxy_port", "%d is not a port", c.ProxyPort)
	}
	for fw, v := range c.ProxyStrategy {
		if !slices.Contains(knownFirmware, fw) {
			l.Addf("proxy_strategy."+fw, "unknown firmware %q (want one of %s)", fw, strings.Join(knownFirmware, ", "))
		}
		if v != StrategyDirect && v != StrategyBootServer {
			l.Addf("proxy_strategy."+fw, "unknown strategy %q (want %q or %q)", v, StrategyDirect, StrategyBootServer)
		}
	}
	if c.RatePerMAC < 0 {
		l.Addf("rate_per_mac", "%d is negative (0 means unlimited)", c.RatePerMAC)
	}
	if c.Workers < 0 || c.Workers > 1024 {
		l.Addf("workers", "%d is out of range 1-1024 (0 means the default 256)", c.Workers)
	}
	if c.Mode == ModeServer && len(c.Pools) == 0 {
		l.Addf("pool", "server mode needs at least one [[dhcp.pool]]")
	}
	type span struct {
		i           int
		first, last netip.Addr
	}
	var spans []span
	for i, p := range c.Pools {
		k := fmt.Sprintf("pool[%d]", i)
		first, last, err := ParseRange(p.Range)
		if err != nil {
			l.Addf(k+".range", "%v", err)
			continue
		}
		if p.Subnet.IsValid() && (!p.Subnet.Contains(first) || !p.Subnet.Contains(last)) {
			l.Addf(k+".range", "%s is not inside subnet %s", p.Range, p.Subnet)
		}
		if p.Router.IsValid() && !p.Router.Is4() {
			l.Addf(k+".router", "%s is not an IPv4 address", p.Router)
		}
		for _, d := range p.DNS {
			if !d.Is4() {
				l.Addf(k+".dns", "%s is not an IPv4 address", d)
			}
		}
		for _, s := range spans {
			if !(last.Less(s.first) || s.last.Less(first)) {
				l.Addf(k+".range", "overlaps pool[%d]", s.i)
			}
		}
		spans = append(spans, span{i, first, last})
	}
	return l
}
