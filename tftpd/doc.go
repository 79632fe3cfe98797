// Package tftpd serves boot files over TFTP (RFC 1350, 2347-2349) on top of
// github.com/pin/tftp/v3, which it wraps rather than re-implements.
//
// # Security model
//
// What a client can reach: regular files under tftp.root, opened through an
// os.Root (so "..", absolute paths and symlinks that leave the root fail in
// the kernel-backed lookup, not in string checks); files a Renderer
// generates; and, under images/, regular files of the read-only images
// store. What it cannot: anything outside those trees, directories, devices,
// FIFOs and sockets (checked on the opened descriptor, opened non-blocking),
// names with NUL or control bytes, names over 255 bytes, ".." after remap,
// and uploads in progress. Write requests are refused with an access
// violation unless tftp.uploads.enabled; then they create new files only,
// directly inside tftp.uploads.dir, capped per file and per directory, under
// a hidden temporary name that is linked into place only when the transfer
// completes. What we rely on the kernel and the operator for: hard links
// and bind mounts inside the root are served like the files they are
// (os.Root cannot tell), so keep the root on its own file system or writable
// only by root.
//
// # Request path
//
// The server gives pin/tftp a packet gate instead of the socket. The gate
// reads each datagram with its destination address and interface, and
// drops silently what comes from outside tftp.allow, what is over
// tftp.rate_per_client, and packets that are not requests; it answers with
// the proper error code (pin/tftp handlers can only send code 1) malformed
// requests and unknown modes (4), name-policy refusals and WRQs while
// uploads are off (2), existing upload names (6), announced oversize
// uploads (3) and concurrency-cap refusals (0). It rewrites the options it
// passes on: names lowercased (pin/tftp matches them case-sensitively),
// blksize clamped to the interface MTU less 32 bytes (1468 on 1500-byte
// Ethernet; pin/tftp's own clamp grants 1472, which fragments) or to
// tftp.max_block_size, invalid blksize values dropped (512-byte blocks),
// tsize forced to 0 in RRQs and dropped in netascii mode. The transfer
// handlers then consult the Renderer, then the images store, then the root,
// and always end in ReadFrom/WriteTo or an error (a handler that returns
// nil without them leaks a socket in pin/tftp); panics are recovered.
//
// Per-block path: for each block pin/tftp does one sendto, one recvfrom
// (plus an epoll wait when the ACK is not there yet), one read-deadline
// update and three small allocations (the ACK's *net.UDPAddr and its IP,
// and the parsed packet); bootyard adds a copy out of a read-ahead buffer
// sized to the file (at most 64 KiB: one read(2) per 44 blocks of 1468).
// In single-port mode pin/tftp allocates a buffer of its blksize cap per
// packet, so that cap ignores loopback's 64 KiB MTU (see singlePortBlock).
//
// Amplification: a silent peer makes pin/tftp retransmit its first packet
// retries+1 times. The per-client rate limit and concurrency cap bound what a
// spoofed RRQ flood reflects; tests measure about 1.4 bytes out per byte in
// with the defaults, against about 150 without limits.
//
// # What pin/tftp v3.2.0 does not do
//
// The timeout option (RFC 2349) and windowsize (RFC 7440) are not
// negotiated: pin/tftp drops them from the OACK, which RFC 2347 allows, and
// uses tftp.timeout for every transfer. RFC 7440 would take, in pin/tftp's
// sender, a window of blocks sent before waiting, ACK handling that accepts
// the last block of the window (and restarts from the block after any ACK
// in the window), the option in the OACK, and a rollover-safe block window;
// the receiver side would ACK every windowsize blocks. Its experimental
// send-ahead (tftp.anticipate) is a different thing: unnegotiated, it
// sends a window and then waits for the window's ACKs in order, and after a
// timeout resends the window and waits from its first block again. Lock-step
// clients never ACK those older blocks again, so one lost ACK, or one lost
// DATA packet past a window's second slot, fails the transfer when the
// retransmission schedule runs out (measured with curl, tftp-hpa and atftp
// through a lossy relay: TestAnticipateOneLoss, TestAnticipateLossy). It
// stays off by default. Transfer sockets bind the wildcard address (the
// gate hides the request's destination from pin/tftp), so on a host with
// several addresses in one subnet the kernel's preferred source address
// answers; in single_port mode the gate sends every reply from the address
// the client's packets arrived on (IP_PKTINFO), wildcard listen included. A
// WRQ accepts DATA from any port of the client's address (pin/tftp does not
// pin the transfer ID there). Errors found by the handlers (file not found,
// symlink out of the root, special files) reach the client as code 1 with a
// generic text.
package tftpd
