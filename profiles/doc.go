// Package profiles decides what a network-booting client gets; it never
// serves anything itself.
//
// The configuration's [[profile]], [[machine]] and [[rule]] blocks are
// checked and compiled once by [Compile] into an immutable [Set]. Services
// ask the Set: dhcp calls [Set.Match] with the [Facts] of a request and gets
// a [Plan] (boot file for the client's firmware, next stage, or local/ignore);
// tftpd and ftpd call [Set.RenderFile] with a requested name and get the
// per-machine iPXE script, GRUB or pxelinux config, or an installer answer
// file. A reload compiles a new Set and swaps the pointer.
//
// # Firmware
//
// Option 93 (IANA processor architecture type) gives the firmware: 0 bios,
// 6 efi-ia32, 7 efi-x64, 9 efi-bc (x86-64 UEFI ROMs send 7 or 9: efi-bc
// uses efi-x64's boot file unless the profile names one for efi-bc), 10
// efi-arm32, 11 efi-arm64, 15/16/17/18/19 the UEFI HTTP variants
// (efi-ia32-http, efi-x64-http, efi-bc-http, efi-arm32-http, efi-arm64-http),
// 27/28 efi-riscv64(-http). Other codes read as "arch-N". A request without
// option 93 reads as bios. User class "iPXE" (option 77) makes the firmware
// "ipxe": its boot file is the rendered script ipxe/<mac>.ipxe, so iPXE is
// never handed iPXE again (no chainload loop). A vendor class starting
// "HTTPClient", or an HTTP arch code, sets Plan.HTTP.
//
// # Precedence
//
// An exact [[machine]] (by MAC; when the machine has a uuid and the client
// sends option 97, they must agree) beats every rule. Among the rules that
// match, the one with the most selectors (arch, subnet, mac_prefix,
// user_class, vendor_class) wins. Two rules with the same number of
// selectors that could both match one client are rejected by Compile,
// naming both: arch sets sharing a code, overlapping subnets, MAC prefixes
// of which one extends the other, class patterns that some string matches.
// With no machine and no matching rule the client is ignored. The profile
// names "local" (boot from disk) and "ignore" (no reply) are reserved.
//
// # Rendered names and statelessness
//
// A rendered name carries the client's MAC, so a later request is decided
// again from the name and the requesting address, with no session table:
// ipxe/<mac>.ipxe, grub/grub.cfg-01-<mac>, pxelinux.cfg/01-<mac> (dashed,
// lowercase MAC), plus each profile's extra files. Such a request does not
// carry option 93: the decision is tried for every firmware the loader could
// run on (pxelinux.0: bios only), with the vendor class that firmware sends.
// When the outcome differs by firmware (rules that select by arch), the iPXE
// script and the GRUB config become small dispatchers that chain, by the
// loader's own ${platform}-${buildarch} or $grub_platform-$grub_cpu, to
// ipxe/<mac>-<firmware>.ipxe or grub/grub.cfg-01-<mac>-<firmware>. Extra
// files are found by the names rendered for each [[machine]], by a MAC in the
// name, or, for a fixed path, by the requesting address.
//
// # Templates
//
// Templates are text/template with missingkey=error over the fixed [Data]
// model (.Server, .MAC, .MACDashed, .Hostname, .IP, .Arch, .Profile,
// .Image, .ImageDir, .Files, .Vars, .Kernel, .Initrd, .Cmdline, .Local) and
// the functions base, dir, join, lower, upper, replace and default. Compile
// parses every template and renders it for every machine and rule that uses
// it, so a template that cannot render is a configuration error naming its
// key and line.
package profiles
