package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/cfgerr"
	"github.com/bootyard/bootyard/internal/units"
)

// Reserved profile names.
const (
	ProfileLocal  = "local"  // boot from the local disk
	ProfileIgnore = "ignore" // send nothing
)

// ImageIndex tells which images are staged and what files they hold.
// *images.Store satisfies it.
type ImageIndex interface {
	Lookup(name string) (files []string, ok bool)
}

var _ ImageIndex = (*images.Store)(nil)

// Input is what Compile reads: the decoded [[profile]], [[machine]] and
// [[rule]] blocks.
type Input struct {
	Profiles []Profile
	Machines []Machine
	Rules    []Rule
	// BaseDir resolves relative template_file paths (the config file's
	// directory).
	BaseDir string
	// Images, when set, is used to warn about images not staged yet and
	// about kernel and initrd paths a staged image lacks (warnings, not
	// errors: images change without a reload, and a damaged image must not
	// stop the tools that repair it). Nil skips both.
	Images ImageIndex
}

// Set is a compiled, immutable set of profiles, machines and rules. It is
// safe for concurrent use; a reload builds a new Set and swaps the pointer.
type Set struct {
	profiles     map[string]*profile
	machines     map[units.MAC]*machine
	byIP         map[netip.Addr]*machine
	rules        []*rule
	reservations map[units.MAC]netip.Addr
	// files indexes the extra files rendered for known machines by their
	// rendered name.
	files map[string][]*machine
	// static indexes extra files whose path template renders the same for
	// every client.
	static map[string][]*profile
}

// profile is a compiled [[profile]].
type profile struct {
	idx        int
	cfg        Profile
	files      []string // image files, when known
	cmdline    *tmpl
	ipxe       *tmpl
	grub       *tmpl
	pxelinux   *tmpl
	extra      []extraFile
	referenced bool
}

type extraFile struct {
	path   *tmpl
	body   *tmpl
	static string // the path when it renders the same for every client
}

// machine is a compiled [[machine]].
type machine struct {
	idx  int
	cfg  Machine
	uuid []byte // 16 bytes, nil when not set
}

// Compile checks and compiles the profiles, machines and rules. Problems
// come back as a cfgerr.List keyed like "profile[0].cmdline",
// "machine[2].profile", "rule[1].arch"; warnings (images not staged yet,
// shared file names) as text. The Set is nil when there are problems.
// Every template is parsed and test-rendered here, for every machine and
// rule that uses it, so a broken template is a config error, not a boot
// failure.
func Compile(in Input) (*Set, cfgerr.List, []string) {
	c := &compiler{in: in, set: &Set{
		profiles:     map[string]*profile{},
		machines:     map[units.MAC]*machine{},
		byIP:         map[netip.Addr]*machine{},
		reservations: map[units.MAC]netip.Addr{},
		files:        map[string][]*machine{},
		static:       map[string][]*profile{},
	}}
	for i, p := range in.Profiles {
		c.profile(i, p)
	}
	for i, m := range in.Machines {
		c.machine(i, m)
	}
	for i, r := range in.Rules {
		c.rule(i, r)
	}
	c.ties()
	if len(c.probs) == 0 {
		c.testRender()
	}
	if len(c.probs) > 0 {
		return nil, c.probs, c.warns
	}
	return c.set, nil, c.warns
}

type compiler struct {
	in    Input
	set   *Set
	probs cfgerr.List
	warns []string
	seen  map[string]bool // problem keys already reported by test renders
}

func (c *compiler) warnf(format string, args ...any) {
	c.warns = append(c.warns, fmt.Sprintf(format, args...))
}

// checkServedPath checks a path that will be served or requested: relative,
// clean, no "..", no control characters.
func checkServedPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	for i := 0; i < len(p); i++ {
		if b := p[i]; b < 0x20 || b == 0x7f {
			return fmt.Errorf("%q: control character", p)
		}
	}
	if !fs.ValidPath(p) || p == "." {
		return fmt.Errorf("%q: want a clean relative path without \"..\", \".\", empty parts or a leading \"/\"", p)
	}
	return nil
}

func (c *compiler) profile(i int, p Profile) {
	key := fmt.Sprintf("profile[%d]", i)
	switch {
	case p.Name == "":
		c.probs.Addf(key+".name", "required")
	case p.Name == ProfileLocal || p.Name == ProfileIgnore:
		c.probs.Addf(key+".name", "%q is reserved (a machine or rule may name it without defining it)", p.Name)
	case c.set.profiles[p.Name] != nil:
		c.probs.Addf(key+".name", "duplicate profile %q (first defined at profile[%d])", p.Name, c.set.profiles[p.Name].idx)
	}
	cp := &profile{idx: i, cfg: p}
	if p.Name != "" && c.set.profiles[p.Name] == nil {
		c.set.profiles[p.Name] = cp
	}
	if p.Image != "" {
		if err := images.ValidName(p.Image); err != nil {
			c.probs.Addf(key+".image", "%v", err)
		} else if c.in.Images != nil {
			files, ok := c.in.Images.Lookup(p.Image)
			if !ok {
				c.warnf("%s.image: image %q is not staged (stage it with: bootyard images add %s PATH...)", key, p.Image, p.Image)
			} else {
				cp.files = files
			}
		}
	}
	c.imagePath(key+".kernel", p.Kernel, cp)
	for j, f := range p.Initrd {
		if f == "" {
			c.probs.Addf(fmt.Sprintf("%s.initrd[%d]", key, j), "empty path")
			continue
		}
		c.imagePath(fmt.Sprintf("%s.initrd[%d]", key, j), f, cp)
	}
	if p.Kernel == "" && len(p.Initrd) > 0 {
		c.probs.Addf(key+".initrd", "initrd without a kernel")
	}
	if p.Kernel == "" && p.Cmdline != "" {
		c.probs.Addf(key+".cmdline", "cmdline without a kernel")
	}
	keys := make([]string, 0, len(p.Boot))
	for k := range p.Boot {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validBootKey(k) {
			c.probs.Addf(key+".boot."+k, "unknown firmware %q: want one of %s, or arch-N", k, strings.Join(FirmwareNames(), ", "))
			continue
		}
		if err := checkServedPath(p.Boot[k]); err != nil {
			c.probs.Addf(key+".boot."+k, "%v", err)
		}
	}
	cp.cmdline = c.template(key+".cmdline", p.Cmdline, "", "")
	cp.ipxe = c.template(key+".ipxe_template", p.IPXETemplate, p.IPXETemplateFile, builtinIPXE)
	cp.grub = c.template(key+".grub_template", p.GRUBTemplate, p.GRUBTemplateFile, builtinGRUB)
	cp.pxelinux = c.template(key+".pxelinux_template", p.PXELinuxTemplate, p.PXELinuxTemplateFile, builtinPXELinux)
	for j, f := range p.Files {
		fk := fmt.Sprintf("%s.file[%d]", key, j)
		if f.Path == "" {
			c.probs.Addf(fk+".path", "required")
			continue
		}
		if f.Template == "" && f.TemplateFile == "" {
			c.probs.Addf(fk+".template", "set template or template_file")
			continue
		}
		if f.Template != "" && f.TemplateFile != "" {
			c.probs.Addf(fk+".template_file", "set template or template_file, not both")
			continue
		}
		pt := c.template(fk+".path", f.Path, "", "")
		bt := c.template(fk+".template", f.Template, f.TemplateFile, "")
		if pt == nil || bt == nil {
			continue
		}
		ef := extraFile{path: pt, body: bt}
		if !strings.Contains(f.Path, "{{") {
			ef.static = f.Path
			if err := checkServedPath(f.Path); err != nil {
				c.probs.Addf(fk+".path", "%v", err)
				continue
			}
			if _, ok := parseName(f.Path); ok {
				c.probs.Addf(fk+".path", "%q collides with a built-in rendered name", f.Path)
				continue
			}
			c.set.static[f.Path] = append(c.set.static[f.Path], cp)
		}
		cp.extra = append(cp.extra, ef)
	}
}

// imagePath checks a kernel or initrd path and, for a staged image, that
// the image holds it.
func (c *compiler) imagePath(key, p string, cp *profile) {
	if p == "" {
		return
	}
	if err := checkServedPath(p); err != nil {
		c.probs.Addf(key, "%v", err)
		return
	}
	if cp.files == nil {
		return
	}
	for _, f := range cp.files {
		if f == p {
			return
		}
	}
	c.warnf("%s: image %q has no file %q (it holds %s)", key, cp.cfg.Image, p, summarize(cp.files))
}

func summarize(files []string) string {
	if len(files) > 8 {
		return strings.Join(files[:8], ", ") + fmt.Sprintf(" and %d more", len(files)-8)
	}
	return strings.Join(files, ", ")
}

// template parses an inline template or a template file; def is used when
// both are empty ("" def: no template, nil result without a problem).
func (c *compiler) template(key, inline, file, def string) *tmpl {
	text, from := inline, ""
	if file != "" {
		fileKey := strings.TrimSuffix(key, "template") + "template_file"
		if strings.HasSuffix(key, ".cmdline") || strings.HasSuffix(key, ".path") {
			fileKey = key
		}
		if inline != "" {
			c.probs.Addf(fileKey, "set the inline template or the template file, not both")
			return nil
		}
		p := file
		if !filepath.IsAbs(p) {
			p = filepath.Join(c.in.BaseDir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			c.probs.Addf(fileKey, "read template: %v", err)
			return nil
		}
		text, from, key = string(b), file, fileKey
	}
	if text == "" {
		if def == "" {
			return nil
		}
		text = def
	}
	t, err := parseTemplate(key, from, text)
	if err != nil {
		c.probs.Addf(key, "%v", err)
		return nil
	}
	return t
}

func (c *compiler) machine(i int, m Machine) {
	key := fmt.Sprintf("machine[%d]", i)
	cm := &machine{idx: i, cfg: m}
	if m.MAC.IsZero() {
		c.probs.Addf(key+".mac", "required")
	} else if prev := c.set.machines[m.MAC]; prev != nil {
		c.probs.Addf(key+".mac", "duplicate MAC %s (first at machine[%d])", m.MAC, prev.idx)
	} else {
		c.set.machines[m.MAC] = cm
	}
	if m.UUID != "" {
		u, err := parseUUID(m.UUID)
		if err != nil {
			c.probs.Addf(key+".uuid", "%v", err)
		}
		cm.uuid = u
	}
	if m.Hostname != "" {
		if err := checkHostname(m.Hostname); err != nil {
			c.probs.Addf(key+".hostname", "%v", err)
		}
	}
	if m.IP.IsValid() {
		ip := m.IP.Unmap()
		switch {
		case !ip.Is4():
			c.probs.Addf(key+".ip", "%s: reservations are IPv4 only", ip)
		case ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			c.probs.Addf(key+".ip", "%s cannot be a host address", ip)
		case c.set.byIP[ip] != nil:
			c.probs.Addf(key+".ip", "%s is already reserved for machine[%d]", ip, c.set.byIP[ip].idx)
		default:
			c.set.byIP[ip] = cm
			if !m.MAC.IsZero() {
				c.set.reservations[m.MAC] = ip
			}
		}
	}
	c.profileRef(key+".profile", m.Profile)
}

func (c *compiler) profileRef(key, name string) {
	switch {
	case name == "":
		c.probs.Addf(key, "required (a profile name, %q or %q)", ProfileLocal, ProfileIgnore)
	case name == ProfileLocal || name == ProfileIgnore:
	case c.set.profiles[name] == nil:
		c.probs.Addf(key, "unknown profile %q", name)
	default:
		c.set.profiles[name].referenced = true
	}
}

func (c *compiler) rule(i int, r Rule) {
	cr := compileRule(i, r, &c.probs)
	if r.Name != "" {
		for _, o := range c.set.rules {
			if o.source == cr.source {
				c.probs.Addf(fmt.Sprintf("rule[%d].name", i), "duplicate rule name %q (first at rule[%d])", r.Name, o.idx)
			}
		}
	}
	c.profileRef(fmt.Sprintf("rule[%d].profile", i), r.Profile)
	c.set.rules = append(c.set.rules, cr)
}

// ties rejects two rules with the same number of selectors that could both
// match one client.
func (c *compiler) ties() {
	for j, b := range c.set.rules {
		for _, a := range c.set.rules[:j] {
			if a.count != b.count {
				continue
			}
			if why, ok := overlap(a, b); ok {
				c.probs.Addf(fmt.Sprintf("rule[%d]", b.idx),
					"ties with %s: both have %d selector(s) and %s matches both; make one more specific or their selectors disjoint",
					a.label, a.count, why)
			}
		}
	}
}

// parseUUID reads a textual UUID into 16 bytes.
func parseUUID(s string) ([]byte, error) {
	t := strings.ReplaceAll(strings.TrimSpace(s), "-", "")
	if len(t) != 32 {
		return nil, fmt.Errorf("invalid UUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	out := make([]byte, 16)
	for i := range out {
		hi, ok1 := unhex(t[2*i])
		lo, ok2 := unhex(t[2*i+1])
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("invalid UUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
		}
		out[i] = hi<<4 | lo
	}
	return out, nil
}

// uuidMatches compares a machine's UUID with option 97 (a type byte 0 and
// 16 bytes, or the 16 bytes alone). Firmware writes the first three fields
// either big- or little-endian, so both orders match.
func uuidMatches(want, opt []byte) bool {
	if len(opt) == 17 && opt[0] == 0 {
		opt = opt[1:]
	}
	if len(opt) != 16 {
		return false
	}
	if string(want) == string(opt) {
		return true
	}
	swapped := append([]byte(nil), want...)
	swapped[0], swapped[1], swapped[2], swapped[3] = want[3], want[2], want[1], want[0]
	swapped[4], swapped[5] = want[5], want[4]
	swapped[6], swapped[7] = want[7], want[6]
	return string(swapped) == string(opt)
}

// checkHostname accepts RFC 1123 host names: dot-separated labels of
// letters, digits and inner hyphens, 1-63 bytes each, 253 in all.
func checkHostname(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name %q longer than 253 bytes", h)
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("invalid host name %q: labels of 1-63 letters, digits and inner hyphens", h)
		}
		for i := 0; i < len(l); i++ {
			b := l[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
				return fmt.Errorf("invalid host name %q: character %q", h, b)
			}
		}
	}
	return nil
}
