package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// checkTFTPSource starts a bootyard with TFTP alone on 127.0.0.8, sends
// one read request and reports the address the first reply came from: a
// TFTP server should answer from the address the request went to
// (tftpd-hpa and pin/tftp itself take care to), or clients that check the
// source address, and stateful firewalls, drop the replies. It returns ""
// when the reply's source is right.
func (e *env) checkTFTPSource() string {
	const ip = "127.0.0.8"
	base := e.runDir("bootyard-srccheck")
	root := filepath.Join(base, "tftp")
	if err := e.mkRoot(root, fileProbe); err != nil {
		return "check not run: " + err.Error()
	}
	cfg := fmt.Sprintf(`[server]
state_dir = %q
user = ""
allow_root = true
[dhcp]
mode = "off"
[tftp]
listen = "%s:69"
root = %q
[ftp]
enabled = false
[images]
dir = %q
`, filepath.Join(base, "state"), ip, root, filepath.Join(base, "images"))
	path := filepath.Join(base, "bootyard.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return "check not run: " + err.Error()
	}
	p, err := startProc("bootyard-srccheck", filepath.Join(base, "bootyard.log"), nil, e.Bootyard, "serve", "--config", path)
	if err != nil {
		return "check not run: " + err.Error()
	}
	defer p.stop()
	if err := p.waitFor(10*time.Second, udpBound(p.pid(), 69)); err != nil {
		return "check not run: " + err.Error()
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "check not run: " + err.Error()
	}
	defer c.Close()
	rrq := append([]byte{0, 1}, fileProbe+"\x00octet\x00"...)
	if _, err := c.WriteToUDP(rrq, &net.UDPAddr{IP: net.ParseIP(ip), Port: 69}); err != nil {
		return "check not run: " + err.Error()
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1024)
	_, from, err := c.ReadFromUDP(buf)
	if err != nil {
		return fmt.Sprintf("a read request to %s:69 drew no reply in 3 s (%v)", ip, err)
	}
	if !from.IP.Equal(net.ParseIP(ip)) {
		return fmt.Sprintf("a read request sent to %s:69 was answered from %s (clients that check the reply's source address, as bench/tftpload does, and stateful firewalls drop such replies; curl, tftp-hpa and atftp accept them)", ip, from)
	}
	return ""
}
