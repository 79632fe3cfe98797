// Package dhcp answers PXE and UEFI HTTP-boot clients over DHCPv4: as a
// proxyDHCP server (the default, never handing out addresses), as a full
// DHCP server with pools and durable leases, and as a PXE boot server on
// UDP 4011. Boot decisions come from a Planner; this package only speaks the
// protocol. Packets are parsed and built with github.com/insomniacslk/dhcp
// (dhcpv4); the sockets and the serving loop are this package's own.
//
// # Modes
//
// In proxy mode only clients whose option 60 starts with PXEClient or
// HTTPClient are answered: DISCOVER gets an OFFER with yiaddr 0, the
// broadcast flag, option 54 naming us, no option 51, the boot file in the
// header and option 67, next-server in siaddr and option 66. A REQUEST on
// port 67 is answered only when its option 54 names us; nothing is ever
// NAKed. The boot-server socket (proxy_port, 4011) answers REQUEST/INFORM
// with an ACK sent from port 4011 to the requester's address and port.
//
// In server mode pools are chosen by giaddr (relayed) or by the subnet of
// the interface; DISCOVER/REQUEST (selecting, renewing, rebinding,
// init-reboot), DECLINE (quarantine), RELEASE and INFORM follow RFC 2131,
// and boot information rides in the same reply for boot clients. Leases live
// in a LeaseStore (bbolt), committed with fsync before the ACK is sent.
//
// # Reply path
//
// Replies follow RFC 2131 §4.1: to giaddr port 67 when relayed, to ciaddr
// when the client has an address, otherwise to 255.255.255.255:68 out of the
// ingress interface (IP_PKTINFO), whether or not the client set the
// broadcast flag. Unicasting to a yiaddr the client has not configured
// would need an ARP entry or a raw socket; RFC 2131 allows the broadcast.
//
// # Encoding rules
//
// Nothing is truncated: a boot file over 127 bytes or a server name over 63
// is an error, a reply larger than the client's option 57 (at least 576) is
// not sent, and option 43 always ends with its END byte. Arch 7 and 9 are
// both x86-64 UEFI.
package dhcp
