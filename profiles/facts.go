package profiles

import (
	"net/netip"

	"github.com/bootyard/bootyard/internal/units"
)

// Firmware names a client's boot environment. The names are the keys of a
// profile's boot table.
type Firmware string

// The firmware names of the built-in table.
const (
	BIOS         Firmware = "bios"
	EFIIA32      Firmware = "efi-ia32"
	EFIx64       Firmware = "efi-x64"
	EFIBC        Firmware = "efi-bc"
	EFIARM64     Firmware = "efi-arm64"
	EFIx64HTTP   Firmware = "efi-x64-http"
	EFIARM64HTTP Firmware = "efi-arm64-http"
	IPXE         Firmware = "ipxe"

	EFIARM32       Firmware = "efi-arm32"
	EFIIA32HTTP    Firmware = "efi-ia32-http"
	EFIBCHTTP      Firmware = "efi-bc-http"
	EFIARM32HTTP   Firmware = "efi-arm32-http"
	EFIRISCV64     Firmware = "efi-riscv64"
	EFIRISCV64HTTP Firmware = "efi-riscv64-http"
)

// Facts are what a boot request says about the client.
type Facts struct {
	MAC         units.MAC    // client hardware address (chaddr)
	Arch        uint16       // option 93 client system architecture
	HasArch     bool         // option 93 was present
	VendorClass string       // option 60
	UserClass   string       // option 77 ("iPXE" for iPXE)
	UUID        []byte       // option 97 client machine identifier, raw
	Relay       netip.Addr   // giaddr, when relayed
	ClientAddr  netip.Addr   // ciaddr or the source address, when known
	Subnet      netip.Prefix // the subnet the request arrived on, when known
	// Server is the address the client reached bootyard on, for templates
	// (.Server in the cmdline). Zero: rendered as "".
	Server netip.Addr
}

// Action says what to do with a client.
type Action int

// Actions of a Plan.
const (
	Boot   Action = iota // send the boot file
	Local                // tell it to boot from local disk (no boot file)
	Ignore               // send nothing at all
)
