package units

import (
	"strings"
	"testing"
)

func TestSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		err  string
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"16MiB", 16 << 20, ""},
		{"1.5GB", 1500000000, ""},
		{"1.5 GiB", 3 << 29, ""},
		{"10k", 10240, ""},
		{"7B", 7, ""},
		{"1TiB", 1 << 40, ""},
		{"", 0, "empty"},
		{"MiB", 0, "no number"},
		{"12XB", 0, "want a number"},
		{"-1MiB", 0, "negative"},
		{"1e30TB", 0, "too large"},
		{"NaN", 0, "want a number"},
	}
	for _, tt := range tests {
		var s Size
		err := s.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Size(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || s != tt.want {
			t.Errorf("Size(%q) = %d, %v; want %d", tt.in, s, err, tt.want)
		}
	}
	if got := Size(16 << 20).String(); got != "16MiB" {
		t.Errorf("String = %q", got)
	}
}

func TestDuration(t *testing.T) {
	for in, ok := range map[string]bool{"30s": true, "0": true, "1h30m": true, "soon": false, "-5s": false, "5": false} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); (err == nil) != ok {
			t.Errorf("Duration(%q) error = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestPortRange(t *testing.T) {
	tests := []struct {
		in          string
		first, last uint16
		err         string
	}{
		{"30000-30100", 30000, 30100, ""},
		{"21", 21, 21, ""},
		{" 1 - 2 ", 1, 2, ""},
		{"30100-30000", 0, 0, "inverted"},
		{"0-10", 0, 0, "port 0"},
		{"1-70000", 0, 0, "not a port"},
		{"a-b", 0, 0, "not a port"},
	}
	for _, tt := range tests {
		var p PortRange
		err := p.UnmarshalText([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("PortRange(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || p.First != tt.first || p.Last != tt.last {
			t.Errorf("PortRange(%q) = %v, %v", tt.in, p, err)
		}
	}
	p := PortRange{10, 12}
	if !p.Contains(11) || p.Contains(13) || p.Len() != 3 {
		t.Error("Contains/Len wrong")
	}
}

func TestPrefixAddrMAC(t *testing.T) {
	var p Prefix
	if err := p.UnmarshalText([]byte("10.0.0.0/24")); err != nil || p.String() != "10.0.0.0/24" {
		t.Errorf("prefix: %v %v", p, err)
	}
	if err := p.UnmarshalText([]byte("10.0.0.1")); err != nil || p.String() != "10.0.0.1/32" {
		t.Errorf("bare address: %v %v", p, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.1/24", "x"} {
		if err := p.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	for in, want := range map[string]string{"52:54:00:12:34:56": "52:54:00:12:34:56", "52-54-00-AB-34-56": "52:54:00:ab:34:56", "5254.0012.3456": "52:54:00:12:34:56"} {
		m, err := ParseMAC(in)
		if err != nil || m.String() != want {
			t.Errorf("MAC(%q) = %v, %v", in, m, err)
		}
	}
	if m, _ := ParseMAC("52:54:00:12:34:56"); m.Dashed() != "52-54-00-12-34-56" {
		t.Error("Dashed")
	}
	for _, bad := range []string{"52:54:00:12:34", "00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00", "zz"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("MAC %q accepted", bad)
		}
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{":69": ":69", "127.0.0.1:2121": "127.0.0.1:2121", "[::1]:21": "[::1]:21", "": ""} {
		l, err := ParseListenAddr(in)
		if err != nil || l.String() != want {
			t.Errorf("ListenAddr(%q) = %q, %v", in, l, err)
		}
	}
	for _, bad := range []string{"localhost:21", "21", ":x", ":70000"} {
		if _, err := ParseListenAddr(bad); err == nil {
			t.Errorf("ListenAddr(%q) accepted", bad)
		}
	}
	a, b := MustListenAddr(":21"), MustListenAddr("127.0.0.1:21")
	if !a.Overlaps(b) || b.Overlaps(MustListenAddr("127.0.0.2:21")) || b.Overlaps(MustListenAddr("127.0.0.1:22")) {
		t.Error("Overlaps wrong")
	}
}

// FuzzUnits: no text makes a parser panic, and accepted values round-trip.
func FuzzUnits(f *testing.F) {
	for _, s := range []string{"16MiB", "1.5GB", "30s", "30000-30100", "10.0.0.0/24", "52:54:00:12:34:56", ":69", "[::1]:21", "0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var sz Size
		if sz.UnmarshalText([]byte(s)) == nil && sz < 0 {
			t.Fatalf("negative size from %q", s)
		}
		var d Duration
		_ = d.UnmarshalText([]byte(s))
		var p PortRange
		if p.UnmarshalText([]byte(s)) == nil && !p.IsZero() && p.First > p.Last {
			t.Fatalf("inverted range from %q", s)
		}
		var pr Prefix
		_ = pr.UnmarshalText([]byte(s))
		if m, err := ParseMAC(s); err == nil {
			if m2, err := ParseMAC(m.String()); err != nil || m2 != m {
				t.Fatalf("MAC round trip of %q failed", s)
			}
		}
		if l, err := ParseListenAddr(s); err == nil {
			if l2, err := ParseListenAddr(l.String()); err != nil || l2 != l {
				t.Fatalf("listen round trip of %q: %q %v", s, l.String(), err)
			}
		}
	})
}
