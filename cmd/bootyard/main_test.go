package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/demo"
)

var binary string // the bootyard binary built once for process-level tests

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bootyard-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "bootyard")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build bootyard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runCLI runs a subcommand in-process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &env{stdin: strings.NewReader(stdin), stdout: &o, stderr: &e})
	return code, o.String(), e.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{nil, exitUsage, "", "Usage: bootyard"},
		{[]string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate"`},
		{[]string{"help"}, exitOK, "Commands:", ""},
		{[]string{"--help"}, exitOK, "Commands:", ""},
		{[]string{"version"}, exitOK, "bootyard ", ""},
		{[]string{"check", "--help"}, exitOK, "", "Usage: bootyard check"},
		{[]string{"serve", "--help"}, exitOK, "", "Usage: bootyard serve"},
		{[]string{"serve", "--bogus"}, exitUsage, "", "flag provided but not defined"},
		{[]string{"serve", "--log-level", "chatty"}, exitUsage, "", "unknown log level"},
		{[]string{"check", "--config", "../../examples/bootyard.toml"}, exitOK, "ok", ""},
		{[]string{"check", "../../examples/bootyard.toml"}, exitOK, "ok", ""},
		{[]string{"check", "--config", "/nonexistent/bootyard.toml"}, exitUsage, "", "no such file"},
		{[]string{"check", "--config", "../../internal/config/testdata/bad/many-problems.toml"}, exitUsage, "", "many-problems.toml:5: server.log_format"},
		{[]string{"check", "--config", "../../internal/config/testdata/bad/unknown-key.toml"}, exitUsage, "", "unknown-key.toml:5: tftp.lisen: unknown key"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			if !strings.Contains(out, tt.inStdout) {
				t.Errorf("stdout %q does not contain %q", out, tt.inStdout)
			}
			if !strings.Contains(errOut, tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", errOut, tt.inStderr)
			}
		})
	}
	for name := range commands {
		if name == "help" {
			continue
		}
		if code, _, errOut := runCLI(t, "", name, "--help"); code != exitOK {
			t.Errorf("%s --help: exit %d: %s", name, code, errOut)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is a bootyard serve process under test.
type daemon struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan string
	log   *syncBuffer
	done  chan error
}

func startServe(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, lines: make(chan string, 1000), log: &syncBuffer{}, done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.log.WriteString(sc.Text() + "\n")
			select {
			case d.lines <- sc.Text():
			default:
			}
		}
		close(d.lines)
		d.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})
	return d
}

// waitFor reads log lines until one contains s.
func (d *daemon) waitFor(s string, timeout time.Duration) string {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("daemon exited before logging %q:\n%s", s, d.log)
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-deadline:
			d.t.Fatalf("no log line with %q after %s:\n%s", s, timeout, d.log)
		}
	}
}

func (d *daemon) wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		d.t.Fatalf("daemon did not exit within %s:\n%s", timeout, d.log)
		return -1
	}
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install it (make test does)", name)
	}
	return p
}

// TestServeDemo runs the embedded demo as a real process, fetches files with
// real clients, reloads, and stops it with SIGINT.
func TestServeDemo(t *testing.T) {
	curl := needTool(t, "curl")
	dir := openTempDir(t)
	d := startServe(t, dir)
	d.waitFor(`msg=listening svc=tftp addr=127.0.0.1:6969`, 10*time.Second)
	d.waitFor(`msg=listening svc=ftp addr=127.0.0.1:2121`, 5*time.Second)
	d.waitFor("msg=ready", 5*time.Second)

	out, err := exec.Command(curl, "-sS", "--max-time", "10", "tftp://127.0.0.1:6969/hello.txt").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Hello from bootyard's TFTP server") {
		t.Fatalf("curl tftp: %v: %s", err, out)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "ftp://127.0.0.1:2121/README.txt").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Hello from bootyard's FTP server") {
		t.Fatalf("curl ftp: %v: %s", err, out)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "tftp://127.0.0.1:6969/ipxe/52-54-00-12-34-56.ipxe").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "#!ipxe") {
		t.Fatalf("curl rendered iPXE script: %v: %s", err, out)
	}

	// The staged image and rendered files, over both protocols, through the
	// appliance's wiring (images store and profiles behind each service).
	fetches := []struct{ url, want string }{
		{"tftp://127.0.0.1:6969/images/demo-linux/vmlinuz", "demo kernel placeholder"},
		{"ftp://127.0.0.1:2121/images/demo-linux/initrd.img", "demo initrd placeholder"},
		{"ftp://127.0.0.1:2121/preseed/demo01.cfg", "d-i netcfg/get_hostname string demo01"},
		{"tftp://127.0.0.1:6969/grub/grub.cfg-01-52-54-00-12-34-56", "images/demo-linux/vmlinuz"},
	}
	for _, f := range fetches {
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "--ftp-method", "nocwd", f.url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), f.want) {
			t.Errorf("curl %s: %v: %q does not contain %q", f.url, err, out, f.want)
		}
	}
	// The drop box takes an anonymous upload and will not give it back.
	upload := filepath.Join(dir, "device.log")
	os.WriteFile(upload, []byte("boot ok\n"), 0o644)
	if out, err := exec.Command(curl, "-sS", "--max-time", "10", "-T", upload, "ftp://127.0.0.1:2121/incoming/").CombinedOutput(); err != nil {
		t.Errorf("anonymous upload: %v: %s", err, out)
	}
	if out, err := exec.Command(curl, "-sS", "--max-time", "10", "ftp://127.0.0.1:2121/incoming/device.log").CombinedOutput(); err == nil {
		t.Errorf("anonymous read-back of an upload succeeded: %s", out)
	}

	cfgs, _ := filepath.Glob(filepath.Join(dir, "bootyard-demo-*", "bootyard.toml"))
	if len(cfgs) != 1 {
		t.Fatalf("demo configuration not found under %s: %v", dir, cfgs)
	}
	if got, err := os.ReadFile(filepath.Join(filepath.Dir(cfgs[0]), "ftp", "incoming", "device.log")); err != nil || string(got) != "boot ok\n" {
		t.Errorf("uploaded log in incoming/: %q, %v", got, err)
	}
	// status and leases ask the running daemon over its control socket.
	code, out2, errOut := runCLI(t, "", "status", "--config", cfgs[0])
	if code != exitOK || !strings.Contains(out2, "tftp  127.0.0.1:6969") || !strings.Contains(out2, "Completed=") {
		t.Errorf("status: exit %d\n%s%s", code, out2, errOut)
	}
	if code, out2, errOut := runCLI(t, "", "leases", "--config", cfgs[0]); code != exitOK || !strings.Contains(out2, "MAC") {
		t.Errorf("leases: exit %d\n%s%s", code, out2, errOut)
	}

	if os.Geteuid() == 0 {
		if !strings.Contains(d.log.String(), `msg="dropped privileges" user=nobody`) {
			t.Errorf("no privilege-drop line:\n%s", d.log)
		}
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("Uid:\t%s\t%s\t%s\t%s", nobody.Uid, nobody.Uid, nobody.Uid, nobody.Uid)
		if !strings.Contains(string(status), want) {
			t.Errorf("daemon still has other ids after the drop; want %q in\n%s", want, status)
		}
	}

	// A broken configuration on SIGHUP keeps the old one.
	good, _ := os.ReadFile(cfgs[0])
	if err := os.WriteFile(cfgs[0], append(good, []byte("\n[tftp]\nbogus = 1\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor("reload failed", 5*time.Second)
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "tftp://127.0.0.1:6969/hello.txt").CombinedOutput()
	if err != nil {
		t.Fatalf("tftp after failed reload: %v: %s", err, out)
	}
	if err := os.WriteFile(cfgs[0], good, 0o644); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.waitFor("msg=reloaded", 5*time.Second)

	d.cmd.Process.Signal(syscall.SIGINT)
	if code := d.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0:\n%s", code, d.log)
	}
	if !strings.Contains(d.log.String(), "msg=stopped") {
		t.Errorf("no stopped line:\n%s", d.log)
	}
}

// TestServePortInUse: a listener that cannot bind stops start-up with an
// error naming the service and address, exit code 1.
func TestServePortInUse(t *testing.T) {
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", demo.TFTPPort))
	if err != nil {
		t.Fatalf("occupy the demo TFTP port: %v", err)
	}
	defer pc.Close()
	dir := t.TempDir()
	d := startServe(t, dir)
	if code := d.wait(15 * time.Second); code != exitFailure {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitFailure, d.log)
	}
	if !strings.Contains(d.log.String(), "tftp") || !strings.Contains(d.log.String(), "127.0.0.1:6969") {
		t.Errorf("error does not name the service and address:\n%s", d.log)
	}
}

// TestServeBadConfig: a broken configuration exits 2 with file:line.
func TestServeBadConfig(t *testing.T) {
	d := startServe(t, t.TempDir(), "--config", mustAbs(t, "../../internal/config/testdata/bad/wrong-type.toml"))
	if code := d.wait(10 * time.Second); code != exitUsage {
		t.Fatalf("exit code %d, want %d:\n%s", code, exitUsage, d.log)
	}
	if !strings.Contains(d.log.String(), "wrong-type.toml:6: tftp.max_transfers") {
		t.Errorf("error does not name file, line and key:\n%s", d.log)
	}
}

// TestServeSecondSignal: a second SIGTERM stops at once.
func TestServeSecondSignal(t *testing.T) {
	dir := openTempDir(t)
	d := startServe(t, dir)
	d.waitFor("msg=ready", 15*time.Second)
	// Hold a transfer open so the drain has something to wait for.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", demo.FTPPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitFor("signal received", 5*time.Second)
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.wait(10 * time.Second)
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// openTempDir returns a temporary directory the service user can traverse
// after the privilege drop (t.TempDir's parent is 0700), so SIGHUP can
// re-read the configuration file as that user.
func openTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoggerDurations(t *testing.T) {
	var lv slog.LevelVar
	for _, format := range []string{"text", "json"} {
		var b bytes.Buffer
		newLogger(&b, format, &lv).Info("x", "duration", 1500*time.Millisecond)
		if !strings.Contains(b.String(), "1.5s") {
			t.Errorf("%s log writes a duration as %q, want 1.5s", format, b.String())
		}
	}
}
