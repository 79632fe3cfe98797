//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// TestReferenceBoot boots the guest against a stack bootyard replaces:
// dnsmasq (DHCP + TFTP) and pyftpdlib (FTP). It proves the guest side
// (firmware, kernel, initramfs, NIC modules, busybox clients) on its own,
// so a failure of the bootyard runs points at bootyard.
func TestReferenceBoot(t *testing.T) {
	requireRoot(t)
	requireTools(t, "qemu-system-x86_64", "dnsmasq", "busybox", "ip", "apt-get", "dpkg-deb")
	if _, err := run(t.Context(), debianPython, "-c", "import pyftpdlib"); err != nil {
		t.Fatalf("e2e: python3 pyftpdlib missing: install python3-pyftpdlib (make test does)")
	}
	root := artifactsRoot(t)
	t.Logf("e2e: artifacts in %s", root)
	k := fetchKernel(t)
	// BIOS only: the UEFI guest side is the same kernel and initramfs.
	t.Run(string(fwBIOS), func(t *testing.T) { referenceBoot(t, root, k, fwBIOS) })
}

func referenceBoot(t *testing.T, root string, k guestKernel, fw firmware) {
	if fw == fwUEFI {
		requireFiles(t, "ovmf", ovmfCode, ovmfVars)
	}
	b := newBootRun(t, root, "reference-"+string(fw))

	tftp := filepath.Join(b.dir, "tftp")
	ftp := filepath.Join(b.dir, "ftp")
	for _, d := range []string{tftp, filepath.Join(ftp, "incoming")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyFile(k.Vmlinuz, filepath.Join(tftp, "vmlinuz"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildInitramfs(t, k, filepath.Join(tftp, "initrd.gz"))
	sha := makePayload(t, filepath.Join(ftp, "payload.bin"), payloadSize, b.token)
	script := "#!ipxe\n" +
		"kernel tftp://" + serverIP + "/vmlinuz initrd=initrd.gz " + b.cmdline(serverIP, "payload.bin") + "\n" +
		"initrd tftp://" + serverIP + "/initrd.gz\n" +
		"boot\n"
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}

	mustRun(t, "ip", "-n", b.net.srvNS, "addr", "add", "fd00:233::1/64", "dev", serverIf, "nodad")
	dnsLog := filepath.Join(b.dir, "dnsmasq.log")
	startProc(t, "dnsmasq", dnsLog, b.net.inSrv("dnsmasq",
		"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
		"--log-facility=-", "--log-dhcp",
		"--interface="+serverIf, "--bind-interfaces",
		"--dhcp-leasefile="+filepath.Join(b.dir, "dnsmasq.leases"),
		"--dhcp-range="+poolFirst+","+poolLast+",255.255.255.0,1h",
		"--dhcp-host="+vmMAC+","+reservedIP,
		"--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-boot=tag:ipxe,boot.ipxe",
		"--dhcp-boot=tag:!ipxe,undionly.kpxe",
		"--enable-tftp", "--tftp-root="+tftp,
		// Router advertisements spare iPXE its ~13 s wait for them.
		"--enable-ra", "--dhcp-range="+ula+",ra-only",
	)...)
	startProc(t, "pyftpdlib", filepath.Join(b.dir, "ftpd.log"), b.net.inSrv(debianPython, "-m", "pyftpdlib",
		"-i", serverIP, "-p", "21", "-d", ftp, "-w", "-r", "30000-30100")...)
	b.server = watchLog(t, dnsLog)
	b.others = append(b.others, watchLog(t, filepath.Join(b.dir, "ftpd.log")))
	time.Sleep(500 * time.Millisecond)

	b.boot(fw)
	b.step("DHCP ack", b.server, regexp.MustCompile(`DHCPACK\(`+serverIf+`\) `+regexp.QuoteMeta(reservedIP)+` `+vmMAC), 120*time.Second)
	b.step("TFTP script", b.server, regexp.MustCompile(`sent .*/boot\.ipxe to`), 60*time.Second)
	b.step("TFTP kernel", b.server, regexp.MustCompile(`sent .*/vmlinuz to`), 180*time.Second)
	b.step("TFTP initrd", b.server, regexp.MustCompile(`sent .*/initrd\.gz to`), 60*time.Second)
	b.guestPhases(sha)
	b.checkUpload(filepath.Join(ftp, b.uploadName()), sha, 0)
	t.Logf("e2e: reference boot phases:\n%s", b.ph.summary())
}

// debianPython is Debian's interpreter, which sees python3-pyftpdlib
// (a pyenv shim earlier on PATH would not).
const debianPython = "/usr/bin/python3"
