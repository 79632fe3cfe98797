package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestBadConfigs loads every testdata/bad/*.toml and compares the complete
// error output with its .golden file (regenerate with go test -update).
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test configs: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".toml"), func(t *testing.T) {
			_, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) succeeded; want errors", f)
			}
			if _, ok := err.(Errors); !ok {
				t.Fatalf("Load(%s) error is %T, want config.Errors: %v", f, err, err)
			}
			// Absolute paths in messages depend on where the tree is.
			abs, _ := filepath.Abs(filepath.Dir(f))
			got := strings.ReplaceAll(err.Error()+"\n", abs, "$DIR")
			golden := strings.TrimSuffix(f, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden (run go test -update once): %v", err)
			}
			if got != string(want) {
				t.Errorf("errors differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
			for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
				if !strings.HasPrefix(line, f+":") {
					t.Errorf("error line %q does not start with the file name", line)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tftp", "ftp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "b.toml")
	text := "[server]\nstate_dir = \"state\"\n[dhcp]\nmode = \"off\"\n[tftp]\nroot = \"tftp\"\n[ftp]\nroot = \"ftp\"\n"
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"state_dir resolved", cfg.Server.StateDir, filepath.Join(dir, "state")},
		{"images.dir default", cfg.Images.Dir, filepath.Join(dir, "state", "images")},
		{"xferlog default", cfg.FTP.Xferlog, filepath.Join(dir, "state", "xferlog")},
		{"tftp.root resolved", cfg.TFTP.Root, filepath.Join(dir, "tftp")},
		{"tftp.listen", cfg.TFTP.Listen.String(), ":69"},
		{"ftp.listen", cfg.FTP.Listen.String(), ":21"},
		{"passive", cfg.FTP.PassivePorts.String(), "30000-30100"},
		{"shutdown", cfg.Server.ShutdownTimeout.D(), 30 * time.Second},
		{"user", cfg.Server.User, "bootyard"},
		{"max_upload", int64(cfg.FTP.Anonymous.MaxUpload), int64(256 << 20)},
		{"uploads off", cfg.TFTP.Uploads.Enabled, false},
		{"require_tls", cfg.FTP.RequireTLS, true},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestExampleConfig keeps the reference configuration loadable.
func TestExampleConfig(t *testing.T) {
	cfg, err := Load("../../examples/bootyard.toml")
	if err != nil {
		t.Fatalf("examples/bootyard.toml: %v", err)
	}
	if len(cfg.Profiles) == 0 || len(cfg.Machines) == 0 || len(cfg.Rules) == 0 {
		t.Errorf("example config should show profiles, machines and rules; got %d/%d/%d", len(cfg.Profiles), len(cfg.Machines), len(cfg.Rules))
	}
}

func TestKeyLines(t *testing.T) {
	text := `[server]
state_dir = "x"   # comment = not a key

[[ftp.user]]
name = "a"

[[ftp.user]]
name = "b"
home = """
multi = line
"""
permissions = ["read"]

[tftp]
uploads = { enabled = true, max_bytes = "1MiB" }
remap = [
  { match = 'a', replace = "b" },
  { match = 'c', replace = "d" },
]
root = "r"

[[profile]]
name = "p"
[[profile.file]]
path = "x"
[[profile]]
name = "q"
[[profile.file]]
path = "y"
[profile.vars]
a = "b"
`
	ix := scanKeys(text)
	want := map[string]int{
		"server.state_dir":            2,
		"ftp.user[0].name":            5,
		"ftp.user[1].name":            8,
		"ftp.user[1].permissions":     12,
		"tftp.uploads.max_bytes":      15,
		"tftp.remap[0].match":         17,
		"tftp.remap[1].replace":       18,
		"tftp.root":                   20,
		"profile[0].file[0].path":     25,
		"profile[1].name":             27,
		"profile[1].file[0].path":     29,
		"profile[1].vars.a":           31,
		"profile[1].file[0].template": 28, // not in file: nearest enclosing key
	}
	for k, l := range want {
		if got := ix.Line(k); got != l {
			t.Errorf("Line(%q) = %d, want %d", k, got, l)
		}
	}
	if _, ok := ix.lines["multi"]; ok {
		t.Error("a line inside a multi-line string was read as a key")
	}
}

// FuzzScanKeys: the key scanner never panics, whatever the text.
func FuzzScanKeys(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("a = [ { b = 1 }, \n { c = '''x\n''' } ]\n[[x.y]]\n[x.y.z]\nq = {r={s=1}}")
	f.Fuzz(func(t *testing.T, s string) {
		ix := scanKeys(s)
		for _, k := range ix.keys {
			if k.line < 1 {
				t.Fatalf("key %q has line %d", k.indexed, k.line)
			}
		}
	})
}

// FuzzParse: any input yields a config or an Errors value, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.toml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse("fuzz.toml", t.TempDir(), b)
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
	})
}
