package profiles

import "net/netip"

// Plan is the decision for one client: what to send it and what its next
// stage loads. Services execute plans; they never decide.
type Plan struct {
	// Action is Boot, Local or Ignore.
	Action Action
	// Profile is the name of the chosen profile ("" for Local and Ignore).
	Profile string
	// Source says why: "machine 52:54:00:12:34:56", "rule lab" or "default".
	Source string
	// Firmware is the client's firmware as read from its facts.
	Firmware Firmware
	// BootFile is the first-stage file for this firmware, a path relative to
	// the TFTP root (or, for HTTP boot, to the HTTP root). For an iPXE client
	// it is the per-machine script, e.g. "ipxe/52-54-00-12-34-56.ipxe".
	BootFile string
	// HTTP is true when the client boots over UEFI HTTP (vendor class
	// HTTPClient): BootFile must be sent as a URL.
	HTTP bool
	// Hostname is the machine's host name, when known.
	Hostname string
	// IP is the machine's reserved address for DHCP server mode, when set.
	IP netip.Addr
	// Kernel, Initrds and Cmdline describe the next stage: paths as served
	// over TFTP/FTP (images/<image>/<file>) and the rendered command line.
	Kernel  string
	Initrds []string
	Cmdline string

	// Arch is the client's firmware as read from option 93 alone (Firmware
	// says "ipxe" for an iPXE client; Arch still says "efi-x64").
	Arch Firmware
	// Image is the profile's image ("" when none).
	Image string
	// Reason explains an Ignore or Local decision in words, for logs and
	// `bootyard profiles match`.
	Reason string
}
