package profiles

import "github.com/bootyard/bootyard/internal/units"

// Profile is one [[profile]] block: what a machine boots.
type Profile struct {
	// Name identifies the profile; required and unique. "local" and
	// "ignore" are reserved.
	Name string `toml:"name"`
	// Description is free text for operators.
	Description string `toml:"description"`
	// Image names a staged image whose files the profile boots. A name not
	// staged yet is a warning, not an error.
	Image string `toml:"image"`
	// Kernel and Initrd are paths inside the image.
	Kernel string   `toml:"kernel"`
	Initrd []string `toml:"initrd"`
	// Cmdline is a text/template for the kernel command line.
	Cmdline string `toml:"cmdline"`
	// Boot maps firmware names (bios, efi-ia32, efi-x64, efi-bc, efi-arm64,
	// efi-x64-http, efi-arm64-http, ipxe) to first-stage boot files. A
	// missing key falls back to the built-in defaults.
	Boot map[string]string `toml:"boot"`
	// Files are extra rendered files (preseed, kickstart, autoinstall).
	Files []File `toml:"file"`
	// Vars are free-form template variables (.Vars). A machine's vars
	// override the profile's.
	Vars map[string]string `toml:"vars"`

	// IPXETemplate replaces the built-in iPXE script template
	// (ipxe/<mac>.ipxe); IPXETemplateFile names a file holding it instead
	// (relative to the config file). Empty: built-in.
	IPXETemplate     string `toml:"ipxe_template"`
	IPXETemplateFile string `toml:"ipxe_template_file"`
	// GRUBTemplate replaces the built-in GRUB config template
	// (grub/grub.cfg-01-<mac>); GRUBTemplateFile names a file instead.
	GRUBTemplate     string `toml:"grub_template"`
	GRUBTemplateFile string `toml:"grub_template_file"`
	// PXELinuxTemplate replaces the built-in pxelinux config template
	// (pxelinux.cfg/01-<mac>); PXELinuxTemplateFile names a file instead.
	PXELinuxTemplate     string `toml:"pxelinux_template"`
	PXELinuxTemplateFile string `toml:"pxelinux_template_file"`
}

// File is one [[profile.file]]: a file rendered per machine.
type File struct {
	// Path is a text/template for the served name, e.g.
	// "preseed/{{.Hostname}}.cfg".
	Path string `toml:"path"`
	// Template is the inline text/template of the content.
	Template string `toml:"template"`
	// TemplateFile names a file holding the template instead (relative to
	// the config file).
	TemplateFile string `toml:"template_file"`
}

// Machine is one [[machine]] block: a known machine.
type Machine struct {
	// MAC identifies the machine; required and unique.
	MAC units.MAC `toml:"mac"`
	// UUID, when set, must also match the client's option 97 machine
	// identifier (when the client sends one): "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
	UUID string `toml:"uuid"`
	// Hostname is the machine's host name (.Hostname); optional, an RFC 1123
	// name.
	Hostname string `toml:"hostname"`
	// IP is a fixed IPv4 address handed out in DHCP server mode; optional.
	IP units.Addr `toml:"ip"`
	// Profile names the profile to boot, or "local" or "ignore"; required.
	Profile string `toml:"profile"`
	// Vars override the profile's vars for this machine.
	Vars map[string]string `toml:"vars"`
}

// Rule is one [[rule]] block: selectors for machines not listed under
// [[machine]]. All given selectors must match; a rule with none matches
// every client.
type Rule struct {
	// Name labels the rule in plans and messages; optional, unique.
	Name string `toml:"name"`
	// Profile names the profile to boot, or "local" or "ignore"; required.
	Profile string `toml:"profile"`
	// Arch selects clients by firmware: firmware names (bios, efi-x64, …)
	// or IANA architecture numbers ("7"). efi-x64 covers codes 7 and 9.
	Arch []string `toml:"arch"`
	// Subnet selects clients whose address (or relay address) lies in it.
	Subnet units.Prefix `toml:"subnet"`
	// MACPrefix selects clients whose MAC starts with these bytes
	// ("52:54:00").
	MACPrefix string `toml:"mac_prefix"`
	// UserClass selects by option 77, case-insensitively; a trailing "*"
	// makes it a prefix ("iPXE").
	UserClass string `toml:"user_class"`
	// VendorClass selects by option 60, case-insensitively; a trailing "*"
	// makes it a prefix ("PXEClient*").
	VendorClass string `toml:"vendor_class"`
}
