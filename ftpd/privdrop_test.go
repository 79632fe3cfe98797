package ftpd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// TestActiveAfterPrivilegeDrop runs a server that binds as root and then
// drops to nobody (as the appliance does), and proves active mode still
// works: data connections come from an unprivileged source port
// (ActiveTransferPortNon20), never from port 20, which nobody cannot bind.
func TestActiveAfterPrivilegeDrop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges (CI runs as root)")
	}
	dir, err := os.MkdirTemp("", "ftpd-drop-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	must(t, os.MkdirAll(dir+"/root/pub", 0o755))
	payload := []byte(strings.Repeat("after the drop\n", 10000))
	must(t, os.WriteFile(dir+"/root/pub/f.txt", payload, 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDroppedServer$")
	cmd.Env = append(os.Environ(), "BOOTYARD_FTPD_DROP_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	cmd.Stderr = os.Stderr
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
		t.Log(sc.Text())
	}
	if addr == "" {
		t.Fatal("helper server did not start")
	}
	out := filepath.Join(t.TempDir(), "got")
	if o, err := run(t, "curl", "-sS", "--max-time", "15", "-P", "127.0.0.1", "-o", out, "ftp://"+addr+"/pub/f.txt"); err != nil {
		t.Fatalf("active download after privilege drop: %v\n%s", err, o)
	}
	if fileSum(t, out) != sum(payload) {
		t.Fatal("checksum mismatch")
	}
}

// TestHelperDroppedServer is the child process of
// TestActiveAfterPrivilegeDrop; it does nothing in a normal run.
func TestHelperDroppedServer(t *testing.T) {
	dir := os.Getenv("BOOTYARD_FTPD_DROP_DIR")
	if dir == "" {
		return
	}
	cfg := DefaultConfig()
	cfg.Listen = units.MustListenAddr("127.0.0.1:0")
	cfg.Root = dir + "/root"
	cfg.PassivePorts = passiveRange()
	srv, err := New(cfg, Deps{})
	must(t, err)
	must(t, srv.Listen())
	// Drop to nobody/nogroup for every thread (Go applies setuid process-wide).
	must(t, syscall.Setgroups(nil))
	must(t, syscall.Setgid(65534))
	must(t, syscall.Setuid(65534))
	if syscall.Setuid(0) == nil {
		t.Fatal("regained root")
	}
	fmt.Printf("ADDR %s\n", srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv.Serve(ctx)
}
