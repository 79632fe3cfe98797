package tftpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// testConfig is a config for loopback tests: port 0, short timers, no rate
// limit unless a test sets one.
func testConfig(root string) Config {
	c := DefaultConfig()
	c.Listen = units.MustListenAddr("127.0.0.1:0")
	c.Root = root
	c.Timeout = units.Duration(200 * time.Millisecond)
	c.Retries = 3
	c.RatePerClient = 0
	c.MaxPerClient = 0
	return c
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testServer is a running server on loopback.
type testServer struct {
	*Server
	addr *net.UDPAddr
	root string
	logs *logBuf
}

// start runs a server with cfg (see testConfig) and deps until the test
// ends; the test fails when Serve returns an error or does not drain.
func start(t *testing.T, cfg Config, deps Deps) *testServer {
	t.Helper()
	logs := &logBuf{}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatalf("Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return after cancel")
			s.Close()
		}
	})
	return &testServer{Server: s, addr: s.Addr().(*net.UDPAddr), root: cfg.Root, logs: logs}
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// writeFile writes data to root/name, creating directories.
func writeFile(t *testing.T, root, name string, data []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return sum(b)
}

// needBinary fails the test when a client is missing.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install it (make test does): %v", name, err)
	}
	return p
}

// clientCmd returns the command line of a real client fetching remote into
// local. blksize 0 means the client's default (no option).
func clientCmd(t *testing.T, client string, addr *net.UDPAddr, remote, local string, blksize int) []string {
	host, port := addr.IP.String(), fmt.Sprint(addr.Port)
	switch client {
	case "curl":
		args := []string{needBinary(t, "curl"), "-sS", "--max-time", "120", "-o", local}
		if blksize > 0 {
			args = append(args, "--tftp-blksize", fmt.Sprint(blksize))
		}
		return append(args, "tftp://"+host+":"+port+"/"+remote)
	case "tftp-hpa":
		return []string{needBinary(t, "tftp"), "-m", "octet", host, port, "-c", "get", remote, local}
	case "atftp":
		args := []string{needBinary(t, "atftp"), "-g", "-r", remote, "-l", local}
		if blksize > 0 {
			args = append(args, "--option", fmt.Sprintf("blksize %d", blksize))
		}
		return append(args, host, port)
	case "busybox":
		args := []string{needBinary(t, "busybox"), "tftp", "-g", "-r", remote, "-l", local}
		if blksize > 0 {
			args = append(args, "-b", fmt.Sprint(blksize))
		}
		return append(args, host, port)
	}
	t.Fatalf("unknown client %q", client)
	return nil
}

// fetch runs a real client and returns its combined output and error.
func fetch(t *testing.T, client string, addr *net.UDPAddr, remote, local string, blksize int) (string, error) {
	t.Helper()
	args := clientCmd(t, client, addr, remote, local, blksize)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rawConn is a UDP socket for hand-made packets.
type rawConn struct {
	t *testing.T
	c *net.UDPConn
}

func dialRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) send(to *net.UDPAddr, b []byte) {
	r.t.Helper()
	if _, err := r.c.WriteToUDP(b, to); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next packet within d, or nil on timeout.
func (r *rawConn) recv(d time.Duration) ([]byte, *net.UDPAddr) {
	r.t.Helper()
	buf := make([]byte, 70000)
	r.c.SetReadDeadline(time.Now().Add(d))
	n, from, err := r.c.ReadFromUDP(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil
		}
		r.t.Fatal(err)
	}
	return buf[:n], from
}

// rrq builds a read (or, with op 2, write) request.
func rrq(op uint16, name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, mode...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(b, o...)
		b = append(b, 0)
	}
	return b
}

// describe renders a reply packet for messages.
func describe(b []byte) string {
	if b == nil {
		return "no reply"
	}
	if len(b) < 4 {
		return fmt.Sprintf("short packet %x", b)
	}
	op := binary.BigEndian.Uint16(b)
	switch op {
	case opERROR:
		return fmt.Sprintf("ERROR code=%d %q", binary.BigEndian.Uint16(b[2:]), strings.TrimRight(string(b[4:]), "\x00"))
	case opDATA:
		return fmt.Sprintf("DATA block=%d len=%d", binary.BigEndian.Uint16(b[2:]), len(b)-4)
	case opOACK:
		return fmt.Sprintf("OACK %q", strings.ReplaceAll(string(b[2:]), "\x00", " "))
	}
	return fmt.Sprintf("opcode %d len %d", op, len(b))
}

// errCode returns the code of an ERROR packet, or -1.
func errCode(b []byte) int {
	if len(b) < 4 || binary.BigEndian.Uint16(b) != opERROR {
		return -1
	}
	return int(binary.BigEndian.Uint16(b[2:]))
}

// oackOpts parses an OACK.
func oackOpts(b []byte) map[string]string {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != opOACK {
		return nil
	}
	parts := strings.Split(string(b[2:]), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		m[parts[i]] = parts[i+1]
	}
	return m
}

// get fetches name with a small hand-written client (lock-step, ACKs every
// block) and returns the data and the first reply (OACK or DATA 1).
func (r *rawConn) get(to *net.UDPAddr, name string, opts ...string) ([]byte, []byte, error) {
	r.t.Helper()
	r.send(to, rrq(opRRQ, name, "octet", opts...))
	var data []byte
	var first []byte
	blk := 512
	for {
		b, from := r.recv(3 * time.Second)
		if b == nil {
			return data, first, errors.New("timeout")
		}
		if first == nil {
			first = b
		}
		switch binary.BigEndian.Uint16(b) {
		case opERROR:
			return data, first, errors.New(describe(b))
		case opOACK:
			if v, ok := oackOpts(b)["blksize"]; ok {
				fmt.Sscan(v, &blk)
			}
			r.send(from, []byte{0, opACK, 0, 0})
		case opDATA:
			data = append(data, b[4:]...)
			r.send(from, []byte{0, opACK, b[2], b[3]})
			if len(b)-4 < blk {
				return data, first, nil
			}
		}
	}
}

// stillServing fails the test unless the server still serves a file.
func stillServing(t *testing.T, ts *testServer) {
	t.Helper()
	want := randBytes(1500, 7)
	writeFile(t, ts.root, "alive.bin", want)
	got, _, err := dialRaw(t).get(ts.addr, "alive.bin")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("server no longer serving: err=%v, got %d bytes", err, len(got))
	}
}

func toUDP(a net.Addr) *net.UDPAddr { return a.(*net.UDPAddr) }

func writeFileErr(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }
