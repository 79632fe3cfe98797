package profiles

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/bootyard/bootyard/internal/units"
)

// sampleServer is the .Server of compile-time test renders (TEST-NET-1).
var sampleServer = netip.MustParseAddr("192.0.2.1")

// testRender renders every template once per machine and rule that uses
// it (and once with a sample client for profiles nobody uses yet), so that
// templates that cannot render are config errors. It also indexes the
// extra files rendered for known machines.
func (c *compiler) testRender() {
	c.seen = map[string]bool{}
	s := c.set
	macs := make([]units.MAC, 0, len(s.machines))
	for mac := range s.machines {
		macs = append(macs, mac)
	}
	sort.Slice(macs, func(i, j int) bool { return s.machines[macs[i]].idx < s.machines[macs[j]].idx })
	owner := map[string]string{}
	for _, mac := range macs {
		m := s.machines[mac]
		d := s.decide(Facts{MAC: mac, HasArch: true, Arch: 7, Server: sampleServer})
		who := fmt.Sprintf("machine[%d] %s", m.idx, mac)
		files := c.renderAll(d, who)
		for _, r := range files {
			if _, ok := parseName(r.Name); ok {
				c.probs.Addf(fmt.Sprintf("machine[%d].profile", m.idx), "profile %s renders %q for this machine, a built-in rendered name", d.profile, r.Name)
				continue
			}
			if prev, dup := owner[r.Name]; dup && !c.seen["dup "+r.Name] && !isStatic(s, r.Name) {
				c.seen["dup "+r.Name] = true
				c.warnf("%s and %s both get %q: it is served to the one whose ip matches the requesting address", prev, who, r.Name)
			}
			owner[r.Name] = who
			s.files[r.Name] = append(s.files[r.Name], m)
		}
	}
	for _, r := range s.rules {
		f := ruleSample(r)
		d := s.decide(f)
		d.profile, d.source, d.rule, d.tied, d.mach = r.profile, r.source, r, nil, nil
		c.renderAll(d, r.label)
	}
	names := make([]string, 0, len(s.profiles))
	for name := range s.profiles {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return s.profiles[names[i]].idx < s.profiles[names[j]].idx })
	for _, name := range names {
		p := s.profiles[name]
		if p.referenced {
			continue
		}
		c.warnf("profile[%d]: profile %q is not used by any machine or rule", p.idx, name)
		mac := units.MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
		d := decision{profile: name, source: "sample", facts: Facts{MAC: mac, HasArch: true, Arch: 7, Server: sampleServer}}
		d.fw, d.plat, d.code, d.http = classify(d.facts)
		c.renderAll(d, "a sample client")
	}
}

func isStatic(s *Set, name string) bool { return len(s.static[name]) > 0 }

// renderAll renders everything a decision produces, recording failures as
// problems keyed by the failing template's key (once per key).
func (c *compiler) renderAll(d decision, who string) []Rendered {
	s := c.set
	if d.profile == ProfileIgnore || d.profile == ProfileLocal || d.profile == "" {
		return nil
	}
	var out []Rendered
	for _, k := range []nameKind{kindIPXE, kindGRUB, kindPXELinux} {
		if _, err := s.renderKind(k, d, sampleServer); err != nil {
			c.renderProblem(err, who)
			return nil
		}
	}
	ex, err := s.extras(d, sampleServer)
	if err != nil {
		c.renderProblem(err, who)
		return nil
	}
	seen := map[string]bool{}
	for _, r := range ex {
		if seen[r.Name] {
			c.renderProblem(fmt.Errorf("profiles: profile[%d].file: two files render the same name %q", s.profiles[d.profile].idx, r.Name), who)
			continue
		}
		seen[r.Name] = true
		if _, ok := parseName(r.Name); ok {
			c.renderProblem(fmt.Errorf("profiles: profile[%d].file: %q collides with a built-in rendered name", s.profiles[d.profile].idx, r.Name), who)
			continue
		}
		out = append(out, r)
	}
	return out
}

// renderProblem turns "profiles: KEY: msg" into a problem on KEY.
func (c *compiler) renderProblem(err error, who string) {
	msg := strings.TrimPrefix(err.Error(), "profiles: ")
	key, rest, ok := strings.Cut(msg, ": ")
	if !ok {
		key, rest = "profile", msg
	}
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	c.probs.Addf(key, "%s (rendering for %s)", rest, who)
}

// ruleSample makes up a client that a rule matches, for test renders.
func ruleSample(r *rule) Facts {
	f := Facts{HasArch: true, Arch: 7, Server: sampleServer}
	f.MAC = units.MAC{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	copy(f.MAC[:], r.macPrefix)
	if r.arch != nil {
		codes := make([]uint16, 0, len(r.arch))
		for code := range r.arch {
			codes = append(codes, code)
		}
		sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
		f.Arch = codes[0]
	}
	if r.subnet.IsValid() {
		f.ClientAddr = r.subnet.Addr()
		if n := f.ClientAddr.Next(); n.IsValid() && r.subnet.Contains(n) {
			f.ClientAddr = n
		}
	}
	f.UserClass = r.user.sample("")
	f.VendorClass = r.vendor.sample(vendorClassFor(f.Arch))
	return f
}
