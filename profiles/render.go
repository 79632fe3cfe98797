package profiles

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/bootyard/bootyard/internal/units"
)

// Rendered is one generated file for a client.
type Rendered struct {
	// Name is the file's name as requested over TFTP/FTP.
	Name string
	// Data is its content.
	Data []byte
}

// loaderCodes are the architecture codes a first-stage loader fetching a
// rendered name may run on, when the name itself does not say.
var loaderCodes = map[nameKind][]uint16{
	kindIPXE:     {0, 6, 7, 9, 10, 11, 27},
	kindGRUB:     {0, 6, 7, 9, 10, 11, 27},
	kindPXELinux: {0}, // pxelinux.0 is a BIOS program
}

// anyCodes are the codes tried for an extra file (installers do not say).
var anyCodes = []uint16{0, 6, 7, 9, 10, 11, 15, 16, 17, 18, 19, 27, 28}

// vendorClassFor is the vendor class a firmware of that code sends, used
// when re-deriving facts from a rendered name.
func vendorClassFor(code uint16) string {
	if archTable[code].http {
		return fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003016", code)
	}
	return fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", code)
}

// rederive decides for a client known only by MAC and address, trying each
// firmware code the request could come from. It returns one decision per
// distinct outcome, in the order of codes.
func (s *Set) rederive(mac units.MAC, client, server netip.Addr, ipxe bool, codes []uint16) (groups []decision, byCode map[uint16]int) {
	byCode = map[uint16]int{}
	index := map[string]int{}
	for _, code := range codes {
		f := Facts{MAC: mac, Arch: code, HasArch: true, VendorClass: vendorClassFor(code), ClientAddr: client, Server: server}
		if ipxe {
			f.UserClass = "iPXE"
		}
		d := s.decide(f)
		d.archUnknown = len(codes) > 1
		k := d.key()
		if len(d.tied) > 0 {
			k = "tie\x00" + d.rule.label
		}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, d)
		}
		byCode[code] = i
	}
	return groups, byCode
}

// RenderFile renders a generated file by the name a client requested
// (cleaned, relative: "ipxe/52-54-00-12-34-56.ipxe",
// "pxelinux.cfg/01-52-54-00-12-34-56", "grub/grub.cfg-01-52-54-00-12-34-56",
// "preseed/node01.cfg"). client is the requesting address and server the
// address it reached (for .Server). ok is false when the name is not a
// generated name (serve it from disk instead). With ok true, an error
// wrapping ErrIgnored means "no such file for this client"; ErrAmbiguous
// means the name does not tell enough to pick a profile.
func (s *Set) RenderFile(ctx context.Context, name string, client, server netip.Addr) (data []byte, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if pn, ok := parseName(name); ok {
		b, err := s.renderBuiltin(pn, client, server)
		return b, true, err
	}
	return s.renderExtra(name, client, server)
}

// renderBuiltin renders an iPXE script, GRUB or pxelinux config.
func (s *Set) renderBuiltin(pn parsedName, client, server netip.Addr) ([]byte, error) {
	codes := loaderCodes[pn.kind]
	if pn.fw != "" {
		codes = []uint16{pn.code}
		if pn.fw == EFIx64 {
			codes = []uint16{7, 9}
		}
	}
	groups, byCode := s.rederive(pn.mac, client, server, pn.kind == kindIPXE, codes)
	if len(groups) == 1 {
		d := groups[0]
		if len(d.tied) > 0 {
			return nil, fmt.Errorf("%w: rules %s and %s tie", ErrAmbiguous, d.rule.label, d.tied[0].label)
		}
		if pn.fw != "" {
			d.archUnknown = false
			d.plat = pn.fw
		}
		return s.renderKind(pn.kind, d, server)
	}
	if pn.fw != "" || pn.kind == kindPXELinux {
		return nil, fmt.Errorf("%w: %s could get %s (%s) or %s (%s) depending on its firmware",
			ErrAmbiguous, pn.mac, groups[0].profileLabel(), groups[0].source, groups[1].profileLabel(), groups[1].source)
	}
	return s.dispatcher(pn, server, byCode, groups)
}

func (d decision) profileLabel() string {
	if d.profile == "" {
		return "nothing"
	}
	return "profile " + d.profile
}

// dispatcher renders a script that lets the loader pick the firmware
// variant at run time: iPXE by ${platform}-${buildarch}, GRUB by
// $grub_platform-$grub_cpu.
func (s *Set) dispatcher(pn parsedName, server netip.Addr, byCode map[uint16]int, groups []decision) ([]byte, error) {
	if byCode[7] != byCode[9] {
		return nil, fmt.Errorf("%w: %s gets %s as efi-x64 (arch 7) and %s as efi-bc (arch 9), which a loader cannot tell apart",
			ErrAmbiguous, pn.mac, groups[byCode[7]].profileLabel(), groups[byCode[9]].profileLabel())
	}
	srv := ""
	if server.IsValid() {
		srv = server.String()
	}
	var b strings.Builder
	base := IPXEName(pn.mac)
	if pn.kind == kindIPXE {
		base = strings.TrimSuffix(base, ".ipxe")
		b.WriteString("#!ipxe\n")
	} else {
		base = GRUBName(pn.mac)
	}
	fmt.Fprintf(&b, "# bootyard: the profile of %s depends on its firmware\n", pn.mac)
	ipxeArch := map[Firmware]string{BIOS: "pcbios", EFIIA32: "efi-i386", EFIx64: "efi-x86_64", EFIARM32: "efi-arm32", EFIARM64: "efi-arm64", EFIRISCV64: "efi-riscv64"}
	grubArch := map[Firmware]string{BIOS: "pc-i386", EFIIA32: "efi-i386", EFIx64: "efi-x86_64", EFIARM32: "efi-arm", EFIARM64: "efi-arm64", EFIRISCV64: "efi-riscv64"}
	for _, dc := range dispatchCodes {
		if _, ok := byCode[dc.code]; !ok {
			continue
		}
		if pn.kind == kindIPXE {
			cond := "iseq ${platform}-${buildarch} " + ipxeArch[dc.fw]
			if dc.fw == BIOS {
				cond = "iseq ${platform} pcbios"
			}
			fmt.Fprintf(&b, "%s && chain tftp://%s/%s-%s.ipxe ||\n", cond, srv, base, dc.fw)
		} else {
			fmt.Fprintf(&b, "if [ \"$grub_platform-$grub_cpu\" = %q ]; then\n  configfile (tftp,%s)/%s-%s\nfi\n", grubArch[dc.fw], srv, base, dc.fw)
		}
	}
	if pn.kind == kindIPXE {
		b.WriteString("echo bootyard: no profile for ${platform}-${buildarch}\nexit\n")
	}
	return []byte(b.String()), nil
}

// renderKind renders one built-in kind for a decision.
func (s *Set) renderKind(kind nameKind, d decision, server netip.Addr) ([]byte, error) {
	var data *Data
	var t *tmpl
	switch d.profile {
	case "", ProfileIgnore:
		return nil, fmt.Errorf("%w (%s)", ErrIgnored, d.source)
	case ProfileLocal:
		data = &Data{Profile: ProfileLocal, Local: true, Vars: map[string]string{}}
		if server.IsValid() {
			data.Server = server.String()
		}
		mac := d.facts.MAC
		data.MAC, data.MACDashed, data.Hostname = mac.String(), mac.Dashed(), mac.Dashed()
		if d.mach != nil && d.mach.cfg.Hostname != "" {
			data.Hostname = d.mach.cfg.Hostname
		}
		if !d.archUnknown {
			data.Arch = string(d.plat)
		}
		t = builtinTemplates[kind]
	default:
		pr := s.profiles[d.profile]
		var err error
		if data, err = s.data(d, pr, server); err != nil {
			return nil, err
		}
		t = map[nameKind]*tmpl{kindIPXE: pr.ipxe, kindGRUB: pr.grub, kindPXELinux: pr.pxelinux}[kind]
	}
	b, err := t.execute(data)
	if err != nil {
		return nil, fmt.Errorf("profiles: %s: %w", t.key, err)
	}
	return b, nil
}

// builtinTemplates render "local" clients, which have no profile.
var builtinTemplates = func() map[nameKind]*tmpl {
	m := map[nameKind]*tmpl{}
	for k, text := range map[nameKind]string{kindIPXE: builtinIPXE, kindGRUB: builtinGRUB, kindPXELinux: builtinPXELinux} {
		t, err := parseTemplate("builtin "+k.String(), "", text)
		if err != nil {
			panic(err)
		}
		m[k] = t
	}
	return m
}()

// extras renders the extra files of the decision's profile.
func (s *Set) extras(d decision, server netip.Addr) ([]Rendered, error) {
	pr := s.profiles[d.profile]
	if pr == nil || len(pr.extra) == 0 {
		return nil, nil
	}
	data, err := s.data(d, pr, server)
	if err != nil {
		return nil, err
	}
	var out []Rendered
	for _, ef := range pr.extra {
		p, err := ef.path.execute(data)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", ef.path.key, err)
		}
		name := strings.TrimSpace(string(p))
		if err := checkServedPath(name); err != nil {
			return nil, fmt.Errorf("profiles: %s: rendered path %w", ef.path.key, err)
		}
		b, err := ef.body.execute(data)
		if err != nil {
			return nil, fmt.Errorf("profiles: %s: %w", ef.body.key, err)
		}
		out = append(out, Rendered{Name: name, Data: b})
	}
	return out, nil
}

// renderExtra renders a profile's extra file by name.
func (s *Set) renderExtra(name string, client, server netip.Addr) ([]byte, bool, error) {
	var cands []decision
	known := false
	if ms := s.files[name]; len(ms) > 0 {
		known = true
		m := ms[0]
		if len(ms) > 1 {
			m = nil
			for _, x := range ms {
				if ip, ok := s.reservations[x.cfg.MAC]; ok && ip == client.Unmap() {
					m = x
				}
			}
			if m == nil {
				return nil, true, fmt.Errorf("%w: %s is rendered for several machines and %s is none of their reserved addresses", ErrAmbiguous, name, client)
			}
		}
		cands = append(cands, s.machineDecision(m, client, server))
	} else if mac, ok := macInName(name); ok {
		groups, _ := s.rederive(mac, client, server, false, anyCodes)
		cands = groups
	} else if ps := s.static[name]; len(ps) > 0 {
		known = true
		if m := s.byIP[client.Unmap()]; m != nil {
			cands = append(cands, s.machineDecision(m, client, server))
		} else {
			groups, _ := s.rederive(units.MAC{}, client, server, false, anyCodes)
			cands = groups
		}
	} else {
		return nil, false, nil
	}
	var found []Rendered
	var foundFrom []decision
	for _, d := range cands {
		if len(d.tied) > 0 || s.profiles[d.profile] == nil {
			continue
		}
		files, err := s.extras(d, server)
		if err != nil {
			return nil, true, err
		}
		for _, r := range files {
			if r.Name == name {
				found = append(found, r)
				foundFrom = append(foundFrom, d)
			}
		}
	}
	switch {
	case len(found) == 1:
		return found[0].Data, true, nil
	case len(found) > 1 && allSame(found):
		return found[0].Data, true, nil
	case len(found) > 1:
		return nil, true, fmt.Errorf("%w: %s renders differently for %s and %s", ErrAmbiguous, name, foundFrom[0].source, foundFrom[1].source)
	case known:
		return nil, true, fmt.Errorf("%w: %s is not rendered for %s", ErrIgnored, name, client)
	}
	return nil, false, nil
}

func allSame(rs []Rendered) bool {
	for _, r := range rs[1:] {
		if string(r.Data) != string(rs[0].Data) {
			return false
		}
	}
	return true
}

// machineDecision is the decision for a known machine, firmware unknown.
func (s *Set) machineDecision(m *machine, client, server netip.Addr) decision {
	d := s.decide(Facts{MAC: m.cfg.MAC, ClientAddr: client, Server: server})
	d.archUnknown = true
	return d
}

// Files renders every generated file for one client, as `bootyard profiles
// match` shows them: the iPXE script, GRUB and pxelinux configs, and the
// profile's extra files. An ignored client has none.
func (s *Set) Files(f Facts, server netip.Addr) ([]Rendered, error) {
	if !server.IsValid() {
		server = f.Server
	}
	f.Server = server
	d := s.decide(f)
	if len(d.tied) > 0 || d.profile == "" || d.profile == ProfileIgnore {
		return nil, nil
	}
	var out []Rendered
	for _, k := range []nameKind{kindIPXE, kindGRUB, kindPXELinux} {
		b, err := s.renderKind(k, d, server)
		if err != nil {
			return nil, err
		}
		name := map[nameKind]string{kindIPXE: IPXEName(f.MAC), kindGRUB: GRUBName(f.MAC), kindPXELinux: PXELinuxName(f.MAC)}[k]
		out = append(out, Rendered{Name: name, Data: b})
	}
	ex, err := s.extras(d, server)
	if err != nil {
		return nil, err
	}
	sort.Slice(ex, func(i, j int) bool { return ex[i].Name < ex[j].Name })
	return append(out, ex...), nil
}
