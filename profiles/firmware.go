package profiles

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// archInfo is one row of the built-in firmware table.
type archInfo struct {
	fw       Firmware
	http     bool
	fallback Firmware // boot-table key tried when the profile has none for fw
	boot     string   // built-in default first-stage boot file
}

// archTable maps IANA processor architecture types (DHCP option 93, RFC
// 4578 with erratum 4624 and the IANA registry) to firmware. Code 7 is
// x86-64 UEFI; code 9 ("EFI BC" in the registry) is what many x86-64 UEFI
// ROMs send in practice, so efi-bc falls back to efi-x64.
var archTable = map[uint16]archInfo{
	0:  {fw: BIOS, boot: "undionly.kpxe"},
	6:  {fw: EFIIA32, boot: "ipxe-ia32.efi"},
	7:  {fw: EFIx64, boot: "ipxe.efi"},
	9:  {fw: EFIBC, fallback: EFIx64, boot: "ipxe.efi"},
	10: {fw: EFIARM32, boot: "ipxe-arm32.efi"},
	11: {fw: EFIARM64, boot: "ipxe-arm64.efi"},
	15: {fw: EFIIA32HTTP, http: true, boot: "ipxe-ia32.efi"},
	16: {fw: EFIx64HTTP, http: true, boot: "ipxe.efi"},
	17: {fw: EFIBCHTTP, http: true, fallback: EFIx64HTTP, boot: "ipxe.efi"},
	18: {fw: EFIARM32HTTP, http: true, boot: "ipxe-arm32.efi"},
	19: {fw: EFIARM64HTTP, http: true, boot: "ipxe-arm64.efi"},
	27: {fw: EFIRISCV64, boot: "ipxe-riscv64.efi"},
	28: {fw: EFIRISCV64HTTP, http: true, boot: "ipxe-riscv64.efi"},
}

// selectorCodes maps the firmware names usable in a rule's arch list to the
// architecture codes they select. efi-x64 covers EFI BC (9) as well, since
// x86-64 UEFI ROMs send either.
var selectorCodes = map[Firmware][]uint16{
	BIOS:           {0},
	EFIIA32:        {6},
	EFIx64:         {7, 9},
	EFIBC:          {9},
	EFIARM32:       {10},
	EFIARM64:       {11},
	EFIIA32HTTP:    {15},
	EFIx64HTTP:     {16, 17},
	EFIBCHTTP:      {17},
	EFIARM32HTTP:   {18},
	EFIARM64HTTP:   {19},
	EFIRISCV64:     {27},
	EFIRISCV64HTTP: {28},
}

// ArchFirmware returns the firmware name for an IANA architecture code:
// a name of the built-in table, or "arch-N" for codes the table does not
// know (a profile's boot table may still name a file for "arch-N").
func ArchFirmware(code uint16) Firmware {
	if a, ok := archTable[code]; ok {
		return a.fw
	}
	return Firmware("arch-" + strconv.Itoa(int(code)))
}

// FirmwareNames returns every firmware name of the built-in table, sorted,
// ipxe included.
func FirmwareNames() []string {
	out := []string{string(IPXE)}
	for _, a := range archTable {
		out = append(out, string(a.fw))
	}
	sort.Strings(out)
	return out
}

// DefaultBootFile returns the built-in first-stage boot file for a
// firmware, or "" when there is none (ipxe: the rendered per-machine
// script, not a static file).
func DefaultBootFile(fw Firmware) string {
	for _, a := range archTable {
		if a.fw == fw {
			return a.boot
		}
	}
	return ""
}

// ParseArch reads an arch selector or a --arch flag: a firmware name
// (efi-x64) or an IANA code ("7", "0x7"). It returns the codes it selects.
func ParseArch(s string) ([]uint16, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if codes, ok := selectorCodes[Firmware(t)]; ok {
		return codes, nil
	}
	if t == string(IPXE) {
		return nil, fmt.Errorf("%q is not an architecture: select iPXE clients with user_class = \"iPXE\"", s)
	}
	if rest, ok := strings.CutPrefix(t, "arch-"); ok {
		t = rest
	}
	n, err := strconv.ParseUint(t, 0, 16)
	if err != nil {
		return nil, fmt.Errorf("unknown architecture %q: want a firmware name (%s) or an IANA code 0-65535", s, strings.Join(archNames(), ", "))
	}
	return []uint16{uint16(n)}, nil
}

func archNames() []string {
	var out []string
	for fw := range selectorCodes {
		out = append(out, string(fw))
	}
	sort.Strings(out)
	return out
}

// validBootKey reports whether k may key a profile's boot table.
func validBootKey(k string) bool {
	if k == string(IPXE) {
		return true
	}
	if _, ok := selectorCodes[Firmware(k)]; ok {
		return true
	}
	if rest, ok := strings.CutPrefix(k, "arch-"); ok {
		n, err := strconv.ParseUint(rest, 10, 16)
		return err == nil && strconv.FormatUint(n, 10) == rest
	}
	return false
}

// classify reads the firmware facts of a client: its platform from option
// 93 (no option 93 reads as BIOS, as legacy ROMs omit it), whether it is
// iPXE (option 77 "iPXE"), and whether it boots over HTTP (an HTTP arch
// code, or a vendor class starting "HTTPClient").
func classify(f Facts) (fw, platform Firmware, code uint16, http bool) {
	code = 0
	if f.HasArch {
		code = f.Arch
	}
	platform = ArchFirmware(code)
	http = archTable[code].http || hasPrefixFold(f.VendorClass, "HTTPClient")
	fw = platform
	if strings.EqualFold(f.UserClass, "iPXE") {
		fw = IPXE
	}
	return fw, platform, code, http
}

// bootFile picks the first-stage file for firmware fw with code from a
// profile's boot table, its fallback key, and then the built-in default.
func bootFile(boot map[string]string, fw Firmware, code uint16) string {
	if v, ok := boot[string(fw)]; ok {
		return v
	}
	info, known := archTable[code]
	if known && info.fallback != "" {
		if v, ok := boot[string(info.fallback)]; ok {
			return v
		}
	}
	if v, ok := boot["arch-"+strconv.Itoa(int(code))]; ok && !known {
		return v
	}
	if known {
		return info.boot
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
