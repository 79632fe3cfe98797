//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// payloadSize is the file the guest downloads over FTP.
const payloadSize = 4 << 20

// bulky are the large files of a run directory, removed when it passes.
var bulky = []string{"images", "boot-files", "payload.bin", "curl-payload.bin", "OVMF_VARS.fd", "tftp", "ftp/payload.bin"}

// bootRun is one network boot of one VM, watched phase by phase.
type bootRun struct {
	t      *testing.T
	dir    string // this run's artifacts
	net    *testNet
	vm     *vm
	ph     *phases
	token  string
	server *logWatch // the boot server's log (bootyard or the reference stack)
	others []*logWatch
	// anticipate is bootyard's tftp.anticipate (send-ahead blocks) for this
	// run; 0 is the default lock-step.
	anticipate int
}

// newBootRun makes the artifacts directory and the namespaces for one
// boot. It prints where the artifacts are, again if the test fails.
func newBootRun(t *testing.T, root, name string) *bootRun {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Logf("e2e: artifacts for %s in %s", name, dir)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e: %s FAILED; serial log, server log and configs kept in %s", name, dir)
			return
		}
		// A passing run keeps its logs and configs, not its bulky copies.
		for _, f := range bulky {
			_ = os.RemoveAll(filepath.Join(dir, f))
		}
	})
	var tok [6]byte
	_, _ = rand.Read(tok[:])
	return &bootRun{t: t, dir: dir, net: setupNet(t), token: name + "-" + hex.EncodeToString(tok[:])}
}

// uploadName is where the guest puts its log, relative to the FTP root.
func (b *bootRun) uploadName() string { return "incoming/" + b.token + ".log" }

// cmdline is the guest kernel command line; server is the address the
// guest fetches the payload from (a template such as {{.Server}} for
// bootyard profiles).
func (b *bootRun) cmdline(server, payload string) string {
	return strings.Join([]string{
		"console=ttyS0,115200", "panic=-1", "loglevel=6",
		"by.server=" + server, "by.payload=" + payload,
		"by.upload=" + b.uploadName(), "by.token=" + b.token,
	}, " ")
}

// boot starts the VM and records the phase clock from that moment.
func (b *bootRun) boot(fw firmware) {
	b.ph = newPhases(b.t, filepath.Join(b.dir, "phases.txt"))
	b.vm = startVM(b.t, b.net, fw, b.dir)
}

// step waits for a line matching re in w and records the phase; on timeout
// or when QEMU ends first it fails the test naming the phase, with the
// tails of the serial console and the server log.
func (b *bootRun) step(phase string, w *logWatch, re matcher, timeout time.Duration) line {
	b.t.Helper()
	l, err := w.wait(re, scaled(timeout), b.vm.alive)
	if err != nil {
		b.fail(phase, err)
	}
	b.ph.mark(phase, l.at)
	return l
}

// fail ends the test with a message naming the phase.
func (b *bootRun) fail(phase string, err error) {
	b.t.Helper()
	var msg strings.Builder
	fmt.Fprintf(&msg, "e2e: phase %q failed: %v\n", phase, err)
	if b.ph != nil && len(b.ph.rows) > 0 {
		fmt.Fprintf(&msg, "phases so far:\n%s\n", b.ph.summary())
	}
	if b.vm != nil {
		if fails := b.vm.serial.findAll(regexp.MustCompile(`BYE2E FAIL`)); len(fails) > 0 {
			fmt.Fprintf(&msg, "guest reported: %s\n", fails[0].text)
		}
		fmt.Fprintf(&msg, "serial console %s (last lines):\n%s", b.vm.serial.path, b.vm.serial.tail(25))
	}
	if b.server != nil {
		fmt.Fprintf(&msg, "server log %s (last lines):\n%s", b.server.path, b.server.tail(25))
	}
	for _, w := range b.others {
		fmt.Fprintf(&msg, "%s (last lines):\n%s", w.path, w.tail(10))
	}
	fmt.Fprintf(&msg, "artifacts: %s", b.dir)
	b.t.Fatal(msg.String())
}

var (
	reKernelUp = regexp.MustCompile(`Linux version \d`)
	reInit     = regexp.MustCompile(`BYE2E init `)
	reLink     = regexp.MustCompile(`BYE2E link `)
	reGuestIP  = regexp.MustCompile(`BYE2E dhcp ip=(\S+)`)
	reServerID = regexp.MustCompile(`BYE2E dhcp .*serverid=(\S+)`)
	rePayload  = regexp.MustCompile(`BYE2E payload sha256=([0-9a-f]{64}) bytes=(\d+)`)
	reUpload   = regexp.MustCompile(`BYE2E upload `)
)

// guestPhases follows the guest from the kernel's first line to power-off
// and checks the payload's sha256. It returns the guest's address and the
// DHCP server that gave it.
func (b *bootRun) guestPhases(wantSHA string) (ip, dhcpServer string) {
	b.t.Helper()
	s := b.vm.serial
	b.step("kernel running", s, reKernelUp, 120*time.Second)
	b.step("guest init", s, reInit, 120*time.Second)
	b.step("guest NIC up", s, reLink, 60*time.Second)
	lease := b.step("guest DHCP", s, reGuestIP, 60*time.Second).text
	m := rePayload.FindStringSubmatch(b.step("payload done", s, rePayload, 120*time.Second).text)
	if m[1] != wantSHA {
		b.fail("payload done", fmt.Errorf("guest computed sha256 %s (%s bytes), want %s (%d bytes)", m[1], m[2], wantSHA, payloadSize))
	}
	b.step("upload done", s, reUpload, 60*time.Second)
	b.step("marker", s, regexp.MustCompile(`BYE2E DONE token=`+regexp.QuoteMeta(b.token)), 30*time.Second)
	select {
	case <-b.vm.proc.done:
		b.ph.mark("powered off", time.Now())
	case <-time.After(scaled(30 * time.Second)):
		b.fail("power off", fmt.Errorf("QEMU still runs 30s after the marker"))
	}
	ip = reGuestIP.FindStringSubmatch(lease)[1]
	if m := reServerID.FindStringSubmatch(lease); m != nil {
		dhcpServer = m[1]
	}
	return ip, dhcpServer
}

// checkUpload reads the guest's log from the FTP tree on disk and checks
// its content and, unless wantMode is 0, its permissions.
func (b *bootRun) checkUpload(path, wantSHA string, wantMode os.FileMode) {
	b.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.fail("upload stored", fmt.Errorf("uploaded log not on disk: %w", err))
	}
	for _, want := range []string{"bootyard-e2e upload", "token=" + b.token, "payload_sha256=" + wantSHA} {
		if !strings.Contains(string(data), want) {
			b.fail("upload stored", fmt.Errorf("uploaded log %s lacks %q; it holds:\n%s", path, want, data))
		}
	}
	_ = os.WriteFile(filepath.Join(b.dir, "guest-upload.log"), data, 0o644)
	if wantMode != 0 {
		fi, err := os.Stat(path)
		if err != nil {
			b.fail("upload stored", err)
		}
		if fi.Mode().Perm() != wantMode {
			b.fail("upload stored", fmt.Errorf("uploaded log %s has mode %v, want %v", path, fi.Mode().Perm(), wantMode))
		}
	}
}
