package ftpd

import (
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// TestListenerPolicyRateReload: a [[ftp.listener]] has its own banner and
// anonymous policy; anonymous max_rate slows a download; Reload switches
// anonymous access off for new sessions.
func TestListenerPolicyRateReload(t *testing.T) {
	var cfg Config
	e := startServer(t, func(c *Config) {
		c.Anonymous.MaxRate = 2 << 20
		c.Listeners = []Listener{{
			Listen:    units.MustListenAddr("127.0.0.1:0"),
			Banner:    "lab network only",
			Anonymous: &Anonymous{Enabled: false},
		}}
		cfg = *c
	})
	other := e.srv.Addrs()[2].String()
	r := dialRaw(t, other)
	code, msg := r.read()
	if code != 220 || !strings.Contains(msg, "lab network only") {
		t.Fatalf("listener banner: %d %q", code, msg)
	}
	if code, msg := r.cmd("USER anonymous"); code != 530 {
		t.Fatalf("anonymous on listener without it: %d %q", code, msg)
	}
	// Rate: 1 MiB at 2 MiB/s takes about half a second (the first burst is free).
	r = dialRaw(t, e.addr)
	r.anonLogin()
	start := time.Now()
	if code, b := r.retr("/pub/hello.bin"); code != 226 || len(b) != len(e.hello) {
		t.Fatalf("rated download: %d", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("rate limit not applied: 1 MiB in %v", d)
	}
	cfg.Anonymous.Enabled = false
	if err := e.srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	r = dialRaw(t, e.addr)
	r.banner()
	if code, msg := r.cmd("USER anonymous"); code != 530 {
		t.Fatalf("anonymous after reload: %d %q", code, msg)
	}
}
