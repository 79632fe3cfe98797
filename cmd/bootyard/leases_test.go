package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/dhcp"
	"github.com/bootyard/bootyard/internal/units"
)

func TestLeases(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "leases.db")
	ls, err := dhcp.OpenLeaseStore(db)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := units.ParseMAC("52:54:00:12:34:56")
	mac2, _ := units.ParseMAC("52:54:00:12:34:57")
	for _, l := range []dhcp.Lease{
		{MAC: mac, IP: netip.MustParseAddr("10.0.0.21"), Hostname: "node01", Expiry: time.Now().Add(time.Hour), State: dhcp.StateBound},
		{MAC: mac2, IP: netip.MustParseAddr("10.0.0.22"), Expiry: time.Now().Add(-time.Hour), State: dhcp.StateBound},
	} {
		if err := ls.Put(l); err != nil {
			t.Fatal(err)
		}
	}

	// While the store is held (as by a running serve), the command says so
	// and does not block.
	var out, errb bytes.Buffer
	e := &env{stdout: &out, stderr: &errb}
	start := time.Now()
	if code := cmdLeases(context.Background(), []string{"--leases", db}, e); code != exitFailure {
		t.Fatalf("locked store: exit %d, want 1; stderr %q", code, errb.String())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("blocked %v on a locked store", d)
	}
	if !strings.Contains(errb.String(), "running") {
		t.Errorf("stderr %q does not say the daemon is running", errb.String())
	}
	ls.Close()

	out.Reset()
	errb.Reset()
	if code := cmdLeases(context.Background(), []string{"--leases", db}, e); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "MAC") {
		t.Fatalf("output:\n%s", out.String())
	}
	for _, want := range []string{"52:54:00:12:34:56  10.0.0.21  node01", "bound", "52:54:00:12:34:57  10.0.0.22  -", "expired"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Through the config file: state_dir holds leases.db.
	cfg := filepath.Join(dir, "bootyard.toml")
	os.WriteFile(cfg, []byte("[server]\nstate_dir = "+strconv.Quote(dir)+"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[ftp]\nenabled = false\n"), 0o600)
	out.Reset()
	errb.Reset()
	if code := cmdLeases(context.Background(), []string{"--config", cfg}, e); code != exitOK || !strings.Contains(out.String(), "node01") {
		t.Fatalf("exit %d, stdout %q stderr %q", code, out.String(), errb.String())
	}

	// No store yet and a bad flag.
	out.Reset()
	if code := cmdLeases(context.Background(), []string{"--leases", filepath.Join(dir, "none.db")}, e); code != exitOK || !strings.Contains(out.String(), "no leases") {
		t.Fatalf("missing store: exit %d, %q", code, out.String())
	}
	if code := cmdLeases(context.Background(), []string{"--bogus"}, e); code != exitUsage {
		t.Fatalf("bad flag: exit %d", code)
	}
}
