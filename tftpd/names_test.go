package tftpd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/internal/fsroot"
)

var exampleRemap = []Remap{
	{Match: `\\`, Replace: "/"},
	{Match: `(?i)^pxelinux\.0$`, Replace: "bios/pxelinux.0", Stop: true},
	{Match: `^/?tftpboot/`, Replace: ""},
}

var normalizeCases = []struct {
	in, want string // want "" = refused with fsroot.ErrDenied
}{
	{"pxelinux.0", "bios/pxelinux.0"},
	{"PXELINUX.0", "bios/pxelinux.0"},
	{"/pxelinux.cfg/default", "pxelinux.cfg/default"},
	{`\boot\grub\grub.cfg`, "boot/grub/grub.cfg"},
	{"/tftpboot/ipxe.efi", "ipxe.efi"},
	{"tftpboot/../../etc/passwd", ""},
	{`..\..\etc\passwd`, ""},
	{"a/./b//c", "a/b/c"},
	{"../x", ""},
	{"x/..", ""},
	{"", ""},
	{"/", ""},
	{".", ""},
	{"a\x00b", ""},
	{"a\nb", ""},
	{strings.Repeat("x", 256), ""},
	{strings.Repeat("x", 255), strings.Repeat("x", 255)},
	{".bootyard-upload-1", ""},
	{"%2e%2e/x", "%2e%2e/x"},
	{"dir/", "dir"},
}

func TestNormalize(t *testing.T) {
	rules, err := compileRemap(exampleRemap)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range normalizeCases {
		got, err := normalize(c.in, rules)
		if c.want == "" {
			if !errors.Is(err, fsroot.ErrDenied) {
				t.Errorf("normalize(%q) = %q, %v; want ErrDenied", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("normalize(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// A rule that blows the name up is stopped.
	blow, _ := compileRemap([]Remap{{Match: `a`, Replace: strings.Repeat("a", 100)}})
	if _, err := normalize("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", blow); err == nil {
		t.Error("exploding remap accepted")
	}
}

// FuzzNormalize checks the name policy's invariants on any input, with and
// without the example remap rules: a result never escapes (no "..", no
// leading slash), carries no control bytes, fits 255 bytes, and is stable.
func FuzzNormalize(f *testing.F) {
	for _, c := range normalizeCases {
		f.Add(c.in, true)
		f.Add(c.in, false)
	}
	rules, err := compileRemap(exampleRemap)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string, remap bool) {
		rs := rules
		if !remap {
			rs = nil
		}
		got, err := normalize(name, rs)
		if err != nil {
			if !errors.Is(err, fsroot.ErrDenied) {
				t.Fatalf("normalize(%q): error %v not ErrDenied", name, err)
			}
			return
		}
		if got == "" || got == "." || strings.HasPrefix(got, "/") || len(got) > fsroot.MaxNameLen {
			t.Fatalf("normalize(%q) = %q", name, got)
		}
		for _, part := range strings.Split(got, "/") {
			if part == ".." || part == "." || part == "" {
				t.Fatalf("normalize(%q) = %q has component %q", name, got, part)
			}
		}
		for i := 0; i < len(got); i++ {
			if got[i] < 0x20 || got[i] == 0x7f {
				t.Fatalf("normalize(%q) = %q has a control byte", name, got)
			}
		}
		if again, err := normalize(got, nil); err != nil || again != got {
			t.Fatalf("normalize not stable: %q -> %q -> %q, %v", name, got, again, err)
		}
	})
}

var requestSeeds = [][]byte{
	rrq(opRRQ, "pxelinux.0", "octet"),
	rrq(opRRQ, "f", "OCTET", "BLKSIZE", "1468", "tsize", "0"),
	rrq(opWRQ, "uploads/x", "netascii", "tsize", "100", "blksize", "9000"),
	rrq(opRRQ, "f", "octet", "blksize"),
	rrq(opRRQ, "f", "octet", "blksize", "1", "blksize", "2"),
	{0, 1, 'a', 0},
	{0, 2},
}

// FuzzParseRequest: the request parser never panics, and what the gate
// passes to pin/tftp parses back to the same request.
func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s, 1468, false)
	}
	f.Fuzz(func(t *testing.T, b []byte, maxBlock int, refuse bool) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		maxBlock = clampBlock(maxBlock)
		blk := r.negotiate(maxBlock, refuse)
		if blk < 512 || blk > maxBlock {
			t.Fatalf("block size %d outside 512-%d", blk, maxBlock)
		}
		out := make([]byte, maxRequest)
		n, ok := r.marshal(out)
		if !ok {
			return
		}
		r2, err := parseRequest(out[:n])
		if err != nil {
			t.Fatalf("re-parse of %x: %v", out[:n], err)
		}
		if r2.name != r.name || r2.mode != r.mode || len(r2.opts) != len(r.opts) {
			t.Fatalf("round trip: %+v != %+v", r2, r)
		}
		if bytes.IndexByte([]byte(r.name), 0) >= 0 {
			t.Fatalf("NUL in name %q", r.name)
		}
	})
}
