package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes a configuration with every service off, its state
// directory and the given extra blocks into a temp dir and returns its path.
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	text := "[server]\nstate_dir = \"state\"\n[dhcp]\nmode = \"off\"\n[tftp]\nenabled = false\n[ftp]\nenabled = false\n" + extra
	p := filepath.Join(dir, "bootyard.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImagesCLI(t *testing.T) {
	cfg := writeConfig(t, `
[[profile]]
name = "deb"
image = "debian-12"
kernel = "linux"
initrd = ["initrd.gz"]
[[rule]]
profile = "deb"
`)
	src := t.TempDir()
	for name, content := range map[string]string{"linux": "KERNEL", "initrd.gz": "INITRD"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{[]string{"images"}, exitUsage, nil, []string{"Usage: bootyard images"}},
		{[]string{"images", "frob"}, exitUsage, nil, []string{`unknown command "frob"`}},
		{[]string{"images", "add", "--config", cfg, "debian-12"}, exitUsage, nil, []string{"want NAME and at least one PATH"}},
		{[]string{"images", "add", "--config", cfg, "../x", src}, exitUsage, nil, []string{"invalid name"}},
		{[]string{"images", "add", "--config", cfg, "debian-12", src, "--description", "Debian 12 netboot"}, exitOK, []string{"added debian-12: 2 files, 12 B"}, nil},
		{[]string{"images", "add", "--config", cfg, "debian-12", src}, exitFailure, nil, []string{"image already exists (use --replace)"}},
		{[]string{"images", "add", "--config", cfg, "--replace", "debian-12", src}, exitOK, []string{"published debian-12"}, nil},
		{[]string{"images", "ls", "--config", cfg}, exitOK, []string{"NAME", "debian-12", "Debian 12 netboot"}, nil},
		{[]string{"images", "show", "--config", cfg, "debian-12"}, exitOK, []string{"used by:     profile \"deb\"", "linux", "kernel", "initrd.gz"}, nil},
		{[]string{"images", "show", "--config", cfg, "nope"}, exitFailure, nil, []string{"image not found"}},
		{[]string{"images", "verify", "--config", cfg}, exitOK, []string{"ok debian-12"}, nil},
		{[]string{"images", "rm", "--config", cfg, "debian-12"}, exitFailure, nil, []string{"debian-12 is used by profile \"deb\"", "--force"}},
	}
	for _, s := range steps {
		code, out, errOut := runCLI(t, "", s.args...)
		if code != s.code {
			t.Fatalf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.code, out, errOut)
		}
		for _, w := range s.inStdout {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", s.args, w, out)
			}
		}
		for _, w := range s.inStderr {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", s.args, w, errOut)
			}
		}
	}

	// Corrupt one file and lose another: verify names both and fails.
	store := filepath.Join(filepath.Dir(cfg), "state", "images", "debian-12")
	if err := os.WriteFile(filepath.Join(store, "linux"), []byte("KERNEX"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(store, "initrd.gz")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "images", "verify", "--config", cfg, "debian-12")
	if code != exitFailure || !strings.Contains(out, "BAD debian-12/linux: corrupt") || !strings.Contains(out, "BAD debian-12/initrd.gz: missing") {
		t.Errorf("verify of a damaged image: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "images", "rm", "--config", cfg, "--force", "debian-12")
	if code != exitOK || !strings.Contains(out, "removed debian-12") {
		t.Errorf("rm --force: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Errorf("image directory survived rm: %v", err)
	}
}

func TestImagesAddProgressLines(t *testing.T) {
	cfg := writeConfig(t, "")
	big := filepath.Join(t.TempDir(), "big.iso")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, progressThreshold+1<<20); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "", "images", "add", "--config", cfg, "big", big)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Count(out, "copying big: ")
	if lines < 5 || lines > 11 || !strings.Contains(out, "copying big: 100%") {
		t.Errorf("want plain progress lines up to 100%% (not a terminal):\n%s", out)
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
