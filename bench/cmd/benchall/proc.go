package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Debian ships.
const clkTck = 100

// proc is a server process this program started; it is stopped by its PID
// (and, for servers that fork per session, by its own process group).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	cg   *cgroup // nil when CPU accounting groups are unavailable
	done chan struct{}
	err  error
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

// startProc starts argv in its own process group with stdout and stderr in
// logPath.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	// Servers fork per transfer or session only when clients arrive, so
	// moving the new process now puts every descendant in the group.
	if cg, err := newCgroup(fmt.Sprintf("%s-%d", name, cmd.Process.Pid)); err == nil {
		if cg.add(cmd.Process.Pid) == nil {
			p.cg = cg
		} else {
			cg.remove()
		}
	}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process and its group, waits up to 3 s, then
// SIGKILLs them.
func (p *proc) stop() {
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
	if p.exited() {
		return
	}
	pid := p.pid()
	_ = syscall.Kill(pid, syscall.SIGTERM)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived their parent (vsftpd and proftpd sessions)
	// stay in the group.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if p.cg != nil {
		for range 20 {
			if p.cg.remove() == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// stopAll stops every process still running (on the way out).
func stopAll() {
	procsMu.Lock()
	var all []*proc
	for p := range procs {
		all = append(all, p)
	}
	procsMu.Unlock()
	for _, p := range all {
		p.stop()
	}
}

// logTail returns the last lines of the process's log, for error messages.
func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls check until it succeeds, the process exits or timeout.
func (p *proc) waitFor(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited (%v); log:\n%s", p.name, p.err, p.logTail(15))
		}
		if err = check(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %v; log:\n%s", p.name, timeout, err, p.logTail(15))
}

// tcpBanner succeeds when addr accepts a connection and sends a line.
func tcpBanner(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	}
}

// udpBound succeeds when some socket in the process's network namespace is
// bound to UDP port.
func udpBound(pid, port int) func() error {
	want := fmt.Sprintf(":%04X ", port)
	return func() error {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) > 2 && strings.HasSuffix(f[1]+" ", want) {
				return nil
			}
		}
		return fmt.Errorf("udp port %d not bound", port)
	}
}

// cpuTicks returns a process's own CPU ticks (utime+stime).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14 -> f[11].
	if len(f) < 15 {
		return 0, errors.New("short stat")
	}
	var sum int64
	for k := 11; k < 13; k++ {
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// descendants lists the live descendants of pid.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, t := range tasks {
			b, _ := os.ReadFile(t)
			for _, s := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(s); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// cpuTracker accounts the CPU time of a process tree without a cgroup: the
// main process's own time plus the last time seen of every descendant seen
// while sampling (children reaped without wait(2), as tftpd-hpa's are, never
// reach the parent's cutime).
type cpuTracker struct {
	pid   int
	self0 int64
	base  map[int]int64 // descendants alive at the start
	last  map[int]int64
}

func newCPUTracker(pid int) *cpuTracker {
	t := &cpuTracker{pid: pid, base: map[int]int64{}, last: map[int]int64{}}
	t.self0, _ = cpuTicks(pid)
	for _, c := range descendants(pid) {
		v, _ := cpuTicks(c)
		t.base[c] = v
	}
	return t
}

func (t *cpuTracker) sample() {
	for _, c := range descendants(t.pid) {
		if v, err := cpuTicks(c); err == nil {
			t.last[c] = v
		}
	}
}

func (t *cpuTracker) total() time.Duration {
	t.sample()
	self, _ := cpuTicks(t.pid)
	ticks := self - t.self0
	for c, v := range t.last {
		ticks += v - t.base[c]
	}
	return time.Duration(ticks) * time.Second / clkTck
}

// statusKB reads a "Key:   123 kB" line of /proc/<pid>/status.
func statusKB(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// treeRSS sums VmRSS over pid and its live descendants, in KiB.
func treeRSS(pid int) int64 {
	total := statusKB(pid, "VmRSS")
	for _, c := range descendants(pid) {
		total += statusKB(c, "VmRSS")
	}
	return total
}

// usage is what a monitor measured over one phase.
type usage struct {
	CPU      time.Duration // server CPU time (process tree)
	PeakTree int64         // KiB, sampled sum of VmRSS over the tree
	HWM      int64         // KiB, VmHWM of the main process since the phase began
}

// monitor measures a server's CPU time and memory over one phase.
type monitor struct {
	p      *proc
	pid    int
	cg0    time.Duration
	tr     *cpuTracker
	peak   int64
	cancel context.CancelFunc
	done   chan struct{}
}

// watch starts measuring p: it resets the peak RSS (clear_refs 5) and
// samples the process tree's RSS every 100 ms. CPU time comes from p's
// cpuacct group when there is one.
func watch(p *proc) *monitor {
	pid := p.pid()
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitor{p: p, pid: pid, cancel: cancel, done: make(chan struct{})}
	if p.cg != nil {
		m.cg0, _ = p.cg.usage()
	} else {
		m.tr = newCPUTracker(pid)
	}
	m.peak = treeRSS(pid)
	go func() {
		defer close(m.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.peak = max(m.peak, treeRSS(pid))
				if m.tr != nil {
					m.tr.sample()
				}
			}
		}
	}()
	return m
}

func (m *monitor) stop() usage {
	m.cancel()
	<-m.done
	m.peak = max(m.peak, treeRSS(m.pid))
	u := usage{PeakTree: m.peak, HWM: statusKB(m.pid, "VmHWM")}
	if m.tr != nil {
		u.CPU = m.tr.total()
	} else if v, err := m.p.cg.usage(); err == nil {
		u.CPU = v - m.cg0
	}
	return u
}

// run executes a command and returns its combined output.
func run(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, lastLines(string(out), 5))
	}
	return string(out), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
