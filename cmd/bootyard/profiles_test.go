package main

import (
	"strings"
	"testing"
)

const matchConfig = `
[[profile]]
name = "deb"
image = "debian-12"
kernel = "linux"
initrd = ["initrd.gz"]
cmdline = "url=ftp://{{.Server}}/preseed/{{.Hostname}}.cfg"
[[profile.file]]
path = "preseed/{{.Hostname}}.cfg"
template = "d-i netcfg/get_hostname string {{.Hostname}}"
[[machine]]
mac = "52:54:00:12:34:56"
hostname = "node01"
ip = "10.0.0.21"
profile = "deb"
[[rule]]
name = "uefi-lab"
profile = "local"
arch = ["efi-x64"]
`

func TestProfilesMatchCLI(t *testing.T) {
	cfg := writeConfig(t, matchConfig)
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"no subcommand", []string{"profiles"}, exitUsage, nil, []string{"Usage: bootyard profiles match"}},
		{"mac required", []string{"profiles", "match", "--config", cfg}, exitUsage, nil, []string{"--mac is required"}},
		{"bad mac", []string{"profiles", "match", "--config", cfg, "--mac", "nope"}, exitUsage, nil, []string{"invalid MAC address"}},
		{"bad arch", []string{"profiles", "match", "--config", cfg, "--mac", "52:54:00:12:34:56", "--arch", "efi-x65"}, exitUsage, nil, []string{"unknown architecture"}},
		{"machine over iPXE", []string{"profiles", "match", "--config", cfg, "--mac", "52:54:00:12:34:56", "--arch", "efi-x64", "--user-class", "iPXE", "--server", "10.0.0.2"}, exitOK,
			[]string{"decided by: machine 52:54:00:12:34:56", "action:     boot profile deb", "firmware:   ipxe (platform efi-x64)",
				"boot file:  ipxe/52-54-00-12-34-56.ipxe via TFTP", "fixed ip:   10.0.0.21", "cmdline:    url=ftp://10.0.0.2/preseed/node01.cfg",
				"==> ipxe/52-54-00-12-34-56.ipxe <==", "kernel tftp://10.0.0.2/images/debian-12/linux", "==> preseed/node01.cfg <==", "get_hostname string node01"},
			nil},
		{"bios by code", []string{"profiles", "match", "--config", cfg, "--mac", "52-54-00-12-34-56", "--arch", "0", "--quiet"}, exitOK,
			[]string{"arch bios (0)", "boot file:  undionly.kpxe via TFTP"}, nil},
		{"rule local", []string{"profiles", "match", "--config", cfg, "--mac", "aa:bb:cc:dd:ee:ff", "--arch", "efi-x64"}, exitOK,
			[]string{"decided by: rule uefi-lab", "action:     local", "exit"}, nil},
		{"no match", []string{"profiles", "match", "--config", cfg, "--mac", "aa:bb:cc:dd:ee:ff", "--arch", "efi-arm64"}, exitOK,
			[]string{"decided by: default", "action:     ignore (no reply): no machine entry and no rule matches"}, nil},
		{"http boot", []string{"profiles", "match", "--config", cfg, "--mac", "52:54:00:12:34:56", "--arch", "efi-x64-http", "--quiet"}, exitOK,
			[]string{"vendor-class \"HTTPClient:Arch:00016", "via HTTP"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, w := range tt.inStdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.inStderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestProfilesMatchWarnsAboutImages(t *testing.T) {
	cfg := writeConfig(t, matchConfig)
	if code, _, errOut := runCLI(t, "", "images", "ls", "--config", cfg); code != exitOK { // creates the store
		t.Fatal(errOut)
	}
	code, _, errOut := runCLI(t, "", "profiles", "match", "--config", cfg, "--mac", "52:54:00:12:34:56", "--quiet")
	if code != exitOK || strings.Count(errOut, `image "debian-12" is not staged`) != 1 {
		t.Errorf("exit %d, want one warning about the image:\n%s", code, errOut)
	}
}

func TestProfilesMatchConfigError(t *testing.T) {
	cfg := writeConfig(t, "[[rule]]\nprofile = \"nope\"\n")
	code, _, errOut := runCLI(t, "", "profiles", "match", "--config", cfg, "--mac", "52:54:00:12:34:56")
	if code != exitUsage || !strings.Contains(errOut, `unknown profile "nope"`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
