package profiles

import (
	"fmt"
	"io/fs"
	"net/netip"
	"strings"

	"github.com/bootyard/bootyard/internal/units"
)

// ErrIgnored is returned by RenderFile for a generated name whose client is
// ignored or unknown. It wraps fs.ErrNotExist: serve "file not found".
var ErrIgnored = fmt.Errorf("profiles: no boot plan for this client: %w", fs.ErrNotExist)

// ErrAmbiguous is returned by RenderFile when the name does not tell enough
// about the client to pick one profile (see the package doc). It wraps
// fs.ErrNotExist too; log it, it points at a configuration to fix.
var ErrAmbiguous = fmt.Errorf("profiles: ambiguous client: %w", fs.ErrNotExist)

// decision is the outcome of the precedence rules for one client.
type decision struct {
	profile string   // profile name, "local", "ignore" or "" (nothing matched)
	source  string   // "machine …", "rule …", "default"
	mach    *machine // the machine entry, when matched by MAC
	rule    *rule    // the winning rule
	tied    []*rule  // more than one rule at the top count (cannot happen in a compiled Set)
	facts   Facts    // the facts decided on
	code    uint16   // option 93 code (0 when absent)
	fw      Firmware // firmware incl. ipxe
	plat    Firmware // platform from option 93
	http    bool     // HTTP boot
	// archUnknown: the request did not tell the firmware (a rendered file
	// fetched after DHCP); .Arch renders as "".
	archUnknown bool
}

func (d decision) key() string { return d.profile + "\x00" + d.source }

// decide applies the precedence: an exact [[machine]] by MAC (and UUID when
// both sides have one) beats every rule; among matching rules the one with
// the most selectors wins; nothing matching means ignore.
func (s *Set) decide(f Facts) decision {
	d := decision{facts: f}
	d.fw, d.plat, d.code, d.http = classify(f)
	if m := s.machines[f.MAC]; m != nil && !f.MAC.IsZero() {
		if m.uuid == nil || len(f.UUID) == 0 || uuidMatches(m.uuid, f.UUID) {
			d.mach = m
			d.profile = m.cfg.Profile
			d.source = "machine " + f.MAC.String()
			return d
		}
	}
	best := -1
	for _, r := range s.rules {
		if !r.matches(f, d.code) {
			continue
		}
		switch {
		case r.count > best:
			best = r.count
			d.rule = r
			d.tied = nil
		case r.count == best:
			d.tied = append(d.tied, r)
		}
	}
	if d.rule != nil {
		d.profile = d.rule.profile
		d.source = d.rule.source
		return d
	}
	d.source = "default"
	return d
}

// Match decides what a client gets. It never returns an error for an
// unknown client (that is Action Ignore); errors are reserved for a
// template that fails at run time, which Compile's test renders make rare.
func (s *Set) Match(f Facts) (Plan, error) {
	d := s.decide(f)
	if len(d.tied) > 0 {
		return Plan{Action: Ignore, Source: d.source, Firmware: d.fw, Arch: d.plat,
			Reason: fmt.Sprintf("rules %s and %s tie", d.rule.label, d.tied[0].label)}, nil
	}
	return s.plan(d)
}

func (s *Set) plan(d decision) (Plan, error) {
	p := Plan{Source: d.source, Firmware: d.fw, Arch: d.plat, HTTP: d.http, Profile: d.profile}
	if d.mach != nil {
		p.Hostname = d.mach.cfg.Hostname
		p.IP = s.reservations[d.mach.cfg.MAC]
	}
	switch d.profile {
	case "":
		p.Action = Ignore
		p.Reason = "no machine entry and no rule matches"
		return p, nil
	case ProfileIgnore:
		p.Action, p.Profile = Ignore, ""
		p.Reason = "profile ignore"
		return p, nil
	case ProfileLocal:
		p.Action, p.Profile = Local, ""
		p.Reason = "profile local: boot from the local disk"
		return p, nil
	}
	pr := s.profiles[d.profile]
	if pr == nil { // cannot happen in a compiled Set
		p.Action = Ignore
		p.Reason = fmt.Sprintf("unknown profile %q", d.profile)
		return p, nil
	}
	p.Image = pr.cfg.Image
	if d.fw == IPXE {
		if v, ok := pr.cfg.Boot[string(IPXE)]; ok {
			p.BootFile = v
		} else {
			p.BootFile = IPXEName(d.facts.MAC)
		}
	} else {
		p.BootFile = bootFile(pr.cfg.Boot, d.plat, d.code)
	}
	if p.BootFile == "" {
		p.Action = Ignore
		p.Reason = fmt.Sprintf("profile %s has no boot file for firmware %s (set boot.%s)", pr.cfg.Name, d.plat, d.plat)
		return p, nil
	}
	data, err := s.data(d, pr, d.facts.Server)
	if err != nil {
		return Plan{}, err
	}
	p.Kernel, p.Initrds, p.Cmdline = data.Kernel, data.Initrd, data.Cmdline
	return p, nil
}

// servedPath is where a kernel or initrd of a profile is served.
func servedPath(pr *Profile, p string) string {
	if pr.Image == "" {
		return p
	}
	return "images/" + pr.Image + "/" + p
}

// data builds the template data for a decision and renders the cmdline.
func (s *Set) data(d decision, pr *profile, server netip.Addr) (*Data, error) {
	f := d.facts
	data := &Data{
		Profile: pr.cfg.Name,
		Image:   pr.cfg.Image,
		Files:   append([]string(nil), pr.files...),
		Vars:    map[string]string{},
	}
	if server.IsValid() {
		data.Server = server.String()
	}
	if !f.MAC.IsZero() {
		data.MAC, data.MACDashed, data.Hostname = f.MAC.String(), f.MAC.Dashed(), f.MAC.Dashed()
	}
	if !d.archUnknown {
		data.Arch = string(d.plat)
	}
	if pr.cfg.Image != "" {
		data.ImageDir = "images/" + pr.cfg.Image
	}
	for k, v := range pr.cfg.Vars {
		data.Vars[k] = v
	}
	if f.ClientAddr.IsValid() && !f.ClientAddr.IsUnspecified() {
		data.IP = f.ClientAddr.Unmap().String()
	}
	if m := d.mach; m != nil {
		if m.cfg.Hostname != "" {
			data.Hostname = m.cfg.Hostname
		}
		if ip, ok := s.reservations[m.cfg.MAC]; ok {
			data.IP = ip.String()
		}
		for k, v := range m.cfg.Vars {
			data.Vars[k] = v
		}
	}
	if pr.cfg.Kernel != "" {
		data.Kernel = servedPath(&pr.cfg, pr.cfg.Kernel)
	}
	for _, i := range pr.cfg.Initrd {
		data.Initrd = append(data.Initrd, servedPath(&pr.cfg, i))
	}
	if pr.cmdline != nil {
		b, err := pr.cmdline.execute(data)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", pr.cmdline.key, err)
		}
		data.Cmdline = strings.Join(strings.Fields(string(b)), " ")
	}
	return data, nil
}

// Reservations returns the fixed addresses of machines that have one, for
// DHCP server mode. The map is a copy.
func (s *Set) Reservations() map[units.MAC]netip.Addr {
	out := make(map[units.MAC]netip.Addr, len(s.reservations))
	for k, v := range s.reservations {
		out[k] = v
	}
	return out
}

// Profiles returns the names of the compiled profiles, in config order.
func (s *Set) Profiles() []string {
	out := make([]string, len(s.profiles))
	for name, p := range s.profiles {
		out[p.idx] = name
	}
	return out
}

// ProfileImage returns the image a profile uses ("" when none or when the
// profile does not exist).
func (s *Set) ProfileImage(name string) string {
	if p := s.profiles[name]; p != nil {
		return p.cfg.Image
	}
	return ""
}
