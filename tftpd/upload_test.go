package tftpd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUploadsOffByDefault(t *testing.T) {
	root := t.TempDir()
	ts := start(t, testConfig(root), Deps{})
	for _, name := range []string{"uploads/x", "x", "../x"} {
		rc := dialRaw(t)
		rc.send(ts.addr, rrq(opWRQ, name, "octet"))
		if b, _ := rc.recv(time.Second); errCode(b) != codeAccess {
			t.Errorf("WRQ %q with uploads off: got %s, want code 2", name, describe(b))
		}
	}
	if _, err := os.Stat(filepath.Join(root, "uploads")); err == nil {
		t.Error("upload directory created although uploads are off")
	}
	stillServing(t, ts)
}

// putCmd is the command line of a real client uploading local as remote.
func putCmd(t *testing.T, client, host, port, local, remote string) []string {
	switch client {
	case "curl":
		return []string{needBinary(t, "curl"), "-sS", "--max-time", "30", "-T", local, "tftp://" + host + ":" + port + "/" + remote}
	case "tftp-hpa":
		return []string{needBinary(t, "tftp"), "-m", "octet", host, port, "-c", "put", local, remote}
	case "atftp":
		return []string{needBinary(t, "atftp"), "-p", "-l", local, "-r", remote, host, port}
	case "busybox":
		return []string{needBinary(t, "busybox"), "tftp", "-p", "-l", local, "-r", remote, host, port}
	}
	t.Fatalf("unknown client %s", client)
	return nil
}

func put(t *testing.T, ts *testServer, client, local, remote string) (string, error) {
	args := putCmd(t, client, ts.addr.IP.String(), fmt.Sprint(ts.addr.Port), local, remote)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// listUploads returns the names in the upload directory.
func listUploads(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestUploads(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(root)
	cfg.Uploads.Enabled = true
	cfg.Uploads.MaxBytes = 10000
	cfg.Uploads.MaxTotal = 25000
	ts := start(t, cfg, Deps{})
	src := t.TempDir()
	payload := randBytes(3000, 9)
	local := filepath.Join(src, "payload")
	if err := os.WriteFile(local, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []string{"curl", "tftp-hpa", "atftp", "busybox"} {
		remote := "uploads/" + cl + ".log"
		if out, err := put(t, ts, cl, local, remote); err != nil {
			t.Fatalf("%s put: %v\n%s", cl, err, out)
		}
		p := filepath.Join(root, remote)
		if got := fileSum(t, p); got != sum(payload) {
			t.Errorf("%s upload: sha256 %s, want %s", cl, got, sum(payload))
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s upload mode: %v %v, want 0600", cl, fi.Mode(), err)
		}
	}

	// Refusals answered by the gate with their proper codes.
	cases := []struct {
		name string
		opts []string
		code int
	}{
		{"x.log", nil, codeAccess},                 // outside the upload directory
		{"uploads/sub/x.log", nil, codeAccess},     // nested
		{"uploads/.hidden", nil, codeAccess},       // hidden name
		{"uploads/../x.log", nil, codeAccess},      // traversal
		{"uploads/curl.log", nil, codeFileExists},  // create-only
		{"/uploads/curl.log", nil, codeFileExists}, // same file, leading slash
		{"uploads/big.log", []string{"tsize", "20000"}, codeDiskFull},
	}
	for _, c := range cases {
		rc := dialRaw(t)
		rc.send(ts.addr, rrq(opWRQ, c.name, "octet", c.opts...))
		if b, _ := rc.recv(time.Second); errCode(b) != c.code {
			t.Errorf("WRQ %q %v: got %s, want code %d", c.name, c.opts, describe(b), c.code)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "uploads/curl.log")); len(b) != len(payload) {
		t.Errorf("existing upload changed: %d bytes", len(b))
	}

	// Over the per-file cap without tsize: aborted, nothing left behind.
	bigLocal := filepath.Join(src, "big")
	if err := os.WriteFile(bigLocal, randBytes(12000, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(listUploads(t, root))
	if out, err := put(t, ts, "busybox", bigLocal, "uploads/big.log"); err == nil {
		t.Errorf("upload over max_bytes succeeded\n%s", out)
	}
	// Over the total cap (25000): 12000 stored, 3000 more fits four times, not five.
	var totalErr error
	for i := range 5 {
		if _, err := put(t, ts, "busybox", local, fmt.Sprintf("uploads/q%d.log", i)); err != nil {
			totalErr = err
			break
		}
	}
	if totalErr == nil {
		t.Error("uploads past max_total all succeeded")
	}
	waitFor(t, 5*time.Second, func() bool {
		for _, n := range listUploads(t, root) {
			if strings.HasPrefix(n, ".") || n == "big.log" {
				return false
			}
		}
		return true
	}, "aborted uploads leave nothing behind")
	if got := len(listUploads(t, root)); got > before+4 {
		t.Errorf("%d files after quota uploads (before %d)", got, before)
	}
	if st := ts.Stats(); st.TooLarge < 2 || st.Exists < 2 {
		t.Errorf("stats %+v", st)
	}
	stillServing(t, ts)
}

// TestPartialUploadInvisible: while an upload is in progress only a hidden
// temporary file exists; when the client goes silent it is removed.
func TestPartialUploadInvisible(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(root)
	cfg.Uploads.Enabled = true
	ts := start(t, cfg, Deps{})
	rc := dialRaw(t)
	rc.send(ts.addr, rrq(opWRQ, "uploads/part.bin", "octet"))
	b, from := rc.recv(time.Second)
	if b == nil || b[1] != opACK {
		t.Fatalf("WRQ: got %s", describe(b))
	}
	rc.send(from, append([]byte{0, opDATA, 0, 1}, randBytes(512, 11)...))
	if b, _ := rc.recv(time.Second); b == nil || b[1] != opACK {
		t.Fatalf("DATA 1: got %s", describe(b))
	}
	names := listUploads(t, root)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".bootyard-upload-") {
		t.Fatalf("during upload: %v, want one hidden temporary file", names)
	}
	// The temporary name cannot be read back.
	if _, first, _ := dialRaw(t).get(ts.addr, "uploads/"+names[0]); errCode(first) != codeAccess {
		t.Errorf("reading the temporary file: %s, want code 2", describe(first))
	}
	waitFor(t, 10*time.Second, func() bool { return len(listUploads(t, root)) == 0 }, "abandoned upload removed")
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
