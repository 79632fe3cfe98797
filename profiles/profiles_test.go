package profiles

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/bootyard/bootyard/internal/units"
)

var update = flag.Bool("update", os.Getenv("UPDATE_GOLDEN") != "", "rewrite testdata/*.golden")

// config is the shape of the profile blocks in bootyard.toml.
type config struct {
	Profile []Profile `toml:"profile"`
	Machine []Machine `toml:"machine"`
	Rule    []Rule    `toml:"rule"`
}

func decode(t testing.TB, text string) config {
	t.Helper()
	var c config
	md, err := toml.Decode(text, &c)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys: %v", u)
	}
	return c
}

func compileText(t testing.TB, text string, idx ImageIndex) (*Set, string, []string) {
	t.Helper()
	c := decode(t, text)
	set, probs, warns := Compile(Input{Profiles: c.Profile, Machines: c.Machine, Rules: c.Rule, BaseDir: "../examples/profiles", Images: idx})
	return set, probs.Error(), warns
}

func mustCompile(t testing.TB, text string) *Set {
	t.Helper()
	set, probs, _ := compileText(t, text, nil)
	if set == nil {
		t.Fatalf("compile: %s", probs)
	}
	return set
}

// exampleSet compiles examples/profiles/profiles.toml.
func exampleSet(t testing.TB, idx ImageIndex) (*Set, []string) {
	t.Helper()
	b, err := os.ReadFile("../examples/profiles/profiles.toml")
	if err != nil {
		t.Fatal(err)
	}
	set, probs, warns := compileText(t, string(b), idx)
	if set == nil {
		t.Fatalf("examples/profiles/profiles.toml: %s", probs)
	}
	return set, warns
}

func mac(s string) units.MAC {
	m, err := units.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var server = netip.MustParseAddr("10.0.0.2")

const twoProfiles = `
[[profile]]
name = "inst"
image = "deb"
kernel = "linux"
initrd = ["initrd.gz", "firmware.cpio.gz"]
cmdline = "auto=true url=ftp://{{.Server}}/preseed/{{.Hostname}}.cfg"
[[profile]]
name = "custom"
boot = { bios = "pxelinux.0", efi-x64 = "grubx64.efi", efi-bc = "bc.efi", ipxe = "menu.ipxe", arch-22 = "u-boot.bin" }
`

func TestFirmwareTable(t *testing.T) {
	set := mustCompile(t, twoProfiles+`
[[rule]]
profile = "inst"
[[rule]]
profile = "custom"
mac_prefix = "02"
`)
	m := mac("52:54:00:00:00:01")
	c := mac("02:00:00:00:00:01")
	tests := []struct {
		name   string
		f      Facts
		action Action
		fw     Firmware
		arch   Firmware
		boot   string
		http   bool
	}{
		{"no option 93 is bios", Facts{MAC: m}, Boot, BIOS, BIOS, "undionly.kpxe", false},
		{"0 bios", Facts{MAC: m, HasArch: true, Arch: 0}, Boot, BIOS, BIOS, "undionly.kpxe", false},
		{"6 efi-ia32", Facts{MAC: m, HasArch: true, Arch: 6}, Boot, EFIIA32, EFIIA32, "ipxe-ia32.efi", false},
		{"7 efi-x64", Facts{MAC: m, HasArch: true, Arch: 7}, Boot, EFIx64, EFIx64, "ipxe.efi", false},
		{"9 efi-bc", Facts{MAC: m, HasArch: true, Arch: 9}, Boot, EFIBC, EFIBC, "ipxe.efi", false},
		{"10 efi-arm32", Facts{MAC: m, HasArch: true, Arch: 10}, Boot, EFIARM32, EFIARM32, "ipxe-arm32.efi", false},
		{"11 efi-arm64", Facts{MAC: m, HasArch: true, Arch: 11}, Boot, EFIARM64, EFIARM64, "ipxe-arm64.efi", false},
		{"15 efi-ia32-http", Facts{MAC: m, HasArch: true, Arch: 15}, Boot, EFIIA32HTTP, EFIIA32HTTP, "ipxe-ia32.efi", true},
		{"16 efi-x64-http", Facts{MAC: m, HasArch: true, Arch: 16, VendorClass: "HTTPClient:Arch:00016:UNDI:003001"}, Boot, EFIx64HTTP, EFIx64HTTP, "ipxe.efi", true},
		{"19 efi-arm64-http", Facts{MAC: m, HasArch: true, Arch: 19}, Boot, EFIARM64HTTP, EFIARM64HTTP, "ipxe-arm64.efi", true},
		{"vendor HTTPClient", Facts{MAC: m, HasArch: true, Arch: 7, VendorClass: "HTTPClient"}, Boot, EFIx64, EFIx64, "ipxe.efi", true},
		{"ipxe on bios", Facts{MAC: m, HasArch: true, Arch: 0, UserClass: "iPXE"}, Boot, IPXE, BIOS, "ipxe/52-54-00-00-00-01.ipxe", false},
		{"ipxe on efi", Facts{MAC: m, HasArch: true, Arch: 7, UserClass: "ipxe"}, Boot, IPXE, EFIx64, "ipxe/52-54-00-00-00-01.ipxe", false},
		{"unknown arch ignored", Facts{MAC: m, HasArch: true, Arch: 22}, Ignore, "arch-22", "arch-22", "", false},
		{"custom bios", Facts{MAC: c, HasArch: true, Arch: 0}, Boot, BIOS, BIOS, "pxelinux.0", false},
		{"custom efi-x64", Facts{MAC: c, HasArch: true, Arch: 7}, Boot, EFIx64, EFIx64, "grubx64.efi", false},
		{"custom efi-bc own key", Facts{MAC: c, HasArch: true, Arch: 9}, Boot, EFIBC, EFIBC, "bc.efi", false},
		{"custom ipxe override", Facts{MAC: c, HasArch: true, Arch: 7, UserClass: "iPXE"}, Boot, IPXE, EFIx64, "menu.ipxe", false},
		{"custom arch-22", Facts{MAC: c, HasArch: true, Arch: 22}, Boot, "arch-22", "arch-22", "u-boot.bin", false},
		{"custom arm64 default", Facts{MAC: c, HasArch: true, Arch: 11}, Boot, EFIARM64, EFIARM64, "ipxe-arm64.efi", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := set.Match(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Action != tt.action || p.Firmware != tt.fw || p.Arch != tt.arch || p.BootFile != tt.boot || p.HTTP != tt.http {
				t.Errorf("got action %v fw %q arch %q boot %q http %v (%s), want %v %q %q %q %v",
					p.Action, p.Firmware, p.Arch, p.BootFile, p.HTTP, p.Reason, tt.action, tt.fw, tt.arch, tt.boot, tt.http)
			}
		})
	}
	// efi-bc falls back to efi-x64's file when the profile names only that.
	set = mustCompile(t, `
[[profile]]
name = "p"
boot = { efi-x64 = "x64.efi" }
[[rule]]
profile = "p"
`)
	p, _ := set.Match(Facts{MAC: m, HasArch: true, Arch: 9})
	if p.BootFile != "x64.efi" {
		t.Errorf("efi-bc fallback: %q", p.BootFile)
	}
}

func TestNextStage(t *testing.T) {
	set := mustCompile(t, twoProfiles+`
[[machine]]
mac = "52:54:00:12:34:56"
hostname = "node01"
ip = "10.0.0.21"
profile = "inst"
`)
	p, err := set.Match(Facts{MAC: mac("52:54:00:12:34:56"), HasArch: true, Arch: 7, Server: server})
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{Action: Boot, Profile: "inst", Source: "machine 52:54:00:12:34:56", Firmware: EFIx64, Arch: EFIx64,
		BootFile: "ipxe.efi", Hostname: "node01", IP: netip.MustParseAddr("10.0.0.21"), Image: "deb",
		Kernel: "images/deb/linux", Initrds: []string{"images/deb/initrd.gz", "images/deb/firmware.cpio.gz"},
		Cmdline: "auto=true url=ftp://10.0.0.2/preseed/node01.cfg"}
	if fmt.Sprintf("%+v", p) != fmt.Sprintf("%+v", want) {
		t.Errorf("plan\n got %+v\nwant %+v", p, want)
	}
	r := set.Reservations()
	if len(r) != 1 || r[mac("52:54:00:12:34:56")] != netip.MustParseAddr("10.0.0.21") {
		t.Errorf("reservations %v", r)
	}
}

func TestPrecedence(t *testing.T) {
	set := mustCompile(t, `
[[profile]]
name = "a"
[[profile]]
name = "b"
[[profile]]
name = "c"
[[profile]]
name = "d"
[[machine]]
mac = "52:54:00:00:00:01"
profile = "a"
[[machine]]
mac = "52:54:00:00:00:02"
uuid = "00112233-4455-6677-8899-aabbccddeeff"
profile = "a"
[[machine]]
mac = "52:54:00:00:00:03"
profile = "ignore"
[[rule]]
name = "lab"
profile = "b"
subnet = "10.0.0.0/16"
[[rule]]
name = "lab-uefi"
profile = "c"
subnet = "10.0.0.0/16"
arch = ["efi-x64"]
[[rule]]
name = "ipxe-in-lab"
profile = "d"
subnet = "10.0.1.0/24"
user_class = "iPXE"
mac_prefix = "52:54:00"
[[rule]]
name = "disk"
profile = "local"
vendor_class = "PXEClient*"
subnet = "192.168.0.0/16"
`)
	lab := netip.MustParseAddr("10.0.5.5")
	uuidBE := append([]byte{0}, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff)
	uuidLE := append([]byte{0}, 0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff)
	tests := []struct {
		name    string
		f       Facts
		action  Action
		profile string
		source  string
	}{
		{"machine beats rules", Facts{MAC: mac("52:54:00:00:00:01"), ClientAddr: lab, HasArch: true, Arch: 7}, Boot, "a", "machine 52:54:00:00:00:01"},
		{"uuid agrees", Facts{MAC: mac("52:54:00:00:00:02"), UUID: uuidBE}, Boot, "a", "machine 52:54:00:00:00:02"},
		{"uuid agrees little-endian", Facts{MAC: mac("52:54:00:00:00:02"), UUID: uuidLE}, Boot, "a", "machine 52:54:00:00:00:02"},
		{"uuid absent", Facts{MAC: mac("52:54:00:00:00:02")}, Boot, "a", "machine 52:54:00:00:00:02"},
		{"uuid differs: rules decide", Facts{MAC: mac("52:54:00:00:00:02"), UUID: make([]byte, 17), ClientAddr: lab}, Boot, "b", "rule lab"},
		{"machine ignore", Facts{MAC: mac("52:54:00:00:00:03"), ClientAddr: lab}, Ignore, "", "machine 52:54:00:00:00:03"},
		{"one selector", Facts{MAC: mac("aa:00:00:00:00:01"), ClientAddr: lab, HasArch: true, Arch: 0}, Boot, "b", "rule lab"},
		{"two selectors win", Facts{MAC: mac("aa:00:00:00:00:01"), ClientAddr: lab, HasArch: true, Arch: 7}, Boot, "c", "rule lab-uefi"},
		{"efi-bc counts as efi-x64", Facts{MAC: mac("aa:00:00:00:00:01"), ClientAddr: lab, HasArch: true, Arch: 9}, Boot, "c", "rule lab-uefi"},
		{"three selectors win", Facts{MAC: mac("52:54:00:00:00:09"), ClientAddr: netip.MustParseAddr("10.0.1.9"), HasArch: true, Arch: 7, UserClass: "iPXE"}, Boot, "d", "rule ipxe-in-lab"},
		{"relay address when no client address", Facts{MAC: mac("aa:00:00:00:00:01"), Relay: netip.MustParseAddr("10.0.9.1")}, Boot, "b", "rule lab"},
		{"subnet from facts", Facts{MAC: mac("aa:00:00:00:00:01"), Subnet: netip.MustParsePrefix("10.0.3.0/24")}, Boot, "b", "rule lab"},
		{"wider facts subnet does not match", Facts{MAC: mac("aa:00:00:00:00:01"), Subnet: netip.MustParsePrefix("10.0.0.0/8"), VendorClass: "x"}, Ignore, "", "default"},
		{"outside: vendor rule local", Facts{MAC: mac("aa:00:00:00:00:01"), ClientAddr: netip.MustParseAddr("192.168.1.1"), VendorClass: "PXEClient:Arch:00000"}, Local, "", "rule disk"},
		{"nothing matches", Facts{MAC: mac("aa:00:00:00:00:01"), ClientAddr: netip.MustParseAddr("192.168.1.1")}, Ignore, "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := set.Match(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if p.Action != tt.action || p.Profile != tt.profile || p.Source != tt.source {
				t.Errorf("got %v %q %q (%s), want %v %q %q", p.Action, p.Profile, p.Source, p.Reason, tt.action, tt.profile, tt.source)
			}
			if (p.Action == Boot) != (p.BootFile != "") {
				t.Errorf("action %v with boot file %q", p.Action, p.BootFile)
			}
		})
	}
}

func TestTies(t *testing.T) {
	tests := []struct {
		name  string
		rules string
		want  string // "" = no problem
	}{
		{"two defaults", `{ profile = "a" }, { profile = "b" }`, `rule[1]: ties with rule[0]: both have 0 selector(s) and any client matches both`},
		{"nested subnets", `{ name = "x", profile = "a", subnet = "10.0.0.0/8" }, { name = "y", profile = "b", subnet = "10.1.0.0/16" }`, `rule[1]: ties with rule[0] "x": both have 1 selector(s) and a client with address in 10.1.0.0/16 matches both`},
		{"disjoint subnets", `{ profile = "a", subnet = "10.0.0.0/16" }, { profile = "b", subnet = "10.1.0.0/16" }`, ""},
		{"arch sets share efi-bc", `{ profile = "a", arch = ["efi-x64"] }, { profile = "b", arch = ["efi-bc"] }`, "a client with arch efi-bc matches both"},
		{"arch by number", `{ profile = "a", arch = ["bios", "7"] }, { profile = "b", arch = ["efi-x64"] }`, "arch efi-x64"},
		{"disjoint archs", `{ profile = "a", arch = ["bios"] }, { profile = "b", arch = ["efi-x64", "efi-arm64"] }`, ""},
		{"nested mac prefixes", `{ profile = "a", mac_prefix = "52:54" }, { profile = "b", mac_prefix = "52-54-00" }`, "MAC 52:54:00"},
		{"disjoint mac prefixes", `{ profile = "a", mac_prefix = "52:54:00" }, { profile = "b", mac_prefix = "52:55" }`, ""},
		{"different selectors overlap", `{ profile = "a", mac_prefix = "52:54:00" }, { profile = "b", arch = ["bios"] }`, "ties with rule[0]"},
		{"class prefix vs exact", `{ profile = "a", vendor_class = "PXEClient*" }, { profile = "b", vendor_class = "pxeclient:arch:00000" }`, "vendor class matching both"},
		{"class prefixes disjoint", `{ profile = "a", vendor_class = "PXEClient*" }, { profile = "b", vendor_class = "HTTPClient*" }`, ""},
		{"user class exact differ", `{ profile = "a", user_class = "iPXE" }, { profile = "b", user_class = "gPXE" }`, ""},
		{"different counts never tie", `{ profile = "a" }, { profile = "b", subnet = "10.0.0.0/8" }, { profile = "a", subnet = "10.0.0.0/8", arch = ["bios"] }`, ""},
		{"one disjoint field is enough", `{ profile = "a", subnet = "10.0.0.0/8", arch = ["bios"] }, { profile = "b", subnet = "10.0.0.0/8", arch = ["efi-x64"] }`, ""},
		{"three-way names both", `{ profile = "a", arch = ["bios"] }, { profile = "b", arch = ["efi-x64"] }, { profile = "a", arch = ["7"] }`, "rule[2]: ties with rule[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, probs, _ := compileText(t, "rule = ["+tt.rules+"]\n"+
				"[[profile]]\nname = \"a\"\n[[profile]]\nname = \"b\"\n", nil)
			switch {
			case tt.want == "" && probs != "":
				t.Errorf("unexpected problems: %s", probs)
			case tt.want != "" && !strings.Contains(probs, tt.want):
				t.Errorf("problems %q, want %q", probs, tt.want)
			}
		})
	}
}

type fakeImages map[string][]string

func (f fakeImages) Lookup(name string) ([]string, bool) {
	files, ok := f[name]
	return files, ok
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"profile names", `profile = [{ name = "" }, { name = "local" }, { name = "x" }, { name = "x" }]`,
			[]string{"profile[0].name: required", `profile[1].name: "local" is reserved`, `profile[3].name: duplicate profile "x"`}},
		{"paths", `profile = [{ name = "x", image = "../etc", kernel = "/boot/vmlinuz", initrd = ["a/../b", ""], boot = { efi-x64 = "a//b", bogus = "x" } }]`,
			[]string{"profile[0].image: invalid name", `profile[0].kernel: "/boot/vmlinuz"`, "profile[0].initrd[0]", "profile[0].initrd[1]: empty path", "profile[0].boot.bogus: unknown firmware", "profile[0].boot.efi-x64"}},
		{"initrd without kernel", `profile = [{ name = "x", initrd = ["i"], cmdline = "c" }]`,
			[]string{"profile[0].initrd: initrd without a kernel", "profile[0].cmdline: cmdline without a kernel"}},
		{"machines", `profile = [{ name = "x" }]
machine = [{ profile = "x" }, { mac = "52:54:00:00:00:01", profile = "nope", hostname = "bad_name", ip = "10.0.0.1", uuid = "xyz" },
           { mac = "52:54:00:00:00:01", profile = "", ip = "10.0.0.1" }, { mac = "52:54:00:00:00:02", profile = "x", ip = "fd00::1" }]`,
			[]string{"machine[0].mac: required", `machine[1].profile: unknown profile "nope"`, "machine[1].hostname: invalid host name", "machine[1].uuid: invalid UUID",
				"machine[2].mac: duplicate MAC 52:54:00:00:00:01 (first at machine[1])", "machine[2].ip: 10.0.0.1 is already reserved for machine[1]", "machine[2].profile: required",
				"machine[3].ip: fd00::1: reservations are IPv4 only"}},
		{"rules", `profile = [{ name = "x" }]
rule = [{ name = "r", profile = "x", arch = ["ipxe", "efi-x65"], mac_prefix = "zz", user_class = "i*PXE", vendor_class = "a?" }, { name = "r", profile = "y", subnet = "10.0.0.0/8" }]`,
			[]string{`rule[0].arch[0]: "ipxe" is not an architecture`, `rule[0].arch[1]: unknown architecture "efi-x65"`, `rule[0].mac_prefix: invalid MAC prefix "zz"`,
				`rule[0].user_class: "i*PXE": only a trailing "*"`, "rule[0].vendor_class", `rule[1].name: duplicate rule name "r"`, `rule[1].profile: unknown profile "y"`}},
		{"template parse error names the line", "[[profile]]\nname = \"x\"\nkernel = \"k\"\nipxe_template = \"\"\"#!ipxe\nkernel {{.Kernel}}\nboot {{if}}\n\"\"\"\n",
			[]string{"profile[0].ipxe_template: template line 3: missing value for if"}},
		{"unknown function", `profile = [{ name = "x", kernel = "k", cmdline = "a={{nope .MAC}}" }]`,
			[]string{`profile[0].cmdline: template line 1: function "nope" not defined`}},
		{"unknown field at render", `profile = [{ name = "x", kernel = "k", cmdline = "a={{.Nope}}" }]`,
			[]string{"profile[0].cmdline: template line 1: at <.Nope>: can't evaluate field Nope", "rendering for a sample client"}},
		{"missing var names the machine", `profile = [{ name = "x", kernel = "k", cmdline = "disk={{.Vars.disk}}", vars = { a = "1" } }]
machine = [{ mac = "52:54:00:00:00:01", profile = "x", vars = { disk = "sda" } }, { mac = "52:54:00:00:00:02", profile = "x" }]`,
			[]string{`profile[0].cmdline: template line 1: at <.Vars.disk>: map has no entry for key "disk" (rendering for machine[1] 52:54:00:00:00:02)`}},
		{"missing var for a rule", `profile = [{ name = "x", kernel = "k", file = [{ path = "p/{{.Hostname}}.cfg", template = "a\nb {{.Vars.x}}" }] }]
rule = [{ name = "lab", profile = "x" }]`,
			[]string{`profile[0].file[0].template: template line 2: at <.Vars.x>: map has no entry for key "x" (rendering for rule[0] "lab")`}},
		{"template file", `profile = [{ name = "x", kernel = "k", file = [{ path = "p.cfg", template_file = "nope.tmpl" }, { path = "q.cfg", template = "a", template_file = "b" }, { path = "" }, { path = "r" }] }]`,
			[]string{"profile[0].file[0].template_file: read template", "profile[0].file[1].template_file: set template or template_file, not both", "profile[0].file[2].path: required", "profile[0].file[3].template: set template or template_file"}},
		{"extra file names", `profile = [{ name = "x", kernel = "k", file = [{ path = "../etc/passwd", template = "x" }, { path = "ipxe/52-54-00-00-00-01.ipxe", template = "x" }] }]`,
			[]string{`profile[0].file[0].path: "../etc/passwd"`, "profile[0].file[1].path: \"ipxe/52-54-00-00-00-01.ipxe\" collides with a built-in rendered name"}},
		{"rendered path escapes", `profile = [{ name = "x", kernel = "k", file = [{ path = "../{{.Hostname}}", template = "x" }] }]
machine = [{ mac = "52:54:00:00:00:01", profile = "x" }]`,
			[]string{`profile[0].file[0].path: rendered path "../52-54-00-00-00-01"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, probs, _ := compileText(t, tt.text, nil)
			if set != nil {
				t.Fatal("compiled despite problems")
			}
			for _, w := range tt.want {
				if !strings.Contains(probs, w) {
					t.Errorf("problems lack %q:\n%s", w, probs)
				}
			}
		})
	}
}

func TestTemplateFileErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.tmpl"), []byte("line one\nline {{.Two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := decode(t, `profile = [{ name = "x", kernel = "k", grub_template_file = "bad.tmpl" }]`)
	_, probs, _ := Compile(Input{Profiles: c.Profile, BaseDir: dir})
	if want := "profile[0].grub_template_file: bad.tmpl line 3: unclosed action started at bad.tmpl:2"; !strings.Contains(probs.Error(), want) {
		t.Errorf("problems %q, want %q", probs.Error(), want)
	}
}

func TestImageChecks(t *testing.T) {
	text := `profile = [{ name = "a", image = "deb", kernel = "linux", initrd = ["initrd.gz", "missing.gz"] }, { name = "b", image = "later", kernel = "k" }]
rule = [{ profile = "a", arch = ["bios"] }, { profile = "b", arch = ["efi-x64"] }]`
	set, probs, warns := compileText(t, text, fakeImages{"deb": {"linux", "initrd.gz"}})
	if set == nil || probs != "" {
		t.Errorf("problems: %s", probs)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], `profile[0].initrd[1]: image "deb" has no file "missing.gz" (it holds linux, initrd.gz)`) ||
		!strings.Contains(warns[1], `profile[1].image: image "later" is not staged`) {
		t.Errorf("warnings: %q", warns)
	}
	set, probs, warns = compileText(t, text, nil) // no index: no checks
	if set == nil || len(warns) != 0 {
		t.Errorf("without an index: %s %q", probs, warns)
	}
}

func TestExamplesCompile(t *testing.T) {
	_, warns := exampleSet(t, nil)
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	_, warns = exampleSet(t, fakeImages{})
	sort.Strings(warns)
	if len(warns) != 3 || !strings.Contains(warns[0], `image "debian-12-amd64" is not staged`) {
		t.Errorf("warnings with an empty store: %q", warns)
	}
}

// goldenCases are the clients whose plans and files are pinned in
// testdata/<name>.golden (regenerate with UPDATE_GOLDEN=1 go test).
var goldenCases = []struct {
	name string
	f    Facts
}{
	{"node01-bios-pxe", Facts{MAC: mac("52:54:00:12:34:56"), HasArch: true, Arch: 0, VendorClass: "PXEClient:Arch:00000:UNDI:002001"}},
	{"node02-efi-ipxe", Facts{MAC: mac("52:54:00:12:34:57"), HasArch: true, Arch: 7, UserClass: "iPXE", VendorClass: "PXEClient:Arch:00007:UNDI:003016"}},
	{"db01-local", Facts{MAC: mac("52:54:00:12:34:58"), HasArch: true, Arch: 9}},
	{"rescue-cart", Facts{MAC: mac("00:e0:4c:68:00:01"), HasArch: true, Arch: 0, UserClass: "iPXE"}},
	{"arm-board-http", Facts{MAC: mac("02:00:00:00:00:07"), HasArch: true, Arch: 11, VendorClass: "HTTPClient:Arch:00011"}},
	{"unknown-default-local", Facts{MAC: mac("aa:bb:cc:dd:ee:ff"), HasArch: true, Arch: 7}},
}

func TestGolden(t *testing.T) {
	set, _ := exampleSet(t, nil)
	for _, gc := range goldenCases {
		t.Run(gc.name, func(t *testing.T) {
			f := gc.f
			f.Server = server
			p, err := set.Match(f)
			if err != nil {
				t.Fatal(err)
			}
			files, err := set.Files(f, server)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "plan: %+v\n", p)
			for _, r := range files {
				fmt.Fprintf(&b, "==> %s <==\n%s", r.Name, r.Data)
			}
			checkGolden(t, gc.name, b.String())
		})
	}
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run UPDATE_GOLDEN=1 go test ./profiles/ to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (UPDATE_GOLDEN=1 to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestRenderFile(t *testing.T) {
	set, _ := exampleSet(t, nil)
	client := netip.MustParseAddr("10.0.0.99")
	tests := []struct {
		name   string
		req    string
		ok     bool
		err    error
		golden string   // compare with testdata/render-<golden>.golden
		has    []string // substrings
	}{
		{"machine ipxe script", "ipxe/52-54-00-12-34-56.ipxe", true, nil, "", []string{"kernel tftp://10.0.0.2/images/debian-12-amd64/linux initrd=initrd.gz auto=true", "url=ftp://10.0.0.2/preseed/node01.cfg"}},
		{"uppercase name", "IPXE/52-54-00-12-34-56.IPXE", true, nil, "", []string{"node01"}},
		{"machine grub", "grub/grub.cfg-01-52-54-00-12-34-57", true, nil, "", []string{"linux (tftp,10.0.0.2)/images/debian-12-amd64/linux"}},
		{"machine pxelinux", "pxelinux.cfg/01-52-54-00-12-34-56", true, nil, "", []string{"KERNEL ::images/debian-12-amd64/linux"}},
		{"local machine", "ipxe/52-54-00-12-34-58.ipxe", true, nil, "", []string{"sanboot --no-describe --drive 0x80", "exit"}},
		{"preseed by hostname", "preseed/node02.cfg", true, nil, "", []string{"get_hostname string node02", "partman-auto/disk string /dev/nvme0n1", "ftpput 10.0.0.2"}},
		{"preseed default disk", "preseed/node01.cfg", true, nil, "", []string{"partman-auto/disk string /dev/sda"}},
		{"arm board by firmware suffix", "ipxe/02-00-00-00-00-07-efi-arm64.ipxe", true, nil, "", []string{"images/debian-12-arm64/linux"}},
		{"arm board other firmware is local", "ipxe/02-00-00-00-00-07-bios.ipxe", true, nil, "", []string{"sanboot"}},
		{"arm board dispatcher", "ipxe/02-00-00-00-00-07.ipxe", true, nil, "dispatch-ipxe", nil},
		{"arm board grub dispatcher", "grub/grub.cfg-01-02-00-00-00-00-07", true, nil, "dispatch-grub", nil},
		{"arm board preseed by MAC hostname", "preseed/02-00-00-00-00-07.cfg", true, nil, "", []string{"get_hostname string 02-00-00-00-00-07"}},
		{"pxelinux for arm board is bios: local", "pxelinux.cfg/01-02-00-00-00-00-07", true, nil, "", []string{"LOCALBOOT 0"}},
		{"rescue cart", "ipxe/00-e0-4c-68-00-01.ipxe", true, nil, "", []string{"modloop=ftp://10.0.0.2/images/alpine-rescue/modloop-lts"}},
		{"unknown client is local", "grub/grub.cfg-01-aa-bb-cc-dd-ee-ff", true, nil, "", []string{"chainloader +1"}},
		{"rescue has no preseed", "preseed/00-e0-4c-68-00-01.cfg", false, nil, "", nil},
		{"unknown preseed", "preseed/nobody.cfg", false, nil, "", nil},
		{"static file", "undionly.kpxe", false, nil, "", nil},
		{"bad suffix", "ipxe/52-54-00-12-34-56-efi-x65.ipxe", false, nil, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok, err := set.RenderFile(context.Background(), tt.req, client, server)
			if ok != tt.ok || !errors.Is(err, tt.err) && !(tt.err == nil && err == nil) {
				t.Fatalf("ok %v err %v, want %v %v", ok, err, tt.ok, tt.err)
			}
			for _, h := range tt.has {
				if !strings.Contains(string(b), h) {
					t.Errorf("output lacks %q:\n%s", h, b)
				}
			}
			if tt.golden != "" {
				checkGolden(t, "render-"+tt.golden, string(b))
			}
		})
	}
}

func TestRenderFileIgnoredAndAmbiguous(t *testing.T) {
	set := mustCompile(t, `
[[profile]]
name = "a"
kernel = "k"
[[profile.file]]
path = "ks/{{.MACDashed}}.ks"
template = "ks for {{.MAC}} {{.Arch}}"
[[profile]]
name = "b"
kernel = "k2"
[[profile.file]]
path = "ks/{{.MACDashed}}.ks"
template = "other"
[[profile.file]]
path = "shared.cfg"
template = "shared {{.IP}}"
[[machine]]
mac = "52:54:00:00:00:01"
profile = "ignore"
[[machine]]
mac = "52:54:00:00:00:02"
ip = "10.0.0.2"
profile = "b"
[[rule]]
profile = "a"
arch = ["efi-x64"]
[[rule]]
profile = "b"
arch = ["efi-bc"]
mac_prefix = "aa"
`)
	ctx := context.Background()
	client := netip.MustParseAddr("10.0.0.2")
	if _, ok, err := set.RenderFile(ctx, "ipxe/52-54-00-00-00-01.ipxe", client, server); !ok || !errors.Is(err, ErrIgnored) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ignored machine: %v %v", ok, err)
	}
	if _, ok, err := set.RenderFile(ctx, "pxelinux.cfg/01-aa-00-00-00-00-01", client, server); !ok || !errors.Is(err, ErrIgnored) {
		t.Errorf("unknown bios client: %v %v", ok, err)
	}
	// efi-x64 (7) and efi-bc (9) get different profiles: no loader can tell.
	if _, ok, err := set.RenderFile(ctx, "ipxe/aa-00-00-00-00-01.ipxe", client, server); !ok || !errors.Is(err, ErrAmbiguous) {
		t.Errorf("7 vs 9: %v %v", ok, err)
	}
	if _, ok, err := set.RenderFile(ctx, "ks/aa-00-00-00-00-01.ks", client, server); !ok || !errors.Is(err, ErrAmbiguous) {
		t.Errorf("extra file with two outcomes: %v %v", ok, err)
	}
	b, ok, err := set.RenderFile(ctx, "shared.cfg", client, server)
	if !ok || err != nil || string(b) != "shared 10.0.0.2" {
		t.Errorf("static file by client address: %q %v %v", b, ok, err)
	}
	ctxDone, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := set.RenderFile(ctxDone, "shared.cfg", client, server); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestParseName(t *testing.T) {
	m := mac("52:54:00:12:34:56")
	for _, n := range []string{IPXEName(m), GRUBName(m), PXELinuxName(m)} {
		p, ok := parseName(n)
		if !ok || p.mac != m || p.fw != "" {
			t.Errorf("parseName(%q) = %+v %v", n, p, ok)
		}
	}
	for _, bad := range []string{"ipxe/52-54-00-12-34.ipxe", "ipxe/52:54:00:12:34:56.ipxe", "ipxe/52-54-00-12-34-5g.ipxe",
		"pxelinux.cfg/01-52-54-00-12-34-56-bios", "grub/grub.cfg-01-52-54-00-12-34-56x", "ipxe/x.ipxe", "preseed/a.cfg"} {
		if p, ok := parseName(bad); ok {
			t.Errorf("parseName(%q) accepted: %+v", bad, p)
		}
	}
	if m2, ok := macInName("preseed/52:54:00:12:34:56.cfg"); !ok || m2 != m {
		t.Errorf("macInName colon: %v %v", m2, ok)
	}
	if _, ok := macInName("preseed/52:54-00:12:34:56.cfg"); ok {
		t.Error("macInName accepted mixed separators")
	}
}

var nameSeeds = []string{"ipxe/52-54-00-12-34-56.ipxe", "ipxe/02-00-00-00-00-07-efi-arm64.ipxe", "grub/grub.cfg-01-aa-bb-cc-dd-ee-ff-bios",
	"pxelinux.cfg/01-52-54-00-12-34-56", "preseed/52:54:00:12:34:56.cfg", "ipxe/.ipxe", "grub/grub.cfg-01-", "x"}

func FuzzParseName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if p, ok := parseName(name); ok {
			var want string
			switch p.kind {
			case kindIPXE:
				want = IPXEName(p.mac)
				if p.fw != "" {
					want = strings.TrimSuffix(want, ".ipxe") + "-" + string(p.fw) + ".ipxe"
				}
			case kindGRUB:
				want = GRUBName(p.mac)
				if p.fw != "" {
					want += "-" + string(p.fw)
				}
			case kindPXELinux:
				want = PXELinuxName(p.mac)
			}
			if want != strings.ToLower(name) {
				t.Fatalf("parseName(%q) = %+v, which names %q", name, p, want)
			}
		}
		if m, ok := macInName(name); ok && !strings.Contains(strings.ToLower(name), m.Dashed()) && !strings.Contains(strings.ToLower(name), m.String()) {
			t.Fatalf("macInName(%q) = %s, not in the name", name, m)
		}
	})
}

func FuzzMatch(f *testing.F) {
	set, _ := exampleSet(f, nil)
	for _, gc := range goldenCases {
		f.Add(gc.f.MAC[:], gc.f.Arch, gc.f.HasArch, gc.f.VendorClass, gc.f.UserClass, gc.f.UUID, []byte{10, 0, 0, 9}, "")
	}
	f.Add([]byte{}, uint16(65535), true, "HTTPClient", "iPXE", []byte{0, 1}, []byte{}, "preseed/x.cfg")
	f.Fuzz(func(t *testing.T, macb []byte, arch uint16, hasArch bool, vendor, user string, uuid, addr []byte, name string) {
		var fa Facts
		copy(fa.MAC[:], macb)
		fa.Arch, fa.HasArch, fa.VendorClass, fa.UserClass, fa.UUID = arch, hasArch, vendor, user, uuid
		if a, ok := netip.AddrFromSlice(addr); ok {
			fa.ClientAddr, fa.Relay = a, a
		}
		p, err := set.Match(fa)
		if err != nil {
			t.Fatalf("Match(%+v): %v", fa, err)
		}
		if (p.Action == Boot) != (p.BootFile != "") {
			t.Fatalf("Match(%+v) = %+v: boot file and action disagree", fa, p)
		}
		if _, err := set.Files(fa, server); err != nil {
			t.Fatalf("Files(%+v): %v", fa, err)
		}
		_, _, _ = set.RenderFile(context.Background(), name, fa.ClientAddr, server)
		_, _, _ = set.RenderFile(context.Background(), IPXEName(fa.MAC), fa.ClientAddr, server)
	})
}
