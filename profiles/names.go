package profiles

import (
	"strings"

	"github.com/bootyard/bootyard/internal/units"
)

// nameKind is the kind of a built-in rendered name.
type nameKind int

const (
	kindNone     nameKind = iota
	kindIPXE              // ipxe/<mac>.ipxe
	kindGRUB              // grub/grub.cfg-01-<mac>
	kindPXELinux          // pxelinux.cfg/01-<mac>
)

func (k nameKind) String() string {
	switch k {
	case kindIPXE:
		return "ipxe"
	case kindGRUB:
		return "grub"
	case kindPXELinux:
		return "pxelinux"
	}
	return "none"
}

// dispatchCodes are the firmware a first-stage loader can tell apart at run
// time (iPXE ${platform}/${buildarch}, GRUB $grub_platform/$grub_cpu), with
// the architecture code each stands for. A per-machine script whose profile
// depends on the firmware chains to "<name>-<firmware>".
var dispatchCodes = []struct {
	fw   Firmware
	code uint16
}{
	{BIOS, 0}, {EFIIA32, 6}, {EFIx64, 7}, {EFIARM32, 10}, {EFIARM64, 11}, {EFIRISCV64, 27},
}

// Name builders: the rendered names of a MAC.

// IPXEName returns "ipxe/aa-bb-cc-dd-ee-ff.ipxe".
func IPXEName(mac units.MAC) string { return "ipxe/" + mac.Dashed() + ".ipxe" }

// GRUBName returns "grub/grub.cfg-01-aa-bb-cc-dd-ee-ff".
func GRUBName(mac units.MAC) string { return "grub/grub.cfg-01-" + mac.Dashed() }

// PXELinuxName returns "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff".
func PXELinuxName(mac units.MAC) string { return "pxelinux.cfg/01-" + mac.Dashed() }

// parsedName is a built-in rendered name taken apart.
type parsedName struct {
	kind nameKind
	mac  units.MAC
	fw   Firmware // "" or the firmware of a dispatch target
	code uint16   // the code for fw
}

// parseName recognises the built-in rendered names, case-insensitively:
// ipxe/<mac>.ipxe, ipxe/<mac>-<fw>.ipxe, grub/grub.cfg-01-<mac>,
// grub/grub.cfg-01-<mac>-<fw>, pxelinux.cfg/01-<mac>, with <mac> dashed.
func parseName(name string) (parsedName, bool) {
	var p parsedName
	var rest string
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(lower, "ipxe/") && strings.HasSuffix(lower, ".ipxe"):
		p.kind = kindIPXE
		rest = lower[len("ipxe/") : len(lower)-len(".ipxe")]
	case strings.HasPrefix(lower, "grub/grub.cfg-01-"):
		p.kind = kindGRUB
		rest = lower[len("grub/grub.cfg-01-"):]
	case strings.HasPrefix(lower, "pxelinux.cfg/01-"):
		p.kind = kindPXELinux
		rest = lower[len("pxelinux.cfg/01-"):]
	default:
		return p, false
	}
	const macLen = len("aa-bb-cc-dd-ee-ff")
	if len(rest) < macLen {
		return p, false
	}
	mac, ok := parseDashedMAC(rest[:macLen])
	if !ok {
		return p, false
	}
	p.mac = mac
	if suffix := rest[macLen:]; suffix != "" {
		fw, ok := strings.CutPrefix(suffix, "-")
		if !ok || p.kind == kindPXELinux {
			return p, false
		}
		found := false
		for _, d := range dispatchCodes {
			if string(d.fw) == fw {
				p.fw, p.code, found = d.fw, d.code, true
			}
		}
		if !found {
			return p, false
		}
	}
	return p, true
}

// parseDashedMAC reads exactly "aa-bb-cc-dd-ee-ff" (any case).
func parseDashedMAC(s string) (units.MAC, bool) {
	var m units.MAC
	if len(s) != 17 {
		return m, false
	}
	for i := 0; i < 6; i++ {
		if i > 0 && s[3*i-1] != '-' {
			return m, false
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return m, false
		}
		m[i] = hi<<4 | lo
	}
	return m, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// macInName finds the first MAC address written with ':' or '-' separators
// anywhere in a name (e.g. "preseed/52-54-00-12-34-56.cfg").
func macInName(name string) (units.MAC, bool) {
	for i := 0; i+17 <= len(name); i++ {
		sep := name[i+2]
		if sep != ':' && sep != '-' {
			continue
		}
		var m units.MAC
		ok := true
		for j := 0; j < 6 && ok; j++ {
			if j > 0 && name[i+3*j-1] != sep {
				ok = false
				break
			}
			hi, ok1 := unhex(name[i+3*j])
			lo, ok2 := unhex(name[i+3*j+1])
			ok = ok1 && ok2
			m[j] = hi<<4 | lo
		}
		if ok {
			return m, true
		}
	}
	return units.MAC{}, false
}
