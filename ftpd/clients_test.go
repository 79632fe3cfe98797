package ftpd

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real clients nobody here wrote: curl, lftp, busybox ftpget/ftpput and
// python3 ftplib, over plain FTP, explicit and implicit FTPS, passive and
// active.

func TestCurl(t *testing.T) {
	e := startServer(t, nil)
	out := t.TempDir()
	up := filepath.Join(out, "up.bin")
	payload := make([]byte, 300<<10)
	rand.Read(payload)
	must(t, os.WriteFile(up, payload, 0o644))
	url := "ftp://" + e.addr
	ftps := "ftps://" + e.implicit
	cases := []struct {
		name string
		args []string
		get  string // remote path downloaded into a file and checked
		put  string // remote name of the upload
		user string // "" anonymous
	}{
		{name: "anon-passive-get", args: []string{url + "/pub/hello.bin"}, get: "/pub/hello.bin"},
		{name: "anon-active-get", args: []string{"-P", "127.0.0.1", url + "/pub/hello.bin"}, get: "/pub/hello.bin"},
		{name: "anon-image-get", args: []string{url + "/images/debian-12/linux"}, get: "/images/debian-12/linux"},
		{name: "anon-rendered-get", args: []string{"--ftp-method", "nocwd", url + "/preseed/node01.cfg"}, get: "/preseed/node01.cfg"},
		{name: "anon-passive-put", args: []string{"-T", up, url + "/incoming/curl-passive.bin"}, put: "incoming/curl-passive.bin"},
		{name: "anon-active-put", args: []string{"-P", "127.0.0.1", "-T", up, url + "/incoming/curl-active.bin"}, put: "incoming/curl-active.bin"},
		{name: "alice-explicit-get", args: []string{"--ssl-reqd", "-k", "-u", "alice:" + alicePass, url + "/pub/hello.bin"}, get: "/pub/hello.bin", user: "alice"},
		{name: "alice-explicit-put", args: []string{"--ssl-reqd", "-k", "-u", "alice:" + alicePass, "-T", up, url + "/pub/alice-explicit.bin"}, put: "pub/alice-explicit.bin", user: "alice"},
		{name: "alice-implicit-get", args: []string{"-k", "-u", "alice:" + alicePass, ftps + "/pub/hello.bin"}, get: "/pub/hello.bin", user: "alice"},
		{name: "alice-implicit-put", args: []string{"-k", "-u", "alice:" + alicePass, "-T", up, ftps + "/pub/alice-implicit.bin"}, put: "pub/alice-implicit.bin", user: "alice"},
		{name: "anon-implicit-get", args: []string{"-k", ftps + "/pub/hello.bin"}, get: "/pub/hello.bin"},
		{name: "bob-home-get", args: []string{"--ssl-reqd", "-k", "-u", "bob:" + bobPass, url + "/hello.bin"}, get: "/pub/hello.bin", user: "bob"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dst := filepath.Join(out, c.name)
			args := append([]string{"-sS", "--max-time", "20", "-o", dst}, c.args...)
			if o, err := run(t, "curl", args...); err != nil {
				t.Fatalf("curl %v: %v\n%s", args, err, o)
			}
			if c.get != "" {
				want := e.hello
				switch c.get {
				case "/images/debian-12/linux":
					want = []byte("kernel image")
				case "/preseed/node01.cfg":
					want = []byte("d-i netcfg/hostname string node01 # client 127.0.0.1\n")
				}
				if got := fileSum(t, dst); got != sum(want) {
					t.Fatalf("sha256 %s, want %s", got, sum(want))
				}
			}
			if c.put != "" {
				if got := fileSum(t, filepath.Join(e.root, c.put)); got != sum(payload) {
					t.Fatalf("uploaded sha256 %s, want %s", got, sum(payload))
				}
				fi, _ := os.Stat(filepath.Join(e.root, c.put))
				want := os.FileMode(0o644)
				if c.user == "" {
					want = 0o600
				}
				if fi.Mode().Perm() != want {
					t.Fatalf("mode %v, want %v", fi.Mode().Perm(), want)
				}
			}
		})
	}
	xl, err := os.ReadFile(filepath.Join(e.state, "xferlog"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" /incoming/curl-passive.bin b _ i a ", " /pub/hello.bin b _ o a ", " /pub/alice-explicit.bin b _ i r alice ftp 0 * c"} {
		if !bytes.Contains(xl, []byte(want)) {
			t.Errorf("xferlog lacks %q:\n%s", want, xl)
		}
	}
	if strings.Contains(e.logs.String(), alicePass) {
		t.Error("a password reached the log")
	}
	// The anonymous e-mail string is client-chosen: logs name the account
	// (user=anonymous) and carry the string only as email=; xferlog puts
	// it in its user field, as the format prescribes.
	logs := e.logs.String()
	if strings.Contains(logs, "user=ftp@example.com") || !strings.Contains(logs, "msg=download") || !strings.Contains(logs, "user=anonymous") {
		t.Errorf("anonymous sessions must log user=anonymous, never the e-mail as user:\n%s", logs)
	}
	if !bytes.Contains(xl, []byte(" a ftp@example.com ftp 0 * c")) {
		t.Errorf("xferlog lacks the anonymous e-mail in its user field:\n%s", xl)
	}
}

func TestLftp(t *testing.T) {
	e := startServer(t, nil)
	out := t.TempDir()
	up := filepath.Join(out, "up.bin")
	payload := make([]byte, 200<<10)
	rand.Read(payload)
	must(t, os.WriteFile(up, payload, 0o644))
	common := "set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; "
	cases := []struct {
		name, script, get, put string
	}{
		{"anon-passive", "open ftp://" + e.addr + "; get /pub/hello.bin -o " + out + "/a1; put " + up + " -o /incoming/lftp-anon.bin",
			"a1", "incoming/lftp-anon.bin"},
		{"alice-active-ftps", "set ftp:passive-mode off; set ftp:ssl-force true; set ftp:ssl-protect-data true; open -u alice," + alicePass + " ftp://" + e.addr +
			"; get /pub/hello.bin -o " + out + "/a2; put " + up + " -o /pub/lftp-active-tls.bin", "a2", "pub/lftp-active-tls.bin"},
		{"alice-implicit", "set ftp:ssl-protect-data true; open -u alice," + alicePass + " ftps://" + e.implicit +
			"; get /pub/hello.bin -o " + out + "/a3", "a3", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if o, err := run(t, "lftp", "-c", common+c.script); err != nil {
				t.Fatalf("lftp: %v\n%s", err, o)
			}
			if got := fileSum(t, filepath.Join(out, c.get)); got != sum(e.hello) {
				t.Fatalf("sha256 mismatch")
			}
			if c.put != "" {
				if got := fileSum(t, filepath.Join(e.root, c.put)); got != sum(payload) {
					t.Fatalf("upload sha256 mismatch")
				}
			}
		})
	}
}

func TestBusybox(t *testing.T) {
	e := startServer(t, nil)
	out := t.TempDir()
	port := strings.TrimPrefix(e.addr, "127.0.0.1:")
	if o, err := run(t, "busybox", "ftpget", "-P", port, "-u", "anonymous", "-p", "bb@example.org", "127.0.0.1", out+"/get.bin", "/pub/hello.bin"); err != nil {
		t.Fatalf("ftpget: %v\n%s", err, o)
	}
	if fileSum(t, out+"/get.bin") != sum(e.hello) {
		t.Fatal("ftpget sha256 mismatch")
	}
	payload := bytes.Repeat([]byte("busybox log line\n"), 5000)
	must(t, os.WriteFile(out+"/up.log", payload, 0o644))
	if o, err := run(t, "busybox", "ftpput", "-P", port, "-u", "anonymous", "-p", "bb@example.org", "127.0.0.1", "/incoming/bb.log", out+"/up.log"); err != nil {
		t.Fatalf("ftpput: %v\n%s", err, o)
	}
	if fileSum(t, e.root+"/incoming/bb.log") != sum(payload) {
		t.Fatal("ftpput sha256 mismatch")
	}
	// A second ftpput of the same name must be refused (create-only).
	if o, err := run(t, "busybox", "ftpput", "-P", port, "-u", "anonymous", "-p", "x", "127.0.0.1", "/incoming/bb.log", out+"/get.bin"); err == nil {
		t.Fatalf("overwrite accepted:\n%s", o)
	}
	if fileSum(t, e.root+"/incoming/bb.log") != sum(payload) {
		t.Fatal("existing upload changed")
	}
}

const pyFtplib = `
import ftplib, hashlib, io, ssl, sys
host, port, user, pw, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "tls"
if tls:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    f = ftplib.FTP_TLS(context=ctx, timeout=15)
else:
    f = ftplib.FTP(timeout=15)
f.connect(host, port)
f.login(user, pw)
if tls:
    f.prot_p()
buf = io.BytesIO()
f.retrbinary("RETR /pub/hello.bin", buf.write)
print("get", hashlib.sha256(buf.getvalue()).hexdigest())
data = b"python upload\n" * 10000
f.storbinary("STOR " + sys.argv[6], io.BytesIO(data))
print("put", hashlib.sha256(data).hexdigest())
f.quit()
`

func TestPythonFtplib(t *testing.T) {
	e := startServer(t, nil)
	port := strings.TrimPrefix(e.addr, "127.0.0.1:")
	data := bytes.Repeat([]byte("python upload\n"), 10000)
	for _, c := range []struct{ user, pass, mode, remote, local string }{
		{"anonymous", "py@example.org", "plain", "/incoming/py-plain.log", "incoming/py-plain.log"},
		{"anonymous", "py@example.org", "tls", "/incoming/py-tls.log", "incoming/py-tls.log"},
		{"alice", alicePass, "tls", "/pub/py-alice.log", "pub/py-alice.log"},
	} {
		t.Run(c.user+"-"+c.mode, func(t *testing.T) {
			o, err := run(t, "python3", "-c", pyFtplib, "127.0.0.1", port, c.user, c.pass, c.mode, c.remote)
			if err != nil {
				t.Fatalf("ftplib: %v\n%s", err, o)
			}
			if !strings.Contains(o, "get "+sum(e.hello)) {
				t.Fatalf("download checksum mismatch:\n%s", o)
			}
			if fileSum(t, filepath.Join(e.root, c.local)) != sum(data) {
				t.Fatal("upload checksum mismatch")
			}
		})
	}
}
