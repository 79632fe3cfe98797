package dhcp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// The integration tests run the server as a child process (this test binary
// re-executed in helper mode) inside a network namespace, and real clients
// in a second namespace joined by a veth pair. Addresses live only inside
// the namespaces (10.231.0.0/16); the host's interfaces and routes are never
// touched.

const (
	envHelper = "BOOTYARD_DHCP_HELPER" // JSON-encoded helperSpec
	srvIf     = "bys0"
	cliIf     = "byc0"
)

// helperSpec is what the child needs; the config is rebuilt from the mode
// (units.Prefix does not survive a JSON round trip when empty).
type helperSpec struct {
	Mode      string
	LeasePath string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envHelper); spec != "" {
		os.Exit(runHelper(spec))
	}
	os.Exit(m.Run())
}

// runHelper runs a server until SIGTERM, printing READY after Listen and a
// STATS line (JSON) when it stops.
func runHelper(spec string) int {
	var h helperSpec
	if err := json.Unmarshal([]byte(spec), &h); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := New(netCfg(h.Mode), Deps{Logger: log, Planner: fakePlanner{}, LeasePath: h.LeasePath})
	if err == nil {
		err = s.Listen()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("READY")
	err = s.Serve(ctx)
	b, _ := json.Marshal(s.Stats())
	fmt.Printf("STATS %s\n", b)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

var nsSeq atomic.Int32

// netnsPair creates two namespaces joined by a veth pair: the server side
// 10.231.0.1/16 on bys0, the client side 10.231.0.2/16 on byc0.
func netnsPair(t *testing.T) (srvNS, cliNS string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("install iproute2 (make test does)")
	}
	n := nsSeq.Add(1)
	srvNS = fmt.Sprintf("byd-s%d-%d", os.Getpid(), n)
	cliNS = fmt.Sprintf("byd-c%d-%d", os.Getpid(), n)
	for _, ns := range []string{srvNS, cliNS} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", srvIf, "netns", srvNS, "type", "veth", "peer", "name", cliIf, "netns", cliNS)
	run(t, "ip", "-n", srvNS, "addr", "add", "10.231.0.1/16", "dev", srvIf)
	run(t, "ip", "-n", cliNS, "addr", "add", "10.231.0.2/16", "dev", cliIf)
	run(t, "ip", "-n", srvNS, "link", "set", srvIf, "up")
	run(t, "ip", "-n", cliNS, "link", "set", cliIf, "up")
	return srvNS, cliNS
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// helper is a server child process.
type helper struct {
	cmd   *exec.Cmd
	out   *bufio.Reader
	stats chan Stats
}

func netCfg(mode string) Config {
	c := DefaultConfig()
	c.Mode, c.Interface = mode, srvIf
	c.RatePerMAC = 0
	c.Pools = []Pool{{Range: "10.231.1.0-10.231.15.254", LeaseTime: 3600e9}}
	return c
}

func startServer(t *testing.T, ns string, mode string, leasePath string) *helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(helperSpec{Mode: mode, LeasePath: leasePath})
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envHelper+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, out: bufio.NewReader(stdout), stats: make(chan Stats, 1)}
	t.Cleanup(func() { h.kill() })
	ready := make(chan error, 1)
	go func() {
		line, err := h.out.ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "READY" {
			err = fmt.Errorf("helper said %q", line)
		}
		ready <- err
		for {
			line, err := h.out.ReadString('\n')
			if err != nil {
				close(h.stats)
				return
			}
			if j, ok := strings.CutPrefix(line, "STATS "); ok {
				var st Stats
				json.Unmarshal([]byte(j), &st)
				h.stats <- st
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("server did not start: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10s")
	}
	return h
}

// stop ends the server with SIGTERM and returns its final counters.
func (h *helper) stop(t *testing.T) Stats {
	t.Helper()
	// ip netns exec execs the binary, so the PID is the server's own.
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case st := <-h.stats:
		h.cmd.Wait()
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}
	return Stats{}
}

func (h *helper) kill() {
	if h.cmd.ProcessState == nil {
		h.cmd.Process.Kill()
		h.cmd.Wait()
	}
}

// inNetns runs fn on a fresh OS thread switched into namespace ns. The
// thread is never returned to the scheduler: the goroutine exits locked, so
// Go destroys the thread. Sockets created by fn stay in ns.
func inNetns(t *testing.T, ns string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// pxeClient is a small DHCP client built on the library's packet builder.
type pxeClient struct {
	c *conn
}

func newClient(t *testing.T, ns string, port int) *pxeClient {
	t.Helper()
	var pc *pxeClient
	inNetns(t, ns, func() error {
		c, err := listenConn(cliIf, port, false)
		pc = &pxeClient{c: c}
		return err
	})
	t.Cleanup(func() { pc.c.uc.Close() })
	return pc
}

// exchange sends b to dst and returns the first reply with the same xid.
func (pc *pxeClient) exchange(t *testing.T, req *dhcpv4.DHCPv4, dst string) (*dhcpv4.DHCPv4, netip.AddrPort) {
	t.Helper()
	if _, err := pc.c.uc.WriteToUDPAddrPort(req.ToBytes(), netip.MustParseAddrPort(dst)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	deadline := time.Now().Add(3 * time.Second)
	for {
		pc.c.uc.SetReadDeadline(deadline)
		n, src, err := pc.c.uc.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, netip.AddrPort{}
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err == nil && p.TransactionID == req.TransactionID && p.OpCode == dhcpv4.OpcodeBootReply {
			return p, src
		}
	}
}

func clientPacket(t *testing.T, typ dhcpv4.MessageType, mac net.HardwareAddr, opts ...pktOpt) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.FromBytes(packet(t, typ, mac, opts...))
	if err != nil {
		t.Fatal(err)
	}
	p.SetBroadcast()
	return p
}

func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install %s (make test does)", name, pkg)
	}
	return p
}

// udhcpc runs busybox udhcpc in ns and returns the address it bound, or "".
func udhcpc(t *testing.T, ns string) (string, string) {
	t.Helper()
	bb := needTool(t, "busybox", "busybox-static")
	script := filepath.Join(t.TempDir(), "script.sh")
	os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip $serverid $subnet\"\nexit 0\n"), 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", ns, bb, "udhcpc", "-f", "-q", "-n", "-t", "2", "-T", "1", "-i", cliIf, "-s", script).CombinedOutput()
	if m := regexp.MustCompile(`LEASE (\S+)`).FindStringSubmatch(string(out)); m != nil {
		return m[1], string(out)
	}
	return "", string(out)
}

func TestNetnsProxy(t *testing.T) {
	srvNS, cliNS := netnsPair(t)
	h := startServer(t, srvNS, ModeProxy, filepath.Join(t.TempDir(), "leases.db"))

	// A second server on port 67 must fail loudly (no SO_REUSEPORT).
	inNetns(t, srvNS, func() error {
		c, err := listenConn(srvIf, 67, false)
		if err == nil {
			c.uc.Close()
			return fmt.Errorf("second bind of port 67 succeeded")
		}
		return nil
	})

	// A real DHCP client gets nothing from a proxy.
	if ip, out := udhcpc(t, cliNS); ip != "" {
		t.Fatalf("udhcpc got a lease from proxy mode: %s\n%s", ip, out)
	}

	// A PXE DISCOVER gets the proxy offer.
	c := newClient(t, cliNS, 68)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0, 1}
	offer, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeDiscover, mac, pxe("PXEClient:Arch:00000:UNDI:002001", 0)), "255.255.255.255:67")
	if offer == nil {
		t.Fatal("no proxy offer")
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.BootFileName != "undionly.kpxe" || offer.BootFileNameOption() != "undionly.kpxe" ||
		!offer.ServerIPAddr.Equal(net.IP{10, 231, 0, 1}) || offer.TFTPServerName() != "10.231.0.1" || offer.ClassIdentifier() != "PXEClient" ||
		!offer.YourIPAddr.IsUnspecified() || offer.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || !offer.IsBroadcast() ||
		!offer.ServerIdentifier().Equal(net.IP{10, 231, 0, 1}) || string(offer.Options.Get(dhcpv4.OptionVendorSpecificInformation)) != string(direct43) {
		t.Fatalf("bad proxy offer:\n%s", offer.Summary())
	}
	// UEFI goes to the boot server on 4011: the ACK comes from port 4011.
	c2 := newClient(t, cliNS, 0)
	req := clientPacket(t, dhcpv4.MessageTypeRequest, mac, pxe("PXEClient:Arch:00007:UNDI:003016", 7), ciaddr("10.231.0.2"))
	ack, src := c2.exchange(t, req, "10.231.0.1:4011")
	if ack == nil {
		t.Fatal("no ACK on 4011")
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" || src.Port() != 4011 || src.Addr().String() != "10.231.0.1" {
		t.Fatalf("bad 4011 reply from %s:\n%s", src, ack.Summary())
	}
	st := h.stop(t)
	if st.Counts["drop_not_boot_client"] == 0 || st.Counts["ACK"] != 1 || st.Counts["OFFER"] != 1 {
		t.Fatalf("counters %v", st.Counts)
	}
}

func TestNetnsServer(t *testing.T) {
	srvNS, cliNS := netnsPair(t)
	leases := filepath.Join(t.TempDir(), "leases.db")
	h := startServer(t, srvNS, ModeServer, leases)

	ip, out := udhcpc(t, cliNS)
	if !strings.HasPrefix(ip, "10.231.") {
		t.Fatalf("udhcpc got no lease:\n%s", out)
	}
	if !strings.Contains(out, "10.231.0.1 255.255.0.0") {
		t.Errorf("udhcpc: wrong server id or mask:\n%s", out)
	}

	nmap := needTool(t, "nmap", "nmap")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nout, _ := exec.CommandContext(ctx, "ip", "netns", "exec", cliNS, nmap, "-e", cliIf, "--script", "broadcast-dhcp-discover",
		"--script-args", "broadcast-dhcp-discover.timeout=3s").CombinedOutput()
	if !regexp.MustCompile(`IP Offered: 10\.231\.`).Match(nout) || !strings.Contains(string(nout), "Server Identifier: 10.231.0.1") {
		t.Fatalf("nmap saw no offer:\n%s", nout)
	}

	// PXE client in server mode: address and boot file in one reply.
	c := newClient(t, cliNS, 68)
	mac := net.HardwareAddr{0x52, 0x54, 0, 0xbb, 0, 1}
	offer, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeDiscover, mac, pxe("PXEClient:Arch:00011:UNDI:003016", 11)), "255.255.255.255:67")
	if offer == nil || offer.BootFileName != "ipxe-arm64.efi" || !strings.HasPrefix(offer.YourIPAddr.String(), "10.231.") ||
		offer.IPAddressLeaseTime(0) != time.Hour || offer.ClassIdentifier() != "PXEClient" {
		t.Fatalf("bad PXE offer in server mode: %v", offer)
	}
	c.c.uc.Close() // perfdhcp is next; free nothing it needs, but be tidy

	// perfdhcp: a relay (giaddr 10.231.0.2, source port 67) with 2000
	// simulated clients doing DORA.
	perf := needTool(t, "perfdhcp", "kea-admin")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel2()
	start := time.Now()
	pout, err := exec.CommandContext(ctx2, "ip", "netns", "exec", cliNS, perf, "-4", "-l", cliIf, "-r", "400", "-R", "2000",
		"-n", "2000", "-p", "8", "-W", "1500000", "10.231.0.1").CombinedOutput()
	elapsed := time.Since(start)
	t.Logf("perfdhcp (%v, err %v):\n%s", elapsed, err, pout)
	m := regexp.MustCompile(`(?s)DISCOVER-OFFER.*?sent packets: (\d+).*?received packets: (\d+).*?drops: (\d+).*?REQUEST-ACK.*?sent packets: (\d+).*?received packets: (\d+).*?drops: (\d+)`).FindStringSubmatch(string(pout))
	if m == nil {
		t.Fatalf("cannot read perfdhcp output")
	}
	st := h.stop(t)
	t.Logf("server counters: %v, bound %d", st.Counts, st.LeasesBound)
	if m[1] != m[2] || m[3] != "0" || m[4] != m[5] || m[6] != "0" || m[1] == "0" || m[4] == "0" {
		t.Fatalf("perfdhcp: discover sent %s received %s drops %s; request sent %s received %s drops %s", m[1], m[2], m[3], m[4], m[5], m[6])
	}
	if st.Counts["NAK"] != 0 || st.Counts["drop_commit_error"] != 0 || st.Counts["drop_overload"] != 0 {
		t.Fatalf("errors under load: %v", st.Counts)
	}
	assertNoDuplicates(t, leases)
}

// assertNoDuplicates reads the lease file and checks one MAC per address
// and one bound address per MAC.
func assertNoDuplicates(t *testing.T, path string) []Lease {
	t.Helper()
	ls, err := ReadLeases(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	byMAC := map[string]string{}
	for _, l := range ls {
		if l.State != StateBound {
			continue
		}
		if prev, ok := byMAC[l.MAC.String()]; ok {
			t.Fatalf("%s bound to %s and %s", l.MAC, prev, l.IP)
		}
		byMAC[l.MAC.String()] = l.IP.String()
	}
	return ls
}

func TestNetnsCrash(t *testing.T) {
	srvNS, cliNS := netnsPair(t)
	leases := filepath.Join(t.TempDir(), "leases.db")
	h := startServer(t, srvNS, ModeServer, leases)
	c := newClient(t, cliNS, 68)
	mac := func(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0xcc, byte(i >> 8), byte(i)} }
	const n = 30
	got := map[string]netip.Addr{}
	for i := range n {
		offer, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeDiscover, mac(i)), "255.255.255.255:67")
		if offer == nil {
			t.Fatalf("client %d: no offer", i)
		}
		ack, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeRequest, mac(i), opt(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
			opt(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))), "255.255.255.255:67")
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
			t.Fatalf("client %d: no ACK: %v", i, ack)
		}
		got[mac(i).String()] = addr4(ack.YourIPAddr)
	}
	// kill -9 right after the last ACK: every ACKed lease must be on disk.
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
	startServer(t, srvNS, ModeServer, leases)

	used := map[netip.Addr]bool{}
	for i := range n {
		want := got[mac(i).String()]
		used[want] = true
		// INIT-REBOOT: the client asks for its address back.
		ack, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeRequest, mac(i), opt(dhcpv4.OptRequestedIPAddress(want.AsSlice()))), "255.255.255.255:67")
		if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || addr4(ack.YourIPAddr) != want {
			t.Fatalf("client %d after restart: want ACK for %v, got %v", i, want, ack)
		}
	}
	if len(used) != n {
		t.Fatalf("duplicate addresses before the crash: %v", got)
	}
	// New clients get addresses nobody holds.
	for i := n; i < n+10; i++ {
		offer, _ := c.exchange(t, clientPacket(t, dhcpv4.MessageTypeDiscover, mac(i)), "255.255.255.255:67")
		if offer == nil {
			t.Fatalf("new client %d: no offer", i)
		}
		if a := addr4(offer.YourIPAddr); used[a] {
			t.Fatalf("new client %d offered %v, which is leased", i, a)
		}
	}
}
