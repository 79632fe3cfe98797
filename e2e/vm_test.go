//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vmMAC is the guest NIC's address; the [[machine]] entry names it.
const vmMAC = "52:54:00:12:34:56"

// Firmware files from Debian's ovmf package.
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// firmware is how the VM starts: SeaBIOS with the e1000's iPXE option ROM
// (the ROM is iPXE, so it asks for the rendered script straight away), or
// OVMF's own PXE stack on a virtio-net NIC without an option ROM (EDK2 asks
// with arch 7, fetches ipxe.efi over TFTP, and that iPXE asks for the
// script).
type firmware string

const (
	fwBIOS firmware = "bios"
	fwUEFI firmware = "uefi"
)

// vm is one QEMU guest and its serial console.
type vm struct {
	proc   *proc
	serial *logWatch
}

// startVM boots a QEMU guest from the network inside the VM namespace. Its
// serial console goes to dir/serial.log, QEMU's own messages to
// dir/qemu.log.
func startVM(t *testing.T, n *testNet, fw firmware, dir string) *vm {
	t.Helper()
	accel := os.Getenv(envAccel)
	if accel == "" {
		accel = "tcg"
	}
	serial := filepath.Join(dir, "serial.log")
	args := []string{"qemu-system-x86_64",
		"-accel", accel,
		"-machine", "pc",
		"-m", "512",
		"-smp", "1",
		"-display", "none",
		"-vga", "none",
		"-monitor", "none",
		"-serial", "file:" + serial,
		"-no-reboot",
		"-netdev", "tap,id=n0,ifname=" + tapIf + ",script=no,downscript=no",
	}
	switch fw {
	case fwBIOS:
		// With no VGA, SeaBIOS's serial console (the fw_cfg file
		// etc/sercon-port: the port as a little-endian integer) shows
		// SeaBIOS and iPXE on the serial log too.
		sercon := filepath.Join(dir, "sercon-port")
		if err := os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644); err != nil {
			t.Fatalf("e2e: %v", err)
		}
		// The e1000 option ROM is Debian's ipxe-qemu efi-e1000.rom
		// (legacy PXE + EFI); SeaBIOS runs its PXE part.
		args = append(args,
			"-fw_cfg", "name=etc/sercon-port,file="+sercon,
			"-device", "e1000,netdev=n0,mac="+vmMAC+",romfile=/usr/lib/ipxe/qemu/efi-e1000.rom",
			"-boot", "n")
	case fwUEFI:
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars, 0o644); err != nil {
			t.Fatalf("e2e: OVMF vars: %v", err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,file="+vars,
			"-device", "virtio-net-pci,netdev=n0,mac="+vmMAC+",romfile=,bootindex=1")
	}
	_ = os.WriteFile(filepath.Join(dir, "qemu.cmdline"), []byte(strings.Join(args, " ")+"\n"), 0o644)
	p := startProc(t, "qemu", filepath.Join(dir, "qemu.log"), n.inVM(args...)...)
	return &vm{proc: p, serial: watchLog(t, serial)}
}

// alive reports whether QEMU still runs.
func (v *vm) alive() bool {
	done, _ := v.proc.exited()
	return !done
}
