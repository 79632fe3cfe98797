package ftpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/bootyard/bootyard/internal/units"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	t        testing.TB
	root     string
	state    string
	images   string
	srv      *Server
	addr     string // plain/explicit control address
	implicit string // implicit FTPS control address
	port     int
	logs     *syncBuf
	hello    []byte // content of /pub/hello.bin
	done     chan error
	cancel   context.CancelFunc
}

const (
	alicePass = "alice-secret"
	bobPass   = "bob-secret"
)

var (
	hashOnce           sync.Once
	aliceHash, bobHash string
)

func testHashes() (string, string) {
	hashOnce.Do(func() {
		a, _ := bcrypt.GenerateFromPassword([]byte(alicePass), bcrypt.MinCost)
		b, _ := bcrypt.GenerateFromPassword([]byte(bobPass), bcrypt.MinCost)
		aliceHash, bobHash = string(a), string(b)
	})
	return aliceHash, bobHash
}

// passiveRange picks a random 40-port range so parallel servers (and other
// packages' tests) rarely collide; the library tries other ports on EADDRINUSE.
func passiveRange() units.PortRange {
	n, _ := rand.Int(rand.Reader, big.NewInt(500))
	first := uint16(40000 + n.Int64()*40)
	return units.PortRange{First: first, Last: first + 39}
}

func baseConfig(t testing.TB, root string) Config {
	ah, bh := testHashes()
	cfg := DefaultConfig()
	cfg.Listen = units.MustListenAddr("127.0.0.1:0")
	cfg.ImplicitTLSListen = units.MustListenAddr("127.0.0.1:0")
	cfg.Root = root
	cfg.PassivePorts = passiveRange()
	cfg.MaxLoginFailures = 5
	cfg.LoginFailureDelay = units.Duration(20 * time.Millisecond)
	cfg.BanTime = units.Duration(time.Minute)
	cfg.Users = []User{
		{Name: "alice", PasswordHash: Secret(ah), Home: "/", Permissions: []string{"read", "write", "delete", "mkdir", "rename"}},
		{Name: "bob", PasswordHash: Secret(bh), Home: "/pub", Permissions: []string{"read"}},
	}
	return cfg
}

// startServer builds a tree, applies mod to the config and serves it.
func startServer(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, root: filepath.Join(dir, "root"), state: filepath.Join(dir, "state"), images: filepath.Join(dir, "images"), logs: &syncBuf{}}
	for _, d := range []string{e.root + "/pub/sub", e.state, e.images + "/debian-12"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.hello = make([]byte, 1<<20+17)
	rand.Read(e.hello)
	must(t, os.WriteFile(e.root+"/pub/hello.bin", e.hello, 0o644))
	must(t, os.WriteFile(e.root+"/pub/private.txt", []byte("not for anonymous"), 0o600))
	must(t, os.WriteFile(e.images+"/debian-12/linux", []byte("kernel image"), 0o644))
	must(t, os.WriteFile(dir+"/outside.txt", []byte("outside the root"), 0o644))
	must(t, os.Symlink(dir+"/outside.txt", e.root+"/pub/escape"))
	cfg := baseConfig(t, e.root)
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg, Deps{
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		StateDir: e.state,
		Images:   os.DirFS(e.images),
		Renderer: RendererFunc(func(_ context.Context, r RenderRequest) ([]byte, bool, error) {
			if r.Name == "preseed/node01.cfg" {
				return []byte("d-i netcfg/hostname string node01 # client " + r.Client.String() + "\n"), true, nil
			}
			return nil, false, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	addrs := srv.Addrs()
	e.addr = addrs[0].String()
	e.port = addrs[0].(*net.TCPAddr).Port
	if len(addrs) > 1 && !cfg.ImplicitTLSListen.IsZero() {
		e.implicit = addrs[1].String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-e.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			srv.Close()
			t.Errorf("Serve did not return after cancel")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSum(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return sum(b)
}

// needClient fails (never skips) when a client binary is missing.
func needClient(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install %s (make test does)", name, name)
	}
	return p
}

// run runs a client with a timeout and returns combined output.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, needClient(t, name), args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// rawc is a minimal FTP control client for scripted attacks.
type rawc struct {
	t  testing.TB
	c  net.Conn
	tp *textproto.Conn
}

func dialRaw(t testing.TB, addr string) *rawc {
	t.Helper()
	return dialRawFrom(t, "", addr)
}

func dialRawFrom(t testing.TB, local, addr string) *rawc {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := &rawc{t: t, c: c, tp: textproto.NewConn(c)}
	return r
}

func (r *rawc) read() (int, string) {
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil {
		return -1, err.Error()
	}
	return code, msg
}

func (r *rawc) cmd(format string, args ...any) (int, string) {
	r.t.Helper()
	if err := r.tp.PrintfLine(format, args...); err != nil {
		return -1, err.Error()
	}
	return r.read()
}

func (r *rawc) expect(code int, format string, args ...any) string {
	r.t.Helper()
	got, msg := r.cmd(format, args...)
	if got != code {
		r.t.Fatalf("%s: got %d %q, want %d", fmt.Sprintf(format, args...), got, msg, code)
	}
	return msg
}

func (r *rawc) banner() {
	r.t.Helper()
	if code, msg := r.read(); code != 220 {
		r.t.Fatalf("banner: %d %q", code, msg)
	}
}

func (r *rawc) anonLogin() {
	r.t.Helper()
	r.banner()
	r.expect(331, "USER anonymous")
	r.expect(230, "PASS device@example.org")
	r.expect(200, "TYPE I")
}

// epsv opens a passive data connection.
func (r *rawc) epsv() net.Conn {
	r.t.Helper()
	msg := r.expect(229, "EPSV")
	i, j := strings.Index(msg, "|||"), strings.LastIndex(msg, "|")
	port, err := strconv.Atoi(msg[i+3 : j])
	if err != nil {
		r.t.Fatalf("EPSV reply %q", msg)
	}
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: r.c.LocalAddr().(*net.TCPAddr).IP}}
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		r.t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// stor uploads data under name over EPSV and returns the final reply.
func (r *rawc) stor(name string, data []byte) (int, string) {
	r.t.Helper()
	dc := r.epsv()
	if code, msg := r.cmd("STOR %s", name); code != 150 {
		dc.Close()
		return code, msg
	}
	dc.Write(data)
	dc.Close()
	return r.read()
}

// retr downloads name over EPSV.
func (r *rawc) retr(name string) (int, []byte) {
	r.t.Helper()
	dc := r.epsv()
	defer dc.Close()
	if code, _ := r.cmd("RETR %s", name); code != 150 {
		return code, nil
	}
	b, _ := io.ReadAll(dc)
	code, _ := r.read()
	return code, b
}

// alive proves the server still serves: a fresh anonymous download works.
func (e *testEnv) alive() {
	e.t.Helper()
	r := dialRaw(e.t, e.addr)
	r.anonLogin()
	code, b := r.retr("/pub/hello.bin")
	if code != 226 || !bytes.Equal(b, e.hello) {
		e.t.Fatalf("server no longer serves: %d, %d bytes", code, len(b))
	}
	r.cmd("QUIT")
}

// tlsUpgrade performs the TLS handshake after a 234 reply.
func tlsUpgrade(t testing.TB, r *rawc) *rawc {
	t.Helper()
	tc := tls.Client(r.c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"ftp"}})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return &rawc{t: t, c: tc, tp: textproto.NewConn(tc)}
}
