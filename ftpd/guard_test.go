package ftpd

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var activeCases = []struct {
	verb, arg string
	want      string // "" = parse error
	ok        bool   // allowed for peer 127.0.0.1
}{
	{"PORT", "127,0,0,1,156,64", "127.0.0.1:40000", true},
	{"PORT", "127,0,0,2,156,64", "127.0.0.2:40000", false},
	{"PORT", "127,0,0,1,0,25", "127.0.0.1:25", false},
	{"PORT", "127,0,0,1,3,255", "127.0.0.1:1023", false},
	{"PORT", "127,0,0,1,4,0", "127.0.0.1:1024", true},
	{"PORT", "127,0,0,1,256,0", "", false},
	{"PORT", "127,0,0,1,1", "", false},
	{"PORT", "a,b,c,d,e,f", "", false},
	{"EPRT", "|1|127.0.0.1|40000|", "127.0.0.1:40000", true},
	{"EPRT", "!1!127.0.0.1!40000!", "127.0.0.1:40000", true},
	{"EPRT", "|1|127.0.0.2|40000|", "127.0.0.2:40000", false},
	{"EPRT", "|2|::1|40000|", "[::1]:40000", false},
	{"EPRT", "|1|::1|40000|", "", false},
	{"EPRT", "|1|127.0.0.1|0|", "", false},
	{"EPRT", "|1|127.0.0.1|70000|", "", false},
	{"EPRT", "|3|127.0.0.1|4000|", "", false},
	{"EPRT", "|1|127.0.0.1|4000", "", false},
	{"EPRT", "", "", false},
}

func TestActiveTarget(t *testing.T) {
	peer := netip.MustParseAddr("127.0.0.1")
	for _, c := range activeCases {
		got, err := parseActiveTarget(c.verb, c.arg)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s %q: parsed as %s, want error", c.verb, c.arg, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%s %q: %v %v, want %s", c.verb, c.arg, got, err, c.want)
			continue
		}
		if ok := checkActiveTarget(peer, got) == nil; ok != c.ok {
			t.Errorf("%s %q: allowed=%v, want %v", c.verb, c.arg, ok, c.ok)
		}
	}
}

func FuzzActiveTarget(f *testing.F) {
	for _, c := range activeCases {
		f.Add(c.verb, c.arg)
	}
	peer := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, verb, arg string) {
		ap, err := parseActiveTarget(verb, arg)
		if err != nil {
			return
		}
		if checkActiveTarget(peer, ap) == nil && (ap.Addr().Unmap() != peer || ap.Port() < 1024) {
			t.Fatalf("%s %q allowed %s", verb, arg, ap)
		}
	})
}

var (
	anonAcct  = &account{name: "anonymous", anonymous: true, home: "."}
	aliceAcct = &account{name: "alice", perms: permRead | permWrite | permDelete | permMkdir | permRename, home: "."}
	bobAcct   = &account{name: "bob", perms: permRead, home: "pub"}
)

var policyCases = []struct {
	acct  *account
	o     op
	name  string
	allow bool
}{
	{anonAcct, opRead, "/pub/hello.bin", true},
	{anonAcct, opList, "/pub", true},
	{anonAcct, opStat, "/incoming", true},
	{anonAcct, opStat, "/incoming/x.log", false},
	{anonAcct, opList, "/incoming", false},
	{anonAcct, opRead, "/incoming/x.log", false},
	{anonAcct, opCreate, "/incoming/x.log", true},
	{anonAcct, opCreate, "/incoming/sub/x.log", false},
	{anonAcct, opCreate, "/incoming", false},
	{anonAcct, opCreate, "/pub/x.log", false},
	{anonAcct, opAppend, "/incoming/x.log", false},
	{anonAcct, opDelete, "/incoming/x.log", false},
	{anonAcct, opRename, "/incoming/x.log", false},
	{anonAcct, opMkdir, "/incoming/d", false},
	{anonAcct, opRmdir, "/incoming", false},
	{anonAcct, opAttr, "/pub/hello.bin", false},
	{anonAcct, opCreate, "/incoming/" + ".bootyard-upload-0011", false},
	{aliceAcct, opCreate, "/pub/new.bin", true},
	{aliceAcct, opCreate, "/images/debian/linux", false},
	{aliceAcct, opDelete, "/images/debian/linux", false},
	{aliceAcct, opDelete, "/", false},
	{aliceAcct, opRead, "/incoming/x.log", true},
	{aliceAcct, opAppend, "/pub/hello.bin", false},
	{aliceAcct, opAttr, "/pub/hello.bin", false},
	{bobAcct, opRead, "/hello.bin", true},
	{bobAcct, opCreate, "/new.bin", false},
	{bobAcct, opRead, "/../incoming/x", true}, // clamped to /pub/incoming/x
}

func TestPolicy(t *testing.T) {
	for _, c := range policyCases {
		rel, err := resolve(c.acct.home, c.name)
		if err == nil {
			err = decide(c.acct, "incoming", c.o, rel)
		}
		if (err == nil) != c.allow {
			t.Errorf("%s %s %q (rel %q): err=%v, want allow=%v", c.acct.name, c.o, c.name, rel, err, c.allow)
		}
	}
}

// FuzzPolicy: any name, any user, any operation: the resolved name stays
// inside the root and the account's home, and the anonymous user is never
// granted anything but reading outside the drop box and creating new files
// directly inside it; nobody writes under images/.
func FuzzPolicy(f *testing.F) {
	for _, c := range policyCases {
		for i, a := range []*account{anonAcct, aliceAcct, bobAcct} {
			if a == c.acct {
				f.Add(i, int(c.o), c.name)
			}
		}
	}
	f.Add(0, 0, "/incoming/../incoming/./x")
	f.Add(2, 2, "../../../etc/passwd")
	accts := []*account{anonAcct, aliceAcct, bobAcct}
	f.Fuzz(func(t *testing.T, who, o int, name string) {
		if who < 0 || o < 0 {
			return
		}
		acct := accts[who%len(accts)]
		oper := op(o % int(numOps))
		rel, err := resolve(acct.home, name)
		if err != nil {
			return
		}
		if strings.HasPrefix(rel, "/") || rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "/../") || strings.HasSuffix(rel, "/..") {
			t.Fatalf("resolve(%q, %q) = %q escapes", acct.home, name, rel)
		}
		if !under(rel, acct.home) && acct.home != "." {
			t.Fatalf("resolve(%q, %q) = %q leaves home", acct.home, name, rel)
		}
		if decide(acct, "incoming", oper, rel) != nil {
			return
		}
		inDrop := under(rel, "incoming")
		switch {
		case acct.anonymous && oper == opCreate && (filepathDir(rel) != "incoming" || rel == "incoming"):
			t.Fatalf("anonymous create of %q allowed", rel)
		case acct.anonymous && oper != opCreate && oper != opStat && oper != opList && oper != opRead:
			t.Fatalf("anonymous %s of %q allowed", oper, rel)
		case acct.anonymous && (oper == opList || oper == opRead) && inDrop:
			t.Fatalf("anonymous %s in drop box (%q) allowed", oper, rel)
		case acct.anonymous && oper == opStat && inDrop && rel != "incoming":
			t.Fatalf("anonymous stat of %q allowed", rel)
		case oper != opStat && oper != opList && oper != opRead && under(rel, "images"):
			t.Fatalf("%s %s under images allowed (%q)", acct.name, oper, rel)
		case oper == opAppend || oper == opAttr:
			t.Fatalf("%s %s allowed", acct.name, oper)
		}
	})
}

func filepathDir(p string) string { return filepath.Dir(p) }

func TestCertGeneratedAndReused(t *testing.T) {
	dir := t.TempDir()
	c1, gen, err := loadOrCreateCert("", "", dir)
	if err != nil || !gen {
		t.Fatalf("first: %v gen=%v", err, gen)
	}
	fi, err := os.Stat(filepath.Join(dir, keyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	c2, gen, err := loadOrCreateCert("", "", dir)
	if err != nil || gen {
		t.Fatalf("second: %v gen=%v", err, gen)
	}
	if string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Fatal("certificate not reused")
	}
	cfg := tlsConfig(c1)
	if cfg.MinVersion < 0x0303 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "ftp" {
		t.Fatalf("tls config: %+v", cfg)
	}
}

func TestXferlogLine(t *testing.T) {
	r := xferRecord{host: "10.0.0.5", size: 42, name: "/incoming/a b.log", dir: 'i', anonymous: true, user: "dev ice@x\n", complete: true}
	got := r.String()
	f := strings.Fields(got)
	if len(f) != 18 || f[8] != "/incoming/a_b.log" || f[11] != "i" || f[12] != "a" || f[13] != "dev_ice@x_" || f[17] != "c" || !strings.HasSuffix(got, "\n") {
		t.Fatalf("xferlog line %q (%d fields)", got, len(f))
	}
}
