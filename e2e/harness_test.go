//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables the harness reads.
const (
	envArtifacts = "BOOTYARD_E2E_ARTIFACTS" // where logs and configs go (default /tmp/bootyard-e2e/<run>)
	envCache     = "BOOTYARD_E2E_CACHE"     // kernel cache (default $XDG_CACHE_HOME/bootyard-e2e or /var/cache/bootyard-e2e)
	envBootyard  = "BOOTYARD_E2E_BIN"       // a prebuilt bootyard binary (default: go build ./cmd/bootyard)
	envScale     = "BOOTYARD_E2E_TIMEOUT_SCALE"
	envAccel     = "BOOTYARD_E2E_ACCEL" // QEMU accelerator (default tcg, as in CI)
	envUEFI      = "BOOTYARD_E2E_UEFI"  // "0" leaves out the UEFI run
)

// debPackages maps each program the harness runs to the Debian package that
// ships it, for the failure message when one is missing.
var debPackages = map[string]string{
	"qemu-system-x86_64": "qemu-system-x86",
	"dnsmasq":            "dnsmasq-base",
	"busybox":            "busybox-static",
	"ip":                 "iproute2",
	"curl":               "curl",
	"apt-get":            "apt",
	"dpkg-deb":           "dpkg",
}

// requireRoot skips when the test cannot create namespaces and tap devices.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root for network namespaces and tap devices (CI runs as root)")
	}
}

// requireTools fails (never skips) when a program the run needs is missing.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			pkg := debPackages[n]
			if pkg == "" {
				pkg = n
			}
			t.Fatalf("e2e: %s not found: install %s (make test does)", n, pkg)
		}
	}
}

// requireFiles fails when a firmware file a package ships is missing.
func requireFiles(t *testing.T, pkg string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("e2e: %s missing: install %s (make test does)", p, pkg)
		}
	}
}

// timeScale stretches every phase timeout (BOOTYARD_E2E_TIMEOUT_SCALE=2 on
// a slow machine).
func timeScale() float64 {
	if v := os.Getenv(envScale); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
			return f
		}
	}
	return 1
}

func scaled(d time.Duration) time.Duration { return time.Duration(float64(d) * timeScale()) }

// artifactsRoot returns (and creates) the directory that keeps this run's
// logs. It is never removed by the harness.
func artifactsRoot(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envArtifacts)
	if dir == "" {
		dir = filepath.Join("/tmp/bootyard-e2e", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("e2e: artifacts directory: %v", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("e2e: artifacts directory: %v", err)
	}
	return abs
}

// cacheDir is where downloaded Debian packages and the extracted kernel stay
// between runs.
func cacheDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(envCache)
	if dir == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			dir = filepath.Join(x, "bootyard-e2e")
		} else {
			dir = "/var/cache/bootyard-e2e"
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("e2e: cache directory: %v", err)
	}
	return dir
}

// run runs a command to completion and returns its combined output; a
// failure names the command and shows the output.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// mustRun is run for setup steps: any failure ends the test.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := run(ctx, name, args...)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return string(out)
}

// proc is a long-running process started by the test and stopped by PID.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid after done is closed
}

// startProc starts argv with stdout and stderr going to logPath and
// registers a cleanup that stops it by PID (SIGTERM, then SIGKILL).
func startProc(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("e2e: %s log: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("e2e: start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Logf("e2e: started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(argv, " "))
	t.Cleanup(func() { p.stop(t, 10*time.Second) })
	return p
}

// exited reports whether the process has ended, with its wait error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits up to grace before SIGKILL. It returns
// whether the process ended within grace.
func (p *proc) stop(t *testing.T, grace time.Duration) bool {
	if ok, _ := p.exited(); ok {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(grace):
	}
	t.Logf("e2e: %s (pid %d) ignored SIGTERM for %s: killing it", p.name, p.cmd.Process.Pid, grace)
	_ = p.cmd.Process.Kill()
	<-p.done
	return false
}

// line is one log line and when the watcher first saw it.
type line struct {
	text string
	at   time.Time
}

// logWatch follows a growing log file (serial console, server log) and
// stamps each line with the time it appeared.
type logWatch struct {
	path string

	mu    sync.Mutex
	lines []line
	cond  chan struct{} // closed and replaced on every new batch
	stop  chan struct{}
}

func watchLog(t *testing.T, path string) *logWatch {
	w := &logWatch{path: path, cond: make(chan struct{}), stop: make(chan struct{})}
	go w.loop()
	t.Cleanup(func() { close(w.stop) })
	return w
}

func (w *logWatch) loop() {
	var off int64
	var partial []byte
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := readFrom(w.path, off); err == nil && len(data) > 0 {
			off += int64(len(data))
			partial = append(partial, data...)
			var batch []line
			now := time.Now()
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				batch = append(batch, line{text: strings.TrimRight(string(partial[:i]), "\r"), at: now})
				partial = partial[i+1:]
			}
			if len(batch) > 0 {
				w.mu.Lock()
				w.lines = append(w.lines, batch...)
				close(w.cond)
				w.cond = make(chan struct{})
				w.mu.Unlock()
			}
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func readFrom(path string, off int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = buf.ReadFrom(f)
	return buf.Bytes(), err
}

// matcher selects log lines; *regexp.Regexp is one, jsonLine another.
type matcher interface {
	MatchString(s string) bool
	String() string
}

// jsonLine matches a JSON log line (slog's JSON handler) whose top-level
// fields have the given values, compared as printed by fmt.Sprint.
type jsonLine map[string]string

// MatchString reports whether s is a JSON object with every wanted field.
func (j jsonLine) MatchString(s string) bool {
	i := strings.IndexByte(s, '{')
	if i < 0 {
		return false
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(s[i:]))
	dec.UseNumber() // numbers compare as written: 4194304, not 4.194304e+06
	if dec.Decode(&m) != nil {
		return false
	}
	for k, want := range j {
		v, ok := m[k]
		if !ok || fmt.Sprint(v) != want {
			return false
		}
	}
	return true
}

// String lists the wanted fields in a stable order.
func (j jsonLine) String() string {
	keys := make([]string, 0, len(j))
	for k := range j {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("JSON log line with")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, j[k])
	}
	return b.String()
}

// find returns the first line matching re, if any.
func (w *logWatch) find(re matcher) (line, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if re.MatchString(l.text) {
			return l, true
		}
	}
	return line{}, false
}

// findAll returns every line matching re.
func (w *logWatch) findAll(re matcher) []line {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []line
	for _, l := range w.lines {
		if re.MatchString(l.text) {
			out = append(out, l)
		}
	}
	return out
}

// tail returns the last n lines, for failure messages.
func (w *logWatch) tail(n int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	from := max(len(w.lines)-n, 0)
	var b strings.Builder
	for _, l := range w.lines[from:] {
		b.WriteString("    | ")
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// errDied is returned by wait when the watched process ended first.
var errDied = errors.New("process ended")

// wait blocks until a line matches re, the timeout passes, or alive
// reports the process is gone (checked once more after it ends, since the
// last lines may land after exit).
func (w *logWatch) wait(re matcher, timeout time.Duration, alive func() bool) (line, error) {
	deadline := time.Now().Add(timeout)
	deadAt := time.Time{}
	desc := re.String()
	if _, ok := re.(*regexp.Regexp); ok {
		desc = fmt.Sprintf("line matching %q", desc)
	}
	for {
		if l, ok := w.find(re); ok {
			return l, nil
		}
		now := time.Now()
		if now.After(deadline) {
			return line{}, fmt.Errorf("no %s in %s within %s", desc, w.path, timeout.Round(time.Second))
		}
		if alive != nil && !alive() {
			if deadAt.IsZero() {
				deadAt = now
			} else if now.Sub(deadAt) > 500*time.Millisecond {
				return line{}, fmt.Errorf("no %s in %s: %w", desc, w.path, errDied)
			}
		}
		w.mu.Lock()
		c := w.cond
		w.mu.Unlock()
		select {
		case <-c:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// phases records how long each phase of one boot took.
type phases struct {
	t     *testing.T
	start time.Time
	rows  []string
	file  string
}

func newPhases(t *testing.T, file string) *phases {
	return &phases{t: t, start: time.Now(), file: file}
}

// mark records that phase name completed at at.
func (p *phases) mark(name string, at time.Time) {
	row := fmt.Sprintf("%-22s +%6.1fs", name, at.Sub(p.start).Seconds())
	p.rows = append(p.rows, row)
	p.t.Logf("e2e: phase %s", row)
	_ = os.WriteFile(p.file, []byte(strings.Join(p.rows, "\n")+"\n"), 0o644)
}

// summary is the table of phases for the final log.
func (p *phases) summary() string { return strings.Join(p.rows, "\n") }
