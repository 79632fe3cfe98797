// Package units holds the value types operators write as text in the
// configuration file: sizes, durations, port ranges, CIDR prefixes, MAC
// addresses and listen addresses.
//
// Every type implements encoding.TextUnmarshaler, so the TOML decoder reports a
// malformed value together with its line, and encoding.TextMarshaler, so a
// decoded configuration can be printed back. The zero value of each type is
// meaningful and documented on the type.
package units

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count written as "16MiB", "1.5GB", "512" or "0".
// Binary suffixes (KiB, MiB, GiB, TiB) are powers of 1024, decimal suffixes
// (kB/KB, MB, GB, TB) powers of 1000; "B" or no suffix means bytes. Zero means
// "unlimited" wherever a Size is a limit.
type Size int64

var sizeSuffixes = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "MiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize parses a size such as "16MiB" or "1.5GB".
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	lower := strings.ToLower(t)
	mult := 1.0
	for _, sf := range sizeSuffixes {
		if strings.HasSuffix(lower, sf.suffix) {
			mult = sf.mult
			lower = strings.TrimSpace(strings.TrimSuffix(lower, sf.suffix))
			break
		}
	}
	if lower == "" {
		return 0, fmt.Errorf("invalid size %q: no number", s)
	}
	f, err := strconv.ParseFloat(lower, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as 512, 16MiB or 1.5GB", s)
	}
	if f < 0 {
		return 0, fmt.Errorf("invalid size %q: negative", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(v), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String formats the size with the largest binary unit that divides it.
func (s Size) String() string {
	units := []struct {
		name string
		v    int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}}
	for _, u := range units {
		if s != 0 && int64(s)%u.v == 0 {
			return strconv.FormatInt(int64(s)/u.v, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// Duration is a time.Duration written as "30s", "12h" or "1h30m". A plain
// "0" is accepted and means zero. Negative durations are refused.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number with a unit such as 500ms, 30s, 5m or 12h", string(b))
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: negative", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String formats the duration like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// PortRange is an inclusive range of TCP or UDP ports written as
// "30000-30100" or as a single port "30000". The zero value is empty.
type PortRange struct {
	First, Last uint16
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PortRange) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		*p = PortRange{}
		return nil
	}
	lo, hi, found := strings.Cut(s, "-")
	first, err := parsePort(lo)
	if err != nil {
		return fmt.Errorf("invalid port range %q: %v", s, err)
	}
	last := first
	if found {
		if last, err = parsePort(hi); err != nil {
			return fmt.Errorf("invalid port range %q: %v", s, err)
		}
	}
	if first == 0 {
		return fmt.Errorf("invalid port range %q: port 0 is not a port", s)
	}
	if last < first {
		return fmt.Errorf("invalid port range %q: inverted (first %d > last %d)", s, first, last)
	}
	*p = PortRange{First: first, Last: last}
	return nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", strings.TrimSpace(s))
	}
	return uint16(n), nil
}

// MarshalText implements encoding.TextMarshaler.
func (p PortRange) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// String formats the range as "first-last".
func (p PortRange) String() string {
	if p.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d-%d", p.First, p.Last)
}

// IsZero reports whether the range is empty.
func (p PortRange) IsZero() bool { return p.First == 0 && p.Last == 0 }

// Len returns the number of ports in the range.
func (p PortRange) Len() int {
	if p.IsZero() {
		return 0
	}
	return int(p.Last) - int(p.First) + 1
}

// Contains reports whether port lies in the range.
func (p PortRange) Contains(port uint16) bool {
	return !p.IsZero() && port >= p.First && port <= p.Last
}

// Prefix is a CIDR prefix such as "10.0.0.0/24" or "fd00::/64". A bare
// address is read as a single-host prefix (/32 or /128). The zero value is
// invalid and means "not set".
type Prefix struct{ netip.Prefix }

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Prefix) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		p.Prefix = netip.Prefix{}
		return nil
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("invalid CIDR %q: want a prefix such as 10.0.0.0/24", s)
		}
		p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("invalid CIDR %q: want a prefix such as 10.0.0.0/24", s)
	}
	if v.Masked() != v {
		return fmt.Errorf("invalid CIDR %q: host bits set (did you mean %s?)", s, v.Masked())
	}
	p.Prefix = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (p Prefix) MarshalText() ([]byte, error) {
	if !p.IsValid() {
		return []byte(""), nil
	}
	return []byte(p.String()), nil
}

// Addr is an IP address written as text ("10.0.0.2", "::1"). The zero value
// is invalid and means "not set".
type Addr struct{ netip.Addr }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Addr) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "" {
		a.Addr = netip.Addr{}
		return nil
	}
	v, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("invalid IP address %q", s)
	}
	a.Addr = v.Unmap()
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) {
	if !a.IsValid() {
		return []byte(""), nil
	}
	return []byte(a.String()), nil
}

// MAC is a 48-bit Ethernet hardware address written as "52:54:00:12:34:56",
// "52-54-00-12-34-56" or "5254.0012.3456". It prints in lowercase with colons.
type MAC [6]byte

// ParseMAC parses a 48-bit MAC address.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("invalid MAC address %q: want six hex bytes such as 52:54:00:12:34:56", s)
	}
	var m MAC
	copy(m[:], hw)
	return m, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// String formats the address as lowercase colon-separated hex.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Dashed formats the address as lowercase dash-separated hex, the form used
// in rendered file names (pxelinux.cfg/01-aa-bb-cc-dd-ee-ff).
func (m MAC) Dashed() string { return strings.ReplaceAll(m.String(), ":", "-") }

// IsZero reports whether m is the all-zero address (not set).
func (m MAC) IsZero() bool { return m == MAC{} }

// ListenAddr is a "host:port" listen address. The host may be empty (all
// addresses), an IPv4 or IPv6 literal; the port is required. The zero value
// means "not set".
type ListenAddr struct {
	Host string // empty for all addresses
	Port uint16
	set  bool
}

// ParseListenAddr parses a listen address such as ":69" or "127.0.0.1:2121".
func ParseListenAddr(s string) (ListenAddr, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return ListenAddr{}, nil
	}
	host, port, err := net.SplitHostPort(t)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("invalid listen address %q: want host:port such as \":69\" or \"127.0.0.1:2121\"", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return ListenAddr{}, fmt.Errorf("invalid listen address %q: host %q is not an IP address", s, host)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("invalid listen address %q: port %q is not a number 0-65535", s, port)
	}
	return ListenAddr{Host: host, Port: uint16(n), set: true}, nil
}

// MustListenAddr is ParseListenAddr for constants; it panics on error.
func MustListenAddr(s string) ListenAddr {
	a, err := ParseListenAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *ListenAddr) UnmarshalText(b []byte) error {
	v, err := ParseListenAddr(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (l ListenAddr) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// String formats the address as host:port, or "" when not set.
func (l ListenAddr) String() string {
	if !l.set {
		return ""
	}
	return net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port)))
}

// IsZero reports whether the address is not set.
func (l ListenAddr) IsZero() bool { return !l.set }

// IsWildcard reports whether the address listens on every local address.
func (l ListenAddr) IsWildcard() bool {
	if l.Host == "" {
		return true
	}
	a, err := netip.ParseAddr(l.Host)
	return err == nil && a.IsUnspecified()
}

// Overlaps reports whether two listen addresses of the same transport would
// conflict: same port and the same host, or either on the wildcard address.
// Port 0 (pick any) never conflicts.
func (l ListenAddr) Overlaps(o ListenAddr) bool {
	if l.IsZero() || o.IsZero() || l.Port == 0 || o.Port == 0 || l.Port != o.Port {
		return false
	}
	if l.IsWildcard() || o.IsWildcard() {
		return true
	}
	a, _ := netip.ParseAddr(l.Host)
	b, _ := netip.ParseAddr(o.Host)
	return a.Unmap() == b.Unmap()
}
