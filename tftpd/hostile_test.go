package tftpd

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// hostileTree builds a root with traps around it: a secret outside, a file
// symlink and a directory symlink pointing out, a hard link to the secret,
// a FIFO, a socket, a device node (when root), a directory and a symlink
// that stays inside.
func hostileTree(t *testing.T) (root, secret string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret = "TOP-SECRET-" + strings.Repeat("x", 600)
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "ok.txt", []byte("fine\n"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "link-out")))
	must(os.Symlink("../outside/secret", filepath.Join(root, "link-rel-out")))
	must(os.Symlink(outside, filepath.Join(root, "dirlink-out")))
	must(os.Symlink("ok.txt", filepath.Join(root, "link-in")))
	must(os.Link(filepath.Join(outside, "secret"), filepath.Join(root, "hardlink")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, "sock"), Net: "unix"})
	must(err)
	t.Cleanup(func() { l.Close() })
	if os.Geteuid() == 0 {
		// A character device like /dev/null (1,3).
		must(syscall.Mknod(filepath.Join(root, "null"), syscall.S_IFCHR|0o666, int(1<<8|3)))
	}
	return root, secret
}

// TestHostileNames sends every traversal form and special file we know of,
// asserts the refusal (code and no leak) and that the server keeps serving.
func TestHostileNames(t *testing.T) {
	root, secret := hostileTree(t)
	ts := start(t, testConfig(root), Deps{})
	cases := []struct {
		name string
		code int // TFTP error code expected; 0 = served, -1 = served content is ok.txt
		text string
	}{
		{"../outside/secret", codeAccess, "access violation"},
		{"/../outside/secret", codeAccess, ""},
		{"dir/../../outside/secret", codeAccess, ""},
		{"./../outside/secret", codeAccess, ""},
		{"//..//outside/secret", codeAccess, ""},
		{"/etc/passwd", codeNotFound, "file not found"}, // leading slash dropped: etc/passwd inside the root
		{`..\outside\secret`, codeNotFound, ""},         // a backslash is an ordinary byte without a remap rule
		{"%2e%2e/outside/secret", codeNotFound, ""},     // TFTP has no URL decoding
		{"..%2foutside%2fsecret", codeNotFound, ""},
		{strings.Repeat("a/", 130) + "x", codeAccess, ""}, // 261 bytes
		{"a\x01b", codeAccess, ""},
		{"ok.txt\x7f", codeAccess, ""},
		{".", codeAccess, ""},
		{"/", codeAccess, ""},
		{".bootyard-upload-0123", codeAccess, ""},
		{"link-out", codeNotFound, "access violation"}, // pin/tftp sends handler errors as code 1
		{"link-rel-out", codeNotFound, "access violation"},
		{"dirlink-out/secret", codeNotFound, "access violation"},
		{"dir", codeNotFound, "access violation"},
		{"fifo", codeNotFound, "access violation"},
		{"sock", codeNotFound, "access violation"},
		{"null", codeNotFound, "access violation"},
		{"link-in", -1, ""},
		{"/ok.txt", -1, ""},
	}
	for _, c := range cases {
		if c.name == "null" && os.Geteuid() != 0 {
			continue // creating a device node needs root (CI runs as root)
		}
		rc := dialRaw(t)
		data, first, err := rc.get(ts.addr, c.name)
		if bytes.Contains(data, []byte("TOP-SECRET")) || bytes.Contains(first, []byte("TOP-SECRET")) {
			t.Fatalf("%q leaked the secret", c.name)
		}
		switch c.code {
		case -1:
			if err != nil || string(data) != "fine\n" {
				t.Errorf("%q: got %q, %v; want ok.txt's content", c.name, data, err)
			}
		default:
			if got := errCode(first); got != c.code {
				t.Errorf("%q: got %s, want error code %d", c.name, describe(first), c.code)
			} else if c.text != "" && !strings.Contains(describe(first), c.text) {
				t.Errorf("%q: got %s, want text %q", c.name, describe(first), c.text)
			}
		}
	}
	// A NUL inside the name ends the name: the rest is read as the mode.
	rc := dialRaw(t)
	rc.send(ts.addr, []byte("\x00\x01ok.txt\x00../outside/secret\x00octet\x00"))
	if b, _ := rc.recv(2 * time.Second); errCode(b) != codeIllegalOp {
		t.Errorf("NUL inside the name: got %s, want code 4", describe(b))
	}
	// The hard link is the same file as the secret: it is served. This is
	// documented (os.Root cannot tell); keep the root on its own file system.
	if data, _, err := dialRaw(t).get(ts.addr, "hardlink"); err != nil || string(data) != secret {
		t.Errorf("hard link: got %d bytes, %v (documented as served)", len(data), err)
	}
	st := ts.Stats()
	if st.Denied < 15 || st.NotFound < 4 {
		t.Errorf("counters: denied %d, not found %d", st.Denied, st.NotFound)
	}
	stillServing(t, ts)
}

// TestRemapBackslash: with the documented remap rule a Windows-style name is
// rewritten, and a traversal hidden in backslashes is refused after remap.
func TestRemapBackslash(t *testing.T) {
	root, _ := hostileTree(t)
	writeFile(t, root, "boot/pxelinux.0", []byte("pxe"))
	cfg := testConfig(root)
	cfg.Remap = []Remap{{Match: `\\`, Replace: "/"}, {Match: `(?i)^PXELINUX\.0$`, Replace: "boot/pxelinux.0", Stop: true}, {Match: `^PXELinux\.0$`, Replace: "never"}}
	ts := start(t, cfg, Deps{})
	if data, _, err := dialRaw(t).get(ts.addr, `\boot\pxelinux.0`); err != nil || string(data) != "pxe" {
		t.Errorf(`\boot\pxelinux.0: %q, %v`, data, err)
	}
	if data, _, err := dialRaw(t).get(ts.addr, `PXELinux.0`); err != nil || string(data) != "pxe" {
		t.Errorf("case-folded remap: %q, %v", data, err)
	}
	_, first, _ := dialRaw(t).get(ts.addr, `..\outside\secret`)
	if errCode(first) != codeAccess {
		t.Errorf(`..\outside\secret after remap: %s, want code 2`, describe(first))
	}
}

// TestMalformedPackets sends truncated and unknown packets to the listening
// port: none crashes the server, none draws more than a short error, each is
// counted.
func TestMalformedPackets(t *testing.T) {
	root := t.TempDir()
	ts := start(t, testConfig(root), Deps{})
	cases := []struct {
		pkt   []byte
		reply int // expected error code, -1 for silence
	}{
		{[]byte{}, -1},
		{[]byte{0}, -1},
		{[]byte{0, 1}, codeIllegalOp},
		{[]byte{0, 1, 'a'}, codeIllegalOp},
		{[]byte{0, 1, 'a', 0}, codeIllegalOp}, // no mode
		{[]byte{0, 1, 'a', 0, 'o', 'c', 't', 'e', 't'}, codeIllegalOp}, // mode unterminated
		{rrq(opRRQ, "a", "mail"), codeIllegalOp},
		{rrq(opRRQ, "a", ""), codeIllegalOp},
		{append(rrq(opRRQ, "a", "octet"), bytes.Repeat([]byte("x"), 600)...), codeIllegalOp},
		{[]byte{0, 3, 0, 1, 'x'}, -1}, // DATA to the listening port
		{[]byte{0, 4, 0, 0}, -1},      // ACK
		{[]byte{0, 5, 0, 0, 0}, -1},   // ERROR
		{[]byte{0, 6, 'a', 0}, -1},    // OACK
		{[]byte{0, 9, 1, 2, 3}, -1},   // unknown opcode
		{[]byte{0xff, 0xff}, -1},
	}
	for _, c := range cases {
		rc := dialRaw(t)
		rc.send(ts.addr, c.pkt)
		b, _ := rc.recv(150 * time.Millisecond)
		if c.reply == -1 && b != nil {
			t.Errorf("%x: got %s, want silence", c.pkt, describe(b))
		}
		if c.reply >= 0 && errCode(b) != c.reply {
			t.Errorf("%x: got %s, want error %d", c.pkt, describe(b), c.reply)
		}
	}
	if st := ts.Stats(); st.Malformed != uint64(len(cases)) {
		t.Errorf("malformed counter = %d, want %d", st.Malformed, len(cases))
	}
	stillServing(t, ts)
}

// TestBogusOptions: invalid blksize values are ignored (512-byte blocks),
// valid ones are clamped; option names are case-insensitive; timeout and
// windowsize are not acknowledged (pin/tftp does not implement them).
func TestBogusOptions(t *testing.T) {
	root := t.TempDir()
	data := randBytes(3000, 3)
	writeFile(t, root, "f", data)
	cfg := testConfig(root)
	cfg.MaxBlockSize = 1468
	ts := start(t, cfg, Deps{})
	cases := []struct {
		opts    []string
		blksize string // in the OACK; "" = absent
		tsize   string
	}{
		{[]string{"blksize", "0", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "7", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "8", "tsize", "0"}, "", "3000"}, // valid, but pin/tftp serves <512 as 512 without acking
		{[]string{"blksize", "65465", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "99999999999999999999999", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "-1", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "abc", "tsize", "0"}, "", "3000"},
		{[]string{"blksize", "9000"}, "1468", ""},
		{[]string{"BLKSIZE", "1024", "TSize", "0"}, "1024", "3000"},
		{[]string{"blksize", "1024", "blksize", "9000"}, "1024", ""},
		{[]string{"tsize", "12345"}, "", "3000"}, // a bogus tsize in an RRQ is replaced
		{[]string{"timeout", "1", "windowsize", "16", "tsize", "0"}, "", "3000"},
		{[]string{"blksize"}, "", ""}, // incomplete option ignored
	}
	for _, c := range cases {
		got, first, err := dialRaw(t).get(ts.addr, "f", c.opts...)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%q: transfer failed: %v (%d bytes)", c.opts, err, len(got))
			continue
		}
		o := oackOpts(first)
		if c.blksize == "" && c.tsize == "" {
			if o != nil {
				t.Errorf("%q: got %s, want DATA without OACK", c.opts, describe(first))
			}
			continue
		}
		if o == nil {
			t.Errorf("%q: got %s, want OACK", c.opts, describe(first))
			continue
		}
		if o["blksize"] != c.blksize || o["tsize"] != c.tsize || o["timeout"] != "" || o["windowsize"] != "" {
			t.Errorf("%q: OACK %v, want blksize=%q tsize=%q", c.opts, o, c.blksize, c.tsize)
		}
	}
	stillServing(t, ts)
}

// TestRefuseBlksize: refuse_blksize keeps 512-byte blocks for broken ROMs.
func TestRefuseBlksize(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randBytes(2000, 4))
	cfg := testConfig(root)
	cfg.RefuseBlksize = true
	ts := start(t, cfg, Deps{})
	_, first, err := dialRaw(t).get(ts.addr, "f", "blksize", "1468", "tsize", "0")
	if err != nil || oackOpts(first)["blksize"] != "" || oackOpts(first)["tsize"] != "2000" {
		t.Errorf("got %s, %v; want OACK with tsize only", describe(first), err)
	}
}

// TestMTUClamp: with max_block_size = 0 the cap comes from the interface
// MTU less 32 bytes (IPv4); on loopback (MTU 65536) that is 65464.
func TestMTUClamp(t *testing.T) {
	if got := mtuBlock(1500, true); got != 1468 {
		t.Errorf("mtuBlock(1500, v4) = %d, want 1468", got)
	}
	if got := mtuBlock(1500, false); got != 1448 {
		t.Errorf("mtuBlock(1500, v6) = %d, want 1448", got)
	}
	root := t.TempDir()
	writeFile(t, root, "f", randBytes(70000, 5))
	ts := start(t, testConfig(root), Deps{})
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	want := clampBlock(mtuBlock(lo.MTU, true))
	_, first, err := dialRaw(t).get(ts.addr, "f", "blksize", "65464")
	if err != nil || oackOpts(first)["blksize"] != strconv.Itoa(want) {
		t.Errorf("got %s, %v; want blksize %d", describe(first), err, want)
	}
}

// TestFloodAmplification sends a burst of RRQs from one address that never
// ACKs, and compares the bytes that come back with the bytes sent, with the
// default limits and with none. The limits must bound the reflection.
func TestFloodAmplification(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "big", randBytes(200000, 6))
	measure := func(n, rate, perClient int) (in, out int, ts *testServer) {
		cfg := testConfig(root)
		cfg.RatePerClient, cfg.MaxPerClient = rate, perClient
		ts = start(t, cfg, Deps{})
		rc := dialRaw(t)
		req := rrq(opRRQ, "big", "octet")
		for i := 0; i < n; i++ {
			rc.send(ts.addr, req)
		}
		in = n * len(req)
		// Collect until the server has given up every transfer.
		for {
			b, _ := rc.recv(1500 * time.Millisecond)
			if b == nil {
				break
			}
			out += len(b)
		}
		return in, out, ts
	}
	in, out, ts := measure(1000, 20, 8)
	ratio := float64(out) / float64(in)
	t.Logf("flood with limits (rate 20/s, 8 per client): %d bytes in, %d bytes out, amplification %.2f", in, out, ratio)
	// What may come back: 8 transfers, each sending its first block
	// retries+1 times, plus one short error for each request let through
	// by the rate limiter (burst 20, plus 20/s while the flood lasts).
	bound := 8*(3+1)*516 + 40*40
	if out > bound || ratio > 2 {
		t.Errorf("%d bytes out (amplification %.2f), want <= %d bytes and <= 2", out, ratio, bound)
	}
	st := ts.Stats()
	if st.RateLimited == 0 {
		t.Errorf("no request was rate-limited: %+v", st)
	}
	if n := strings.Count(ts.logs.String(), "kind=rate_limited"); n > 6 {
		t.Errorf("%d rate_limited log lines; the log must be rate-limited too", n)
	}
	stillServing(t, ts)
	if testing.Short() {
		return
	}
	in, out, _ = measure(300, 0, 0)
	t.Logf("flood without limits: %d bytes in, %d bytes out, amplification %.2f", in, out, float64(out)/float64(in))
}

// TestAllowList: a client outside tftp.allow gets silence; Reload lets it in.
func TestAllowList(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", []byte("x"))
	cfg := testConfig(root)
	var p units.Prefix
	if err := p.UnmarshalText([]byte("10.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	cfg.Allow = []units.Prefix{p}
	ts := start(t, cfg, Deps{})
	rc := dialRaw(t)
	rc.send(ts.addr, rrq(opRRQ, "f", "octet"))
	if b, _ := rc.recv(500 * time.Millisecond); b != nil {
		t.Fatalf("client outside allow got %s", describe(b))
	}
	if ts.Stats().NotAllowed != 1 {
		t.Errorf("NotAllowed = %d, want 1", ts.Stats().NotAllowed)
	}
	if err := p.UnmarshalText([]byte("127.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	cfg.Allow = append(cfg.Allow, p)
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if data, _, err := dialRaw(t).get(ts.addr, "f"); err != nil || string(data) != "x" {
		t.Errorf("after reload: %q, %v", data, err)
	}
}

// TestConcurrencyCaps: a transfer held open by a silent client occupies a
// slot; the next request from the same client is refused as busy.
func TestConcurrencyCaps(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randBytes(5000, 8))
	cfg := testConfig(root)
	cfg.MaxPerClient = 1
	ts := start(t, cfg, Deps{})
	hold := dialRaw(t)
	hold.send(ts.addr, rrq(opRRQ, "f", "octet"))
	if b, _ := hold.recv(time.Second); b == nil || binary.BigEndian.Uint16(b) != opDATA {
		t.Fatalf("first transfer: %s", describe(b))
	}
	rc := dialRaw(t)
	rc.send(ts.addr, rrq(opRRQ, "f", "octet"))
	b, _ := rc.recv(time.Second)
	if errCode(b) != codeUndefined || !strings.Contains(describe(b), "busy") {
		t.Fatalf("second transfer: got %s, want busy", describe(b))
	}
	if ts.Stats().Busy != 1 || ts.Stats().Active != 1 {
		t.Errorf("stats %+v", ts.Stats())
	}
	cfg.MaxPerClient = 0
	if err := ts.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	stillServing(t, ts)
}
