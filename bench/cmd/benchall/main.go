// Command benchall runs bootyard's side-by-side benchmarks (`make bench`):
// TFTP single transfers and boot storms against tftpd-hpa, atftpd and
// dnsmasq; FTP and explicit FTPS against vsftpd and proftpd; DHCP with
// perfdhcp against Kea (memfile) and dnsmasq; bootyard's memory. It installs
// what it needs from Debian, runs every server on loopback inside a network
// namespace it creates (DHCP across a veth pair between two more), alternates
// the servers round by round, and writes markdown tables of medians, ranges
// and ratios (bootyard ÷ best peer) to stdout and to -out.
//
// It needs root (namespaces, apt-get, ports 21, 67 and 69). Usage:
//
//	go run ./bench/cmd/benchall -out bench/RESULTS.md
//
// The work directory (-work, default /var/cache/bootyard-bench) keeps the
// unpacked peers and the generated data files between runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// env is the run's configuration, handed from the outer process (setup in
// the root network namespace) to the inner one (measurements inside
// nsBench) as JSON.
type env struct {
	Work            string
	Out             string
	Bootyard        string // binary path; "" when it could not be built
	BootyardVersion string
	BootyardErr     string
	Started         time.Time
	Deadline        time.Time
	Rounds          int
	StormRounds     int
	StormClients    []int
	FTPRounds       int
	FTPConcRounds   int
	DHCPRounds      int
	DHCPStep        time.Duration
	Only            []string
	Size64          int64
	Size1G          int64
	SizeUp          int64
	Setup           string // notes from setup (versions of tools)
	LoadStart       string

	cert, key string
}

var t0 = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
}

func main() {
	os.Exit(runMain())
}

func runMain() int {
	var e env
	var inner, clients, only string
	var budget time.Duration
	var quick bool
	flag.StringVar(&e.Out, "out", "bench/RESULTS.md", "markdown report to write")
	flag.StringVar(&e.Work, "work", "/var/cache/bootyard-bench", "work directory (peers, data files, logs)")
	flag.StringVar(&e.Bootyard, "bootyard", "", "use this bootyard binary instead of building ./cmd/bootyard")
	flag.IntVar(&e.Rounds, "rounds", 5, "alternating rounds of TFTP single transfers")
	flag.IntVar(&e.StormRounds, "storm-rounds", 2, "alternating rounds of TFTP boot storms")
	flag.StringVar(&clients, "storm-clients", "64,256", "boot-storm sizes")
	flag.IntVar(&e.FTPRounds, "ftp-rounds", 3, "alternating rounds of single FTP transfers")
	flag.IntVar(&e.FTPConcRounds, "ftp-conc-rounds", 2, "alternating rounds of 32 concurrent FTP downloads")
	flag.IntVar(&e.DHCPRounds, "dhcp-rounds", 2, "alternating stepped perfdhcp passes per DHCP server")
	flag.DurationVar(&e.DHCPStep, "dhcp-step", 2*time.Second, "length of one perfdhcp rate step")
	flag.StringVar(&only, "only", "", "comma-separated subset: tftp,ftp,dhcp (default all)")
	flag.DurationVar(&budget, "budget", 14*time.Minute, "time budget; sections past it are cut short and reported as such")
	flag.BoolVar(&quick, "quick", false, "one round of everything (a smoke test of the harness, not a result)")
	flag.StringVar(&inner, "inner", "", "internal: run the measurements with the env in this JSON file")
	flag.Parse()

	if inner != "" {
		return runInner(inner)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchall: needs root (network namespaces, apt-get, ports 21/67/69)")
		return 2
	}
	for _, s := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "benchall: bad -storm-clients %q\n", clients)
			return 2
		}
		e.StormClients = append(e.StormClients, n)
	}
	if only != "" {
		e.Only = strings.Split(only, ",")
	}
	if quick {
		e.Rounds, e.StormRounds, e.FTPRounds, e.FTPConcRounds, e.DHCPRounds = 1, 1, 1, 1, 1
	}
	e.Started = time.Now()
	e.Deadline = e.Started.Add(budget)
	e.Size64, e.Size1G, e.SizeUp = 64<<20, 1<<30, 256<<20
	if abs, err := filepath.Abs(e.Out); err == nil {
		e.Out = abs
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := outer(ctx, &e); err != nil {
		logf("benchall: %v", err)
		return 1
	}
	return 0
}

func outer(ctx context.Context, e *env) error {
	e.LoadStart = loadavg()
	if err := os.MkdirAll(filepath.Join(e.Work, "data"), 0o755); err != nil {
		return err
	}
	if err := e.ensurePackages(ctx); err != nil {
		return fmt.Errorf("install peers: %w", err)
	}
	if e.Bootyard == "" {
		e.buildBootyard(ctx)
	} else {
		e.versionBootyard(ctx)
	}
	logf("bootyard: %s %s", e.BootyardVersion, e.BootyardErr)
	logf("generating data files")
	data := filepath.Join(e.Work, "data")
	for _, f := range []struct {
		name string
		size int64
		seed byte
	}{{fileProbe, 4096, 1}, {file8M, 8 << 20, 2}, {file64M, e.Size64, 3}, {file1G, e.Size1G, 4}, {fileUp, e.SizeUp, 5}} {
		if err := ensureFile(filepath.Join(data, f.name), f.size, f.seed); err != nil {
			return err
		}
	}
	if err := writeCert(filepath.Join(data, "cert.pem"), filepath.Join(data, "key.pem")); err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	_ = os.RemoveAll(filepath.Join(e.Work, "run"))
	if err := os.MkdirAll(filepath.Join(e.Work, "run"), 0o755); err != nil {
		return err
	}
	if err := setupNetns(ctx); err != nil {
		return err
	}
	defer teardownNetns()
	state := filepath.Join(e.Work, "run", "env.json")
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(state, b, 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The measurements run inside nsBench: its loopback is ours alone.
	// nsenter (not ip netns exec) keeps /sys, and so the cgroup file
	// systems used for CPU accounting.
	cmd := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+nsBench, self, "-inner", state)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("measurements: %w", err)
	}
	logf("done in %v; report in %s", time.Since(e.Started).Round(time.Second), e.Out)
	return nil
}

// buildBootyard builds ./cmd/bootyard of the module we are in.
func (e *env) buildBootyard(ctx context.Context) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		e.BootyardErr = "not inside the bootyard module: cannot build ./cmd/bootyard"
		return
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	bin := filepath.Join(e.Work, "bin", "bootyard")
	_ = os.MkdirAll(filepath.Dir(bin), 0o755)
	_ = os.Remove(bin)
	logf("building bootyard")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bootyard")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		e.BootyardErr = "go build ./cmd/bootyard failed: " + lastLines(string(out), 8)
		return
	}
	e.Bootyard = bin
	e.versionBootyard(ctx)
}

func (e *env) versionBootyard(ctx context.Context) {
	out, err := exec.CommandContext(ctx, e.Bootyard, "version").CombinedOutput()
	if err != nil {
		e.BootyardVersion = "? (bootyard version: " + lastLines(string(out), 2) + ")"
		return
	}
	e.BootyardVersion = strings.Join(strings.Fields(shortVersion(string(out))), " ")
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func (e *env) want(section string) bool {
	return len(e.Only) == 0 || contains(e.Only, section)
}

// results gathers every section for the report.
type results struct {
	tftp       *tftpResults
	ftp        *ftpResults
	dhcp       *dhcpResults
	idleKB     int64
	idleHWMKB  int64
	versions   map[string]string
	skipped    []string
	tftpSource string // what checkTFTPSource found, "" when right
	finished   time.Time
}

func runInner(state string) int {
	b, err := os.ReadFile(state)
	if err != nil {
		logf("benchall: %v", err)
		return 1
	}
	var e env
	if err := json.Unmarshal(b, &e); err != nil {
		logf("benchall: %v", err)
		return 1
	}
	t0 = e.Started // one clock for both processes' log lines
	e.cert = filepath.Join(e.Work, "data", "cert.pem")
	e.key = filepath.Join(e.Work, "data", "key.pem")
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithDeadline(sig, e.Deadline)
	defer cancel()
	defer stopAll()

	res := &results{versions: map[string]string{}}
	if e.BootyardErr != "" {
		res.skipped = append(res.skipped, "bootyard was not measured: "+e.BootyardErr)
	}
	var by *server
	if e.Bootyard != "" && e.BootyardErr == "" && e.want("tftp") {
		if msg := e.checkTFTPSource(); msg != "" {
			res.tftpSource = msg
			logf("bootyard TFTP source address: %s", msg)
		}
	}
	if e.Bootyard != "" && e.BootyardErr == "" && (e.want("tftp") || e.want("ftp")) {
		by, err = e.startBootyard()
		if err != nil {
			res.skipped = append(res.skipped, "bootyard (TFTP+FTP) did not start: "+err.Error())
			logf("bootyard: %v", err)
		} else {
			time.Sleep(2 * time.Second)
			res.idleKB = statusKB(by.p.pid(), "VmRSS")
			res.idleHWMKB = statusKB(by.p.pid(), "VmHWM")
			res.versions["bootyard"] = by.version
			logf("bootyard idle RSS %d KiB (HWM %d KiB)", res.idleKB, res.idleHWMKB)
		}
	}
	if e.want("tftp") {
		var servers []*server
		if by != nil {
			servers = append(servers, by)
		}
		for _, name := range []string{"tftpd-hpa", "atftpd", "dnsmasq"} {
			s, err := e.startTFTPPeer(name)
			if err != nil {
				res.skipped = append(res.skipped, fmt.Sprintf("%s (TFTP) did not start: %v", name, err))
				logf("%s: %v", name, err)
				continue
			}
			res.versions[name] = s.version
			servers = append(servers, s)
		}
		res.tftp = e.benchTFTP(ctx, servers)
		for _, s := range servers {
			if s != by {
				s.p.stop()
			}
		}
		res.skipped = append(res.skipped, res.tftp.skipped...)
	}
	if e.want("ftp") && ctx.Err() == nil {
		var servers []*server
		if by != nil {
			servers = append(servers, by)
		}
		for _, start := range []func() (*server, error){e.startVsftpd, e.startProftpd} {
			s, err := start()
			if err != nil {
				res.skipped = append(res.skipped, fmt.Sprintf("FTP peer did not start: %v", err))
				logf("ftp peer: %v", err)
				continue
			}
			res.versions[s.name] = s.version
			servers = append(servers, s)
		}
		res.ftp = e.benchFTP(ctx, servers)
		for _, s := range servers {
			if s != by {
				s.p.stop()
			}
		}
		res.skipped = append(res.skipped, res.ftp.skipped...)
	}
	if by != nil {
		if by.p.exited() {
			res.skipped = append(res.skipped, "bootyard (TFTP+FTP) exited during the run: "+by.p.logTail(10))
		}
		by.p.stop()
	}
	if e.want("dhcp") && ctx.Err() == nil {
		names := []string{"kea", "dnsmasq"}
		if e.Bootyard != "" && e.BootyardErr == "" {
			names = append([]string{"bootyard"}, names...)
		}
		res.dhcp = e.benchDHCP(ctx, names)
		res.skipped = append(res.skipped, res.dhcp.skipped...)
	} else if e.want("dhcp") {
		res.skipped = append(res.skipped, "DHCP not run: the time budget ran out")
	}
	res.finished = time.Now()
	report := e.report(res)
	fmt.Println(report)
	if err := os.WriteFile(e.Out, []byte(report), 0o644); err != nil {
		logf("benchall: write %s: %v", e.Out, err)
		return 1
	}
	if errors.Is(sig.Err(), context.Canceled) {
		return 1
	}
	return 0
}
