package ftpd

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// Attacks, each asserting the refusal and that the server keeps serving.

func TestDropBoxRefusals(t *testing.T) {
	e := startServer(t, nil)
	must(t, os.WriteFile(e.root+"/incoming/other.log", []byte("someone else's log"), 0o600))
	r := dialRaw(t, e.addr)
	r.anonLogin()
	r.expect(250, "CWD /incoming")
	for _, c := range []struct {
		cmd  string
		want int
	}{
		{"SIZE other.log", 550},
		{"MDTM other.log", 550},
		{"STAT other.log", 450},
		{"MLST other.log", 550},
		{"DELE other.log", 550},
		{"RNFR other.log", 550},
		{"RNTO stolen.log", 503},
		{"MKD sub", 550},
		{"RMD /incoming", 550},
		{"SITE CHMOD 777 other.log", 500},
		{"MFMT 20200101000000 other.log", 500},
		{"XSHA256 other.log", 550},
		{"CWD ../incoming/..", 250},
	} {
		code, msg := r.cmd("%s", c.cmd)
		if code/100 != c.want/100 {
			t.Errorf("%s: got %d %q, want %d", c.cmd, code, msg, c.want)
		}
		if c.cmd == "STAT other.log" && strings.Contains(msg, "other.log") && code < 300 {
			t.Errorf("STAT revealed the drop box: %q", msg)
		}
	}
	r.expect(250, "CWD /incoming")
	// Listing and read-back: refused before any data connection is used.
	for _, cmd := range []string{"LIST", "NLST", "MLSD", "LIST /incoming", "RETR other.log", "RETR /incoming/other.log", "APPE other.log", "APPE new.log"} {
		dc := r.epsv()
		code, msg := r.cmd("%s", cmd)
		dc.Close()
		if code < 400 {
			// A 150 would mean data flowed: read the end reply and fail.
			r.read()
			t.Errorf("%s: got %d %q, want a refusal", cmd, code, msg)
		}
	}
	// REST then STOR (resume) is refused.
	r.expect(350, "REST 10")
	if code, msg := r.stor("resume.log", []byte("x")); code < 500 {
		t.Errorf("REST+STOR: %d %q", code, msg)
	}
	// Overwrite of an existing upload is refused and leaves it intact.
	if code, msg := r.stor("other.log", []byte("overwritten")); code != 553 {
		t.Errorf("overwrite: %d %q, want 553", code, msg)
	}
	if b, _ := os.ReadFile(e.root + "/incoming/other.log"); string(b) != "someone else's log" {
		t.Errorf("existing upload changed: %q", b)
	}
	// Uploads outside incoming/ are refused.
	if code, msg := r.stor("/pub/planted.bin", []byte("x")); code < 500 {
		t.Errorf("STOR outside incoming: %d %q", code, msg)
	}
	// A fresh name works, lands 0600, and cannot be read back.
	if code, msg := r.stor("mine.log", []byte("my log\n")); code != 226 {
		t.Fatalf("STOR: %d %q", code, msg)
	}
	fi, err := os.Stat(e.root + "/incoming/mine.log")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("upload mode: %v %v", fi, err)
	}
	if code, _ := r.retr("mine.log"); code < 500 {
		t.Errorf("read-back of own upload: %d", code)
	}
	// STOU picks a unique name and tells it (RFC 1123 "150 FILE: name").
	dc := r.epsv()
	code, msg := r.cmd("STOU")
	if code != 150 || !strings.HasPrefix(msg, "FILE: stou-") {
		t.Fatalf("STOU: %d %q", code, msg)
	}
	dc.Write([]byte("unique\n"))
	dc.Close()
	if code, msg := r.read(); code != 226 {
		t.Fatalf("STOU end: %d %q", code, msg)
	}
	if b, err := os.ReadFile(filepath.Join(e.root, "incoming", strings.TrimPrefix(msg, "FILE: "))); err == nil {
		_ = b
	}
	ents, _ := os.ReadDir(e.root + "/incoming")
	found := false
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), "stou-") {
			found = true
		}
	}
	if !found {
		t.Errorf("STOU file missing: %v", ents)
	}
	r.cmd("QUIT")
	e.alive()
}

func TestBounceRefused(t *testing.T) {
	e := startServer(t, nil)
	r := dialRaw(t, e.addr)
	r.anonLogin()
	for _, cmd := range []string{
		"PORT 127,0,0,2,156,64",       // another address
		"EPRT |1|127.0.0.2|40000|",    // another address, EPRT
		"PORT 127,0,0,1,0,25",         // privileged port on the peer
		"EPRT |1|127.0.0.1|22|",       // privileged port, EPRT
		"EPRT |2|::1|40000|",          // other family
		"PORT 10,0,0,1,0,80",          // elsewhere entirely
		"PORT 127,0,0,1,300,1",        // malformed
		"EPRT |1|127.0.0.1%lo|40000|", // zone
	} {
		code, msg := r.cmd("%s", cmd)
		if code < 500 {
			t.Errorf("%s: got %d %q, want refusal", cmd, code, msg)
		}
	}
	if got := e.srv.Stats().Bounces; got < 5 {
		t.Errorf("bounce counter %d", got)
	}
	if !strings.Contains(e.logs.String(), "bounce attempt refused") {
		t.Error("no bounce log line")
	}
	// A legitimate PORT to our own unprivileged port still works.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	r.expect(200, "PORT 127,0,0,1,%d,%d", p>>8, p&255)
	if code, _ := r.cmd("RETR /pub/hello.bin"); code != 150 {
		t.Fatalf("active RETR: %d", code)
	}
	c, err := ln.Accept()
	must(t, err)
	var buf bytes.Buffer
	buf.ReadFrom(c)
	c.Close()
	if code, _ := r.read(); code != 226 || !bytes.Equal(buf.Bytes(), e.hello) {
		t.Fatalf("active transfer: %d, %d bytes", code, buf.Len())
	}
	if lp := c.RemoteAddr().(*net.TCPAddr).Port; lp == 20 {
		t.Errorf("active connection from port 20")
	}
	e.alive()
}

func TestPassiveStealing(t *testing.T) {
	e := startServer(t, nil)
	r := dialRaw(t, e.addr)
	r.anonLogin()
	msg := r.expect(229, "EPSV")
	port := msg[strings.Index(msg, "|||")+3 : strings.LastIndex(msg, "|")]
	// The thief, from 127.0.0.2, reaches the port first.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	thief, err := d.Dial("tcp", "127.0.0.1:"+port)
	if err == nil {
		thief.SetDeadline(time.Now().Add(2 * time.Second))
		n, _ := thief.Read(make([]byte, 1))
		if n > 0 {
			t.Fatal("thief received data")
		}
		thief.Close()
	}
	// The real client still gets its transfer.
	dc, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 2*time.Second)
	must(t, err)
	if code, msg := r.cmd("RETR /pub/hello.bin"); code != 150 {
		t.Fatalf("RETR after theft attempt: %d %q", code, msg)
	}
	var buf bytes.Buffer
	buf.ReadFrom(dc)
	dc.Close()
	if code, _ := r.read(); code != 226 || !bytes.Equal(buf.Bytes(), e.hello) {
		t.Fatalf("transfer: %d, %d bytes", code, buf.Len())
	}
	e.alive()
}

func TestTraversal(t *testing.T) {
	e := startServer(t, nil)
	for _, who := range []string{"anonymous", "alice"} {
		t.Run(who, func(t *testing.T) {
			r := dialRaw(t, e.addr)
			r.banner()
			if who == "alice" {
				r.expect(234, "AUTH TLS")
				r = tlsUpgrade(t, r)
			}
			r.expect(331, "USER %s", who)
			pass := "x@example.org"
			if who == "alice" {
				pass = alicePass
			}
			r.expect(230, "PASS %s", pass)
			r.expect(200, "TYPE I")
			if who == "alice" {
				r.expect(200, "PBSZ 0")
				r.expect(200, "PROT P")
			}
			r.cmd("CWD ../..")
			if msg := r.expect(257, "PWD"); !strings.Contains(msg, `"/"`) {
				t.Errorf("PWD after CWD ../..: %q", msg)
			}
			for _, name := range []string{"../../etc/passwd", "/etc/passwd", "/../../../../etc/passwd", "/pub/escape", "pub/../../outside.txt", "/pub/private.txt"} {
				if who == "alice" && name == "/pub/private.txt" {
					continue // named users may read non-world-readable files
				}
				code, msg := r.cmd("SIZE %s", name)
				if code == 213 && name != "/pub/private.txt" {
					t.Errorf("SIZE %s: %d %q", name, code, msg)
				}
				if strings.Contains(msg, e.root) {
					t.Errorf("reply leaks the real path: %q", msg)
				}
				if who == "anonymous" {
					if code, b := r.retr(name); code == 226 || len(b) > 0 {
						t.Errorf("RETR %s: %d %q", name, code, b)
					}
				}
			}
			r.cmd("QUIT")
		})
	}
	e.alive()
}

func TestLoginRefusals(t *testing.T) {
	e := startServer(t, func(c *Config) { c.DenyUsers = []string{"operator"} })
	// root is refused at USER, whatever the password.
	for _, u := range []string{"root", "operator"} {
		r := dialRaw(t, e.addr)
		r.banner()
		r.expect(234, "AUTH TLS")
		r = tlsUpgrade(t, r)
		if code, msg := r.cmd("USER %s", u); code != 530 {
			t.Errorf("USER %s: %d %q", u, code, msg)
		}
	}
	// A named user over plaintext is refused before the password is sent.
	r := dialRaw(t, e.addr)
	r.banner()
	if code, msg := r.cmd("USER alice"); code != 530 || !strings.Contains(msg, "TLS") {
		t.Errorf("plaintext USER alice: %d %q", code, msg)
	}
	// Commands before login.
	r = dialRaw(t, e.addr)
	r.banner()
	for _, cmd := range []string{"LIST", "RETR /pub/hello.bin", "CWD /pub", "STOR x", "PASV", "SIZE /pub/hello.bin"} {
		if code, msg := r.cmd("%s", cmd); code != 530 {
			t.Errorf("%s before login: %d %q", cmd, code, msg)
		}
	}
	// A 1 MiB command line is refused and the connection closed.
	c := dialRaw(t, e.addr)
	c.banner()
	go func() {
		c.c.Write(append(bytes.Repeat([]byte("A"), 1<<20), '\r', '\n'))
	}()
	if code, _ := c.read(); code != 500 {
		t.Errorf("1 MiB line: %d, want 500", code)
	}
	if code, _ := c.read(); code != -1 {
		t.Errorf("connection still open after overlong line")
	}
	e.alive()
}

func TestFailedLoginsBan(t *testing.T) {
	e := startServer(t, func(c *Config) { c.MaxPerIP = 50; c.MaxClients = 100 })
	var durations []time.Duration
	banned := 0
	for i := 0; i < 30; i++ {
		r := dialRaw(t, e.addr)
		code, msg := r.read()
		if code == 421 {
			banned++
			continue
		}
		if code != 220 {
			t.Fatalf("attempt %d: %d %q", i, code, msg)
		}
		r.expect(234, "AUTH TLS")
		r = tlsUpgrade(t, r)
		r.expect(331, "USER alice")
		start := time.Now()
		if code, _ := r.cmd("PASS wrong-%d", i); code != 530 {
			t.Fatalf("wrong password accepted: %d", code)
		}
		durations = append(durations, time.Since(start))
	}
	if len(durations) != 5 || banned != 25 {
		t.Fatalf("%d attempts answered, %d banned; want 5 and 25", len(durations), banned)
	}
	if durations[4] < 4*durations[0] || durations[4] < 200*time.Millisecond {
		t.Errorf("delay does not grow: %v", durations)
	}
	if e.srv.Stats().Bans != 1 || !strings.Contains(e.logs.String(), "address banned") {
		t.Errorf("ban not counted/logged")
	}
	// Another address is still served.
	r := dialRawFrom(t, "127.0.0.2", e.addr)
	r.anonLogin()
	if code, _ := r.retr("/pub/hello.bin"); code != 226 {
		t.Fatalf("other address: %d", code)
	}
}

func TestConnectionLimits(t *testing.T) {
	e := startServer(t, func(c *Config) { c.MaxClients = 4; c.MaxPerIP = 2 })
	a := dialRaw(t, e.addr)
	a.banner()
	b := dialRaw(t, e.addr)
	b.banner()
	c := dialRaw(t, e.addr)
	if code, msg := c.read(); code != 421 {
		t.Errorf("third from 127.0.0.1: %d %q, want 421", code, msg)
	}
	d := dialRawFrom(t, "127.0.0.2", e.addr)
	d.banner()
	f := dialRawFrom(t, "127.0.0.3", e.addr)
	f.banner()
	g := dialRawFrom(t, "127.0.0.4", e.addr)
	if code, msg := g.read(); code != 421 {
		t.Errorf("fifth client: %d %q, want 421", code, msg)
	}
	a.cmd("QUIT")
	a.c.Close()
	time.Sleep(100 * time.Millisecond)
	e.alive()
}

func TestTimeouts(t *testing.T) {
	e := startServer(t, func(c *Config) {
		c.LoginTimeout = units.Duration(500 * time.Millisecond)
		c.IdleTimeout = units.Duration(time.Second)
	})
	r := dialRaw(t, e.addr)
	r.banner()
	start := time.Now()
	if code, _ := r.read(); code != -1 {
		t.Errorf("login timeout: got a reply")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("login timeout after %v", d)
	}
	r = dialRaw(t, e.addr)
	r.anonLogin()
	start = time.Now()
	code, _ := r.read()
	if code != 421 {
		t.Errorf("idle timeout: %d, want 421", code)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("idle timeout after %v", d)
	}
	if !strings.Contains(e.logs.String(), "login timeout") {
		t.Error("login timeout not logged")
	}
}

func TestUploadCutAndCap(t *testing.T) {
	e := startServer(t, func(c *Config) { c.Anonymous.MaxUpload = 64 << 10 })
	r := dialRaw(t, e.addr)
	r.anonLogin()
	// Cut mid-transfer: the data connection is reset.
	dc := r.epsv()
	if code, msg := r.cmd("STOR /incoming/cut.log"); code != 150 {
		t.Fatalf("STOR: %d %q", code, msg)
	}
	dc.Write(make([]byte, 16<<10))
	time.Sleep(50 * time.Millisecond)
	dc.(*net.TCPConn).SetLinger(0)
	dc.Close()
	if code, _ := r.read(); code < 400 {
		t.Errorf("cut upload: %d, want an error", code)
	}
	// Over the per-file cap: 552 and nothing left.
	dc = r.epsv()
	if code, msg := r.cmd("STOR /incoming/big.log"); code != 150 {
		t.Fatalf("STOR: %d %q", code, msg)
	}
	go func() { dc.Write(make([]byte, 200<<10)); dc.Close() }()
	if code, msg := r.read(); code != 552 {
		t.Errorf("over cap: %d %q, want 552", code, msg)
	}
	ents, _ := os.ReadDir(e.root + "/incoming")
	if len(ents) != 0 {
		t.Errorf("incoming not empty: %v", ents)
	}
	// ABOR during an upload leaves nothing either.
	dc = r.epsv()
	r.expect(150, "STOR /incoming/aborted.log")
	dc.Write(make([]byte, 1000))
	r.tp.PrintfLine("ABOR")
	for {
		code, _ := r.read()
		if code == 226 || code == 225 || code < 0 || code >= 400 && code != 426 {
			break
		}
	}
	dc.Close()
	time.Sleep(100 * time.Millisecond)
	if ents, _ := os.ReadDir(e.root + "/incoming"); len(ents) != 0 {
		t.Errorf("incoming not empty after ABOR: %v", ents)
	}
	e.alive()
}

func TestQuota(t *testing.T) {
	e := startServer(t, func(c *Config) { c.Anonymous.MaxUpload = 0; c.Anonymous.IncomingQuota = 100 << 10 })
	r := dialRaw(t, e.addr)
	r.anonLogin()
	if code, _ := r.stor("/incoming/a.log", make([]byte, 80<<10)); code != 226 {
		t.Fatalf("first upload: %d", code)
	}
	if code, _ := r.stor("/incoming/b.log", make([]byte, 80<<10)); code != 552 {
		t.Fatalf("over quota: %d, want 552", code)
	}
	if _, err := os.Stat(e.root + "/incoming/b.log"); err == nil {
		t.Fatal("over-quota upload kept")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
