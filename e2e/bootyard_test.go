//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Names of the two staged images and the payload inside the second.
const (
	bootImage    = "e2e-boot"
	payloadImage = "e2e-payload"
	payloadPath  = "images/" + payloadImage + "/payload.bin"
	vmHostname   = "bye2e"
)

// macDashed is the VM MAC as rendered names spell it.
var macDashed = strings.ReplaceAll(vmMAC, ":", "-")

// TestNetworkBoot boots a QEMU VM from bootyard four ways: BIOS (iPXE
// option ROM) and UEFI (OVMF's PXE, which chains ipxe.efi), each once with
// bootyard as the DHCP server and once with dnsmasq handing out the address
// and bootyard answering only the PXE part (proxyDHCP).
func TestNetworkBoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "qemu-system-x86_64", "dnsmasq", "busybox", "ip", "curl", "apt-get", "dpkg-deb")
	requireFiles(t, "ipxe-qemu", "/usr/lib/ipxe/qemu/efi-e1000.rom")
	requireFiles(t, "ipxe", "/usr/lib/ipxe/undionly.kpxe", "/usr/lib/ipxe/ipxe.efi")
	root := artifactsRoot(t)
	t.Logf("e2e: artifacts in %s", root)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e: FAILED: artifacts (serial logs, bootyard logs, configs) kept in %s", root)
			return
		}
		_ = os.Remove(filepath.Join(root, "bootyard"))
		_ = os.Remove(filepath.Join(root, "initrd.gz"))
		t.Logf("e2e: logs and configs kept in %s", root)
	})
	bin := buildBootyard(t, root)
	k := fetchKernel(t)
	initrd := filepath.Join(root, "initrd.gz")
	buildInitramfs(t, k, initrd)
	content := bootContent{bin: bin, kernel: k.Vmlinuz, initrd: initrd}

	// The -sendahead run answers issue 3's question with real firmware:
	// does pin/tftp's unnegotiated send-ahead (tftp.anticipate) work with
	// iPXE, and what does it change in the kernel+initrd phase? BIOS iPXE
	// (e1000 ROM) takes it; iPXE on UEFI (ipxe.efi over SNP) stalls at 5%
	// of the kernel and times out (measured 2026-11-26, docs/tftp.md), which
	// is why anticipate stays 0 by default. That failing run is kept out of
	// CI; BOOTYARD_E2E_SENDAHEAD_UEFI=1 brings it back.
	runs := []struct {
		name       string
		mode       string
		fw         firmware
		anticipate int
	}{
		{"bios-server", "server", fwBIOS, 0},
		{"bios-proxy", "proxy", fwBIOS, 0},
		{"uefi-server", "server", fwUEFI, 0},
		{"uefi-proxy", "proxy", fwUEFI, 0},
		{"bios-server-sendahead", "server", fwBIOS, 8},
	}
	if os.Getenv("BOOTYARD_E2E_SENDAHEAD_UEFI") == "1" {
		runs = append(runs, struct {
			name       string
			mode       string
			fw         firmware
			anticipate int
		}{"uefi-server-sendahead", "server", fwUEFI, 8})
	}
	var summary []string
	for _, r := range runs {
		if r.fw == fwUEFI && os.Getenv(envUEFI) == "0" {
			t.Logf("e2e: %s left out (%s=0)", r.name, envUEFI)
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			if r.fw == fwUEFI {
				requireFiles(t, "ovmf", ovmfCode, ovmfVars)
			}
			b := newBootRun(t, root, r.name)
			b.anticipate = r.anticipate
			bootyardBoot(t, b, content, r.mode, r.fw)
			summary = append(summary, r.name+":\n"+b.ph.summary())
		})
	}
	t.Logf("e2e: phase times (from QEMU start):\n%s", strings.Join(summary, "\n"))
}

// bootContent is what every run stages: the bootyard binary, the guest
// kernel and the initramfs.
type bootContent struct {
	bin, kernel, initrd string
}

// buildBootyard builds cmd/bootyard into the artifacts directory, unless
// BOOTYARD_E2E_BIN names a binary (a relative path is taken from the
// module root).
func buildBootyard(t *testing.T, root string) string {
	t.Helper()
	if bin := os.Getenv(envBootyard); bin != "" {
		if !filepath.IsAbs(bin) {
			bin = filepath.Join("..", bin) // relative to the module root, not e2e/
		}
		abs, err := filepath.Abs(bin)
		if err != nil {
			t.Fatalf("e2e: %s: %v", envBootyard, err)
		}
		return abs
	}
	bin := filepath.Join(root, "bootyard")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", bin, "./cmd/bootyard")
	cmd.Dir = ".." // the module root; go test runs in the package directory
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: phase \"build bootyard\": go build ./cmd/bootyard: %v\n%s", err, out)
	}
	return bin
}

// bootyardConfig renders the bootyard configuration of one run.
func bootyardConfig(b *bootRun, mode string) string {
	var pool string
	if mode == "server" {
		pool = fmt.Sprintf(`
[[dhcp.pool]]
range = "%s-%s"
subnet = "%s"
lease_time = "1h"
`, poolFirst, poolLast, subnet)
	}
	return fmt.Sprintf(`# bootyard e2e run %[1]s (generated)
[server]
state_dir = %[2]q
user = "nobody"
log_format = "json"
log_level = "debug"
shutdown_timeout = "5s"

[dhcp]
mode = %[3]q
interface = %[4]q
%[5]s
[tftp]
root = %[6]q
anticipate = %[14]d

[ftp]
root = %[7]q
passive_ports = "30000-30100"
anonymous = { enabled = true, incoming = "incoming", max_upload = "1MiB" }

[images]
dir = %[8]q

[[profile]]
name = "e2e"
description = "bootyard end-to-end guest"
image = %[9]q
kernel = "vmlinuz"
initrd = ["initrd.gz"]
cmdline = %[10]q

[[machine]]
mac = %[11]q
hostname = %[12]q
ip = %[13]q
profile = "e2e"
`, b.token, filepath.Join(b.dir, "state"), mode, serverIf, pool,
		filepath.Join(b.dir, "tftp"), filepath.Join(b.dir, "ftp"), filepath.Join(b.dir, "images"),
		bootImage, b.cmdline("{{.Server}}", payloadPath), vmMAC, vmHostname, reservedIP, b.anticipate)
}

// bootyardBoot runs one boot against bootyard and checks every phase.
func bootyardBoot(t *testing.T, b *bootRun, c bootContent, mode string, fw firmware) {
	// Trees bootyard serves: the TFTP root holds the first-stage loaders
	// from Debian's ipxe (the QEMU ROM already is iPXE, so a correct plan
	// never hands them out here), the FTP root starts empty.
	tftp := filepath.Join(b.dir, "tftp")
	ftp := filepath.Join(b.dir, "ftp")
	for _, d := range []string{tftp, ftp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	for _, f := range []string{"undionly.kpxe", "ipxe.efi"} {
		if err := copyFile(filepath.Join("/usr/lib/ipxe", f), filepath.Join(tftp, f), 0o644); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	payload := filepath.Join(b.dir, "payload.bin")
	sha := makePayload(t, payload, payloadSize, b.token)
	// The boot image names its files vmlinuz and initrd.gz.
	stage := filepath.Join(b.dir, "boot-files")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	for src, name := range map[string]string{c.kernel: "vmlinuz", c.initrd: "initrd.gz"} {
		if err := copyFile(src, filepath.Join(stage, name), 0o644); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}

	cfg := filepath.Join(b.dir, "bootyard.toml")
	if err := os.WriteFile(cfg, []byte(bootyardConfig(b, mode)), 0o644); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	cli := func(phase string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := run(ctx, c.bin, args...)
		_ = os.WriteFile(filepath.Join(b.dir, "cli.log"), append(mustRead(filepath.Join(b.dir, "cli.log")),
			[]byte("$ bootyard "+strings.Join(args, " ")+"\n"+string(out)+"\n")...), 0o644)
		if err != nil {
			b.fail(phase, err)
		}
		return string(out)
	}
	cli("config check", "check", "--config", cfg)
	cli("stage images", "images", "add", "--config", cfg, bootImage,
		filepath.Join(stage, "vmlinuz"), filepath.Join(stage, "initrd.gz"))
	cli("stage images", "images", "add", "--config", cfg, payloadImage, payload)

	// bootyard in the server namespace.
	logPath := filepath.Join(b.dir, "bootyard.log")
	serve := startProc(t, "bootyard", logPath, b.net.inSrv(c.bin, "serve", "--config", cfg)...)
	b.server = watchLog(t, logPath)
	if _, err := b.server.wait(jsonLine{"msg": "ready"}, scaled(30*time.Second), func() bool {
		done, _ := serve.exited()
		return !done
	}); err != nil {
		b.fail("bootyard start", err)
	}

	// The VM's side of the link has a router: dnsmasq sending IPv6 router
	// advertisements (without one, iPXE's "Configuring" waits ~13 s for
	// them on every boot) and, in proxy mode, handing out IPv4 addresses
	// with no boot options at all.
	args := []string{"dnsmasq",
		"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--log-facility=-", "--log-dhcp",
		"--interface=" + bridgeIf, "--bind-interfaces",
		"--dhcp-leasefile=" + filepath.Join(b.dir, "dnsmasq.leases"),
		"--enable-ra", "--dhcp-range=" + ula + ",ra-only",
	}
	if mode == "proxy" {
		args = append(args, "--dhcp-range="+poolFirst+","+poolLast+",255.255.255.0,1h")
	}
	dnsLog := filepath.Join(b.dir, "dnsmasq.log")
	startProc(t, "dnsmasq", dnsLog, b.net.inVM(args...)...)
	dns := watchLog(t, dnsLog)
	b.others = append(b.others, dns)
	if _, err := dns.wait(regexp.MustCompile(`router advertisement on `+regexp.QuoteMeta(ula)), scaled(10*time.Second), nil); err != nil {
		b.fail("router start", err)
	}

	b.boot(fw)
	mac := jsonLine{"svc": "dhcp", "msg": "lease", "mac": vmMAC}
	if mode == "server" {
		mac["ip"] = reservedIP
		b.step("DHCP lease (firmware)", b.server, mac, 90*time.Second)
	} else {
		b.step("DHCP address (dnsmasq)", dns, regexp.MustCompile(`DHCPACK\(`+bridgeIf+`\) \S+ `+vmMAC), 90*time.Second)
	}
	script := "ipxe/" + macDashed + ".ipxe"
	tftpOK := func(file string) tftpDelivered { return tftpDelivered(file) }
	if fw == fwUEFI {
		// EDK2's PXE (arch 7, no user class) gets the efi-x64 boot file.
		b.step("TFTP ipxe.efi (first TFTP)", b.server, tftpOK("ipxe.efi"), 90*time.Second)
		b.step("TFTP script", b.server, tftpOK(script), 90*time.Second)
	} else {
		b.step("TFTP script (first TFTP)", b.server, tftpOK(script), 60*time.Second)
	}
	b.step("TFTP kernel", b.server, tftpOK("images/"+bootImage+"/vmlinuz"), 90*time.Second)
	b.step("TFTP initrd", b.server, tftpOK("images/"+bootImage+"/initrd.gz"), 60*time.Second)
	guestIP, guestServer := b.guestPhases(sha)
	if mode == "server" {
		if guestIP != reservedIP || guestServer != serverIP {
			b.fail("guest DHCP", fmt.Errorf("guest got %s from %s, want the reservation %s from bootyard (%s)", guestIP, guestServer, reservedIP, serverIP))
		}
		if len(b.server.findAll(mac)) < 2 {
			b.fail("guest DHCP", fmt.Errorf("bootyard logged no second lease for %s (the guest's udhcpc)", vmMAC))
		}
	} else {
		// Proxy mode hands out no address: the guest's address came from
		// dnsmasq's pool, and bootyard logged no lease.
		if guestServer != bridgeIP {
			b.fail("guest DHCP", fmt.Errorf("guest got %s from %s, want an address from dnsmasq (%s)", guestIP, guestServer, bridgeIP))
		}
		if l, ok := b.server.find(jsonLine{"svc": "dhcp", "msg": "lease"}); ok {
			b.fail("guest DHCP", fmt.Errorf("bootyard in proxy mode granted a lease: %s", l.text))
		}
	}
	// bootyard's own account of the FTP phases. The guest may report its
	// upload done (and power off) a moment before the log watcher has read
	// bootyard's line for it, so wait briefly rather than look once.
	for _, l := range []jsonLine{
		{"svc": "ftp", "msg": "download", "path": "/" + payloadPath, "bytes": fmt.Sprint(payloadSize), "ok": "true"},
		{"svc": "ftp", "msg": "upload", "path": "/" + b.uploadName(), "ok": "true"},
	} {
		if _, err := b.server.wait(l, scaled(10*time.Second), nil); err != nil {
			b.fail("FTP log", fmt.Errorf("bootyard logged no %s: %w", l, err))
		}
	}
	// Anonymous uploads are stored 0600 (DESIGN.md).
	b.checkUpload(filepath.Join(ftp, b.uploadName()), sha, 0o600)
	b.checkDropBox(sha)
	if !serve.stop(t, scaled(15*time.Second)) {
		b.fail("bootyard stop", fmt.Errorf("bootyard serve did not exit within 15s of SIGTERM"))
	}
	if serve.err != nil {
		b.fail("bootyard stop", fmt.Errorf("bootyard serve exited with %v after SIGTERM", serve.err))
	}
	if mode == "server" {
		// The lease outlives the daemon.
		out := cli("lease store", "leases", "--config", cfg)
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(vmMAC) + `\s+` + regexp.QuoteMeta(reservedIP) + `\s+` + vmHostname + `\s.*bound`).MatchString(out) {
			b.fail("lease store", fmt.Errorf("bootyard leases does not list %s -> %s bound:\n%s", vmMAC, reservedIP, out))
		}
	}
	t.Logf("e2e: %s passed; phases:\n%s", b.dir, b.ph.summary())
}

// checkDropBox checks over anonymous FTP, with curl from the VM's side of
// the link, that the payload reads back (the control) and that the uploaded
// log can neither be read back nor seen in a listing of incoming/.
func (b *bootRun) checkDropBox(wantSHA string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scaled(60*time.Second))
	defer cancel()
	base := "ftp://" + serverIP + "/"
	got := filepath.Join(b.dir, "curl-payload.bin")
	if out, err := b.net.runVM(ctx, "curl", "-sS", "--max-time", "20", "-o", got, base+payloadPath); err != nil {
		b.fail("FTP read-back", fmt.Errorf("control download of %s failed: %v %s", payloadPath, err, out))
	}
	if sum := fileSHA256(b.t, got); sum != wantSHA {
		b.fail("FTP read-back", fmt.Errorf("curl got sha256 %s for %s, want %s", sum, payloadPath, wantSHA))
	}
	out, err := b.net.runVM(ctx, "curl", "-sS", "--max-time", "20", "-o", "/dev/null", base+b.uploadName())
	if err == nil {
		b.fail("FTP read-back", fmt.Errorf("anonymous RETR %s succeeded: the drop box is readable", b.uploadName()))
	}
	b.t.Logf("e2e: anonymous RETR %s refused as it should be: %s", b.uploadName(), strings.TrimSpace(lastLine(string(out))))
	list, err := b.net.runVM(ctx, "curl", "-sS", "--max-time", "20", base+"incoming/")
	if err == nil && strings.Contains(string(list), b.token) {
		b.fail("FTP read-back", fmt.Errorf("anonymous LIST incoming/ shows the upload:\n%s", list))
	}
	b.ph.mark("drop box checked", time.Now())
}

func fileSHA256(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func mustRead(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

// tftpDelivered matches bootyard's log line for a TFTP read of a file whose
// every byte went out: outcome "ok", or "unacknowledged" when only the final
// ACK never arrived (under TCG on a loaded machine a guest's last ACK is
// sometimes lost; the guest booting from the file then proves it arrived).
type tftpDelivered string

// MatchString implements matcher.
func (f tftpDelivered) MatchString(s string) bool {
	if !(jsonLine{"svc": "tftp", "msg": "transfer", "op": "read", "file": string(f)}).MatchString(s) {
		return false
	}
	return jsonLine{"outcome": "ok"}.MatchString(s) || jsonLine{"outcome": "unacknowledged"}.MatchString(s)
}

// String implements matcher.
func (f tftpDelivered) String() string {
	return fmt.Sprintf("TFTP read of %s with outcome ok or unacknowledged", string(f))
}
