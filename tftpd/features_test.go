package tftpd

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// TestRendered: the Renderer sees the cleaned, remapped name and both
// addresses; its content goes out with an exact tsize; errors and panics
// fail only that request.
func TestRendered(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "static.cfg", []byte("from disk"))
	var mu sync.Mutex
	var seen []RenderRequest
	body := bytes.Repeat([]byte("#!ipxe\n"), 300) // 2100 bytes: several blocks
	r := RendererFunc(func(ctx context.Context, req RenderRequest) ([]byte, bool, error) {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		if _, ok := ctx.Deadline(); !ok {
			t.Error("render context has no deadline")
		}
		switch req.Name {
		case "ipxe/aa-bb-cc-dd-ee-ff.ipxe":
			return body, true, nil
		case "empty.cfg":
			return []byte{}, true, nil
		case "broken.cfg":
			return nil, false, errors.New("template exploded at /secret/path")
		case "panic.cfg":
			panic("renderer bug")
		}
		return nil, false, nil
	})
	cfg := testConfig(root)
	cfg.Remap = []Remap{{Match: `^pxelinux\.cfg/`, Replace: "ipxe/"}}
	ts := start(t, cfg, Deps{Renderer: r})

	got, first, err := dialRaw(t).get(ts.addr, "/ipxe/aa-bb-cc-dd-ee-ff.ipxe", "tsize", "0", "blksize", "1024")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("rendered: %v, %d bytes", err, len(got))
	}
	if o := oackOpts(first); o["tsize"] != "2100" || o["blksize"] != "1024" {
		t.Errorf("rendered OACK %v, want tsize 2100 blksize 1024", o)
	}
	// Remapped name reaches the renderer.
	if got, _, err := dialRaw(t).get(ts.addr, "pxelinux.cfg/aa-bb-cc-dd-ee-ff.ipxe"); err != nil || !bytes.Equal(got, body) {
		t.Errorf("remapped rendered: %v", err)
	}
	if got, _, err := dialRaw(t).get(ts.addr, "empty.cfg", "tsize", "0"); err != nil || len(got) != 0 {
		t.Errorf("empty rendered: %v %d", err, len(got))
	}
	if got, _, err := dialRaw(t).get(ts.addr, "static.cfg"); err != nil || string(got) != "from disk" {
		t.Errorf("fall-through to files: %q %v", got, err)
	}
	_, first, _ = dialRaw(t).get(ts.addr, "broken.cfg")
	if errCode(first) != codeNotFound || strings.Contains(describe(first), "secret") {
		t.Errorf("render error: %s, want a generic error", describe(first))
	}
	_, first, _ = dialRaw(t).get(ts.addr, "panic.cfg")
	if errCode(first) < 0 {
		t.Errorf("render panic: %s, want an error", describe(first))
	}
	st := ts.Stats()
	if st.Panics != 1 || st.RenderErrors != 1 || st.Rendered != 3 {
		t.Errorf("stats: %+v", st)
	}
	mu.Lock()
	req := seen[0]
	mu.Unlock()
	lo := netip.MustParseAddr("127.0.0.1")
	if req.Name != "ipxe/aa-bb-cc-dd-ee-ff.ipxe" || req.Client != lo || req.Server != lo {
		t.Errorf("render request %+v", req)
	}
	if !strings.Contains(ts.logs.String(), "outcome=panic") {
		t.Error("panic not logged")
	}
	stillServing(t, ts)
}

// TestImages serves images/<name>/<path> from the images store, regular
// files only, and nothing outside it.
func TestImages(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "images/debian/linux", []byte("shadowed: not served"))
	imgDir := t.TempDir()
	writeFile(t, imgDir, "debian/linux", []byte("kernel"))
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(imgDir, "debian/escape")); err != nil {
		t.Fatal(err)
	}
	ir, err := os.OpenRoot(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ir.Close() })
	ts := start(t, testConfig(root), Deps{Images: ir.FS()})
	if got, _, err := dialRaw(t).get(ts.addr, "/images/debian/linux"); err != nil || string(got) != "kernel" {
		t.Errorf("image file: %q %v", got, err)
	}
	for _, name := range []string{"images/debian/escape", "images/debian", "images/debian/missing", "images/../outside"} {
		got, first, _ := dialRaw(t).get(ts.addr, name)
		if len(got) > 0 || errCode(first) < 0 {
			t.Errorf("%s: got %q, %s; want an error", name, got, describe(first))
		}
	}
	// An fs.FS without StatFS (MapFS has Stat; wrap it to hide it).
	mfs := fstest.MapFS{"img/dir/f": {Data: []byte("m")}, "img/fifo": {Mode: fs.ModeNamedPipe}}
	ts2 := start(t, testConfig(root), Deps{Images: struct{ fs.FS }{mfs}})
	if got, _, err := dialRaw(t).get(ts2.addr, "images/img/dir/f"); err != nil || string(got) != "m" {
		t.Errorf("map fs: %q %v", got, err)
	}
	for _, name := range []string{"images/img/fifo", "images/img/dir"} {
		if _, first, _ := dialRaw(t).get(ts2.addr, name); errCode(first) < 0 {
			t.Errorf("%s: %s, want an error", name, describe(first))
		}
	}
}

// TestSinglePort: every packet of a transfer comes from the listening port.
func TestSinglePort(t *testing.T) {
	root := t.TempDir()
	data := randBytes(100000, 12)
	writeFile(t, root, "f", data)
	cfg := testConfig(root)
	cfg.SinglePort = true
	ts := start(t, cfg, Deps{})
	rc := dialRaw(t)
	rc.send(ts.addr, rrq(opRRQ, "f", "octet", "blksize", "1468"))
	var got []byte
	for {
		b, from := rc.recv(2 * time.Second)
		if b == nil {
			t.Fatal("timeout")
		}
		if from.Port != ts.addr.Port {
			t.Fatalf("reply from port %d, want %d", from.Port, ts.addr.Port)
		}
		if b[1] == opOACK {
			rc.send(from, []byte{0, opACK, 0, 0})
			continue
		}
		if b[1] != opDATA {
			t.Fatalf("got %s", describe(b))
		}
		got = append(got, b[4:]...)
		rc.send(from, []byte{0, opACK, b[2], b[3]})
		if len(b)-4 < 1468 {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("single port: %d bytes, want %d", len(got), len(data))
	}
	local := filepath.Join(t.TempDir(), "out")
	if out, err := fetch(t, "tftp-hpa", ts.addr, "f", local, 0); err != nil || fileSum(t, local) != sum(data) {
		t.Fatalf("tftp-hpa single port: %v\n%s", err, out)
	}
}

// TestAnticipate: the send-ahead option still delivers correct files to
// real clients on a clean link.
func TestAnticipate(t *testing.T) {
	root := t.TempDir()
	data := randBytes(3<<20+77, 13)
	writeFile(t, root, "f", data)
	cfg := testConfig(root)
	cfg.Anticipate = 8
	ts := start(t, cfg, Deps{})
	for _, cl := range []string{"curl", "tftp-hpa", "atftp"} {
		local := filepath.Join(t.TempDir(), "out")
		if out, err := fetch(t, cl, ts.addr, "f", local, 1468); err != nil || fileSum(t, local) != sum(data) {
			t.Errorf("%s with anticipate: %v\n%s", cl, err, out)
		}
	}
}

// TestShutdown: Serve drains a running transfer and returns nil; Close
// fails transfers at their next block; both are safe to repeat.
func TestShutdown(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "f", randBytes(50000, 14))
	s, err := New(testConfig(root), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(context.Background()); !errors.Is(err, ErrNotListening) {
		t.Errorf("Serve before Listen: %v", err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	addr := toUDP(s.Addr())
	rc := dialRaw(t)
	rc.send(addr, rrq(opRRQ, "f", "octet"))
	b, from := rc.recv(time.Second)
	if b == nil {
		t.Fatal("no first block")
	}
	cancel()
	// The transfer keeps going after cancel.
	n := 1
	for len(b)-4 == 512 {
		rc.send(from, []byte{0, opACK, b[2], b[3]})
		if b, _ = rc.recv(time.Second); b == nil {
			t.Fatalf("transfer cut after %d blocks on cancel", n)
		}
		n++
	}
	rc.send(from, []byte{0, opACK, b[2], b[3]})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	// New requests are not served any more.
	rc.send(addr, rrq(opRRQ, "f", "octet"))
	if b, _ := rc.recv(300 * time.Millisecond); b != nil {
		t.Errorf("served after shutdown: %s", describe(b))
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Serve: %v", err)
	}
	s.Close()
}

func TestConfigErrors(t *testing.T) {
	root := t.TempDir()
	cases := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Remap = []Remap{{Match: "("}} }, "remap[0].match"},
		{func(c *Config) { c.MaxBlockSize = 7 }, "max_block_size"},
		{func(c *Config) { c.Retries = 0 }, "retries"},
		{func(c *Config) { c.Backoff = "linear" }, "backoff"},
		{func(c *Config) { c.Anticipate = 8; c.SinglePort = true }, "anticipate"},
		{func(c *Config) { c.Root = filepath.Join(root, "missing") }, "root"},
		{func(c *Config) { c.Uploads.Enabled = true; c.Uploads.Dir = "../x" }, "uploads.dir"},
		{func(c *Config) { c.MaxPerClient = -1 }, "max_per_client"},
	}
	for _, c := range cases {
		cfg := testConfig(root)
		c.mod(&cfg)
		_, err := New(cfg, Deps{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error about %s, got %v", c.want, err)
		}
	}
	if _, err := New(testConfig(root), Deps{}); err != nil {
		t.Errorf("valid config: %v", err)
	}
	def := DefaultConfig()
	if err := def.Validate().Err(); err != nil && !strings.Contains(err.Error(), "root") {
		t.Errorf("defaults: %v", err)
	}
}
