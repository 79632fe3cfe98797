package profiles

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/bootyard/bootyard/internal/cfgerr"
)

// pattern is a user_class or vendor_class selector: an exact string or,
// with a trailing "*", a prefix; compared case-insensitively.
type pattern struct {
	set    bool
	text   string // lowercased, without the "*"
	prefix bool
}

func parsePattern(s string) (pattern, error) {
	if s == "" {
		return pattern{}, nil
	}
	p := pattern{set: true, text: strings.ToLower(s)}
	if t, ok := strings.CutSuffix(p.text, "*"); ok {
		p.text, p.prefix = t, true
	}
	if strings.ContainsAny(p.text, "*?[") {
		return pattern{}, fmt.Errorf("%q: only a trailing \"*\" is supported", s)
	}
	return p, nil
}

func (p pattern) match(s string) bool {
	if !p.set {
		return true
	}
	s = strings.ToLower(s)
	if p.prefix {
		return strings.HasPrefix(s, p.text)
	}
	return s == p.text
}

// intersects reports whether some string matches both patterns.
func (p pattern) intersects(q pattern) bool {
	switch {
	case !p.set || !q.set:
		return true
	case p.prefix && q.prefix:
		return strings.HasPrefix(p.text, q.text) || strings.HasPrefix(q.text, p.text)
	case p.prefix:
		return strings.HasPrefix(q.text, p.text)
	case q.prefix:
		return strings.HasPrefix(p.text, q.text)
	}
	return p.text == q.text
}

// sample returns a string the pattern matches.
func (p pattern) sample(def string) string {
	if !p.set {
		return def
	}
	return p.text
}

// rule is a compiled [[rule]].
type rule struct {
	idx       int
	label     string // `rule[1] "lab"`
	source    string // "rule lab" or "rule[1]"
	profile   string
	arch      map[uint16]bool // nil: any
	subnet    netip.Prefix    // invalid: any
	macPrefix []byte          // nil: any
	user      pattern
	vendor    pattern
	count     int
}

func compileRule(i int, r Rule, probs *cfgerr.List) *rule {
	key := fmt.Sprintf("rule[%d]", i)
	c := &rule{idx: i, profile: r.Profile, label: key, source: key}
	if r.Name != "" {
		c.label = fmt.Sprintf("%s %q", key, r.Name)
		c.source = "rule " + r.Name
	}
	if len(r.Arch) > 0 {
		c.arch = map[uint16]bool{}
		for j, a := range r.Arch {
			codes, err := ParseArch(a)
			if err != nil {
				probs.Addf(fmt.Sprintf("%s.arch[%d]", key, j), "%v", err)
				continue
			}
			for _, code := range codes {
				c.arch[code] = true
			}
		}
		c.count++
	}
	if r.Subnet.IsValid() {
		c.subnet = r.Subnet.Masked()
		c.count++
	}
	if r.MACPrefix != "" {
		b, err := parseMACPrefix(r.MACPrefix)
		if err != nil {
			probs.Addf(key+".mac_prefix", "%v", err)
		}
		c.macPrefix = b
		c.count++
	}
	var err error
	if c.user, err = parsePattern(r.UserClass); err != nil {
		probs.Addf(key+".user_class", "%v", err)
	}
	if c.vendor, err = parsePattern(r.VendorClass); err != nil {
		probs.Addf(key+".vendor_class", "%v", err)
	}
	if c.user.set {
		c.count++
	}
	if c.vendor.set {
		c.count++
	}
	return c
}

// parseMACPrefix reads "52:54:00", "52-54-00" or "525400": 1 to 6 whole
// bytes.
func parseMACPrefix(s string) ([]byte, error) {
	t := strings.NewReplacer(":", "", "-", "", ".", "").Replace(strings.TrimSpace(s))
	b, err := hex.DecodeString(t)
	if err != nil || len(b) == 0 || len(b) > 6 {
		return []byte{}, fmt.Errorf("invalid MAC prefix %q: want 1 to 6 hex bytes such as 52:54:00", s)
	}
	return b, nil
}

// location is the address a subnet selector tests: the client's own address
// when known, else the relay's, else the facts' subnet address.
func location(f Facts) (netip.Addr, netip.Prefix) {
	switch {
	case f.ClientAddr.IsValid() && !f.ClientAddr.IsUnspecified():
		return f.ClientAddr.Unmap(), netip.Prefix{}
	case f.Relay.IsValid() && !f.Relay.IsUnspecified():
		return f.Relay.Unmap(), netip.Prefix{}
	}
	return netip.Addr{}, f.Subnet
}

func (r *rule) matches(f Facts, code uint16) bool {
	if r.arch != nil && !r.arch[code] {
		return false
	}
	if r.subnet.IsValid() {
		a, p := location(f)
		switch {
		case a.IsValid():
			if !r.subnet.Contains(a) {
				return false
			}
		case p.IsValid():
			if p.Bits() < r.subnet.Bits() || !r.subnet.Contains(p.Addr().Unmap()) {
				return false
			}
		default:
			return false
		}
	}
	if r.macPrefix != nil {
		if len(r.macPrefix) == 0 || string(f.MAC[:len(r.macPrefix)]) != string(r.macPrefix) {
			return false
		}
	}
	return r.user.match(f.UserClass) && r.vendor.match(f.VendorClass)
}

// overlap reports whether some client could match both rules, and if so
// describes one (for the tie message). Each selector is tested on its own,
// so the answer errs on the side of "yes": a tie it reports might need an
// unusual client, but a tie it misses cannot happen.
func overlap(a, b *rule) (string, bool) {
	var why []string
	if a.arch != nil && b.arch != nil {
		var common []uint16
		for c := range a.arch {
			if b.arch[c] {
				common = append(common, c)
			}
		}
		if len(common) == 0 {
			return "", false
		}
		sort.Slice(common, func(i, j int) bool { return common[i] < common[j] })
		why = append(why, "arch "+string(ArchFirmware(common[0])))
	}
	if a.subnet.IsValid() && b.subnet.IsValid() {
		if !a.subnet.Overlaps(b.subnet) {
			return "", false
		}
		small := a.subnet
		if b.subnet.Bits() > small.Bits() {
			small = b.subnet
		}
		why = append(why, "address in "+small.String())
	}
	if a.macPrefix != nil && b.macPrefix != nil {
		short, long := a.macPrefix, b.macPrefix
		if len(short) > len(long) {
			short, long = long, short
		}
		if string(long[:len(short)]) != string(short) {
			return "", false
		}
		why = append(why, "MAC "+macPrefixString(long))
	}
	if !a.user.intersects(b.user) || !a.vendor.intersects(b.vendor) {
		return "", false
	}
	if a.user.set || b.user.set {
		why = append(why, "user class matching both")
	}
	if a.vendor.set || b.vendor.set {
		why = append(why, "vendor class matching both")
	}
	if len(why) == 0 {
		return "any client", true
	}
	return "a client with " + strings.Join(why, ", "), true
}

func macPrefixString(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}
