// Package demo builds the appliance bootyard runs when it finds no
// configuration file: a fresh state directory under the user's temporary
// directory, sample boot files, a staged sample image, one profile and one
// machine, with every service bound to 127.0.0.1 on unprivileged ports.
// The demo never binds a wildcard address or a privileged port, and keeps
// DHCP off (it needs a real interface and root).
package demo

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/config"
)

// Ports the demo listens on, all on 127.0.0.1.
const (
	TFTPPort        = 6969
	FTPPort         = 2121
	FTPImplicitPort = 9990
	DemoMAC         = "52:54:00:12:34:56"
)

// Demo is a prepared demo appliance.
type Demo struct {
	Config     *config.Config
	ConfigPath string // the generated configuration file (edit it and send SIGHUP)
}

const configText = `# bootyard demo configuration, written by "bootyard serve" when no
# configuration file exists. Relative paths resolve against this file's
# directory. Edit it and send SIGHUP to reload; see examples/bootyard.toml for
# every key.

[server]
state_dir = "."

[dhcp]
# DHCP needs a real network interface and root; the demo keeps it off.
mode = "off"

[tftp]
listen = "127.0.0.1:%d"
root = "tftp"

[ftp]
listen = "127.0.0.1:%d"
implicit_tls_listen = "127.0.0.1:%d"
root = "ftp"
passive_ports = "30000-30100"
# The demo lets named users log in without TLS so plain clients work.
allow_plaintext_login = true

[[profile]]
name = "demo"
image = "demo-linux"
kernel = "vmlinuz"
initrd = ["initrd.img"]
cmdline = "console=ttyS0 hostname={{.Hostname}} preseed=ftp://{{.Server}}:%d/preseed/{{.Hostname}}.cfg"

[[profile.file]]
path = "preseed/{{.Hostname}}.cfg"
template = """
# answer file for {{.Hostname}} ({{.MAC}}), rendered by bootyard
d-i netcfg/get_hostname string {{.Hostname}}
d-i mirror/protocol string ftp
d-i mirror/ftp/hostname string {{.Server}}
"""

[[machine]]
mac = "%s"
hostname = "demo01"
profile = "demo"

[[rule]]
name = "everyone-else"
profile = "local"
`

// Setup creates the demo under dir, or under a new temporary directory when
// dir is "", and loads its configuration.
func Setup(dir string) (*Demo, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "bootyard-demo-")
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		dir = d
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	files := map[string]string{
		"tftp/hello.txt":          "Hello from bootyard's TFTP server.\n",
		"tftp/undionly.kpxe":      "demo placeholder: put iPXE's undionly.kpxe here for real BIOS clients\n",
		"tftp/ipxe.efi":           "demo placeholder: put iPXE's ipxe.efi here for real UEFI clients\n",
		"ftp/README.txt":          "Hello from bootyard's FTP server. Anonymous users may upload into incoming/ (write-only).\n",
		"ftp/payloads/rootfs.img": "demo payload: a real appliance serves OS images here\n",
		"src/vmlinuz":             "demo kernel placeholder\n",
		"src/initrd.img":          "demo initrd placeholder\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "ftp", "incoming"), 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	cfgPath := filepath.Join(dir, "bootyard.toml")
	text := fmt.Sprintf(configText, TFTPPort, FTPPort, FTPImplicitPort, FTPPort, DemoMAC)
	if err := os.WriteFile(cfgPath, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	store, err := images.Open(filepath.Join(dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if _, ok := store.Lookup("demo-linux"); !ok {
		src := []string{filepath.Join(dir, "src", "vmlinuz"), filepath.Join(dir, "src", "initrd.img")}
		if _, err := store.Add(context.Background(), "demo-linux", src, images.AddOptions{Description: "demo image (placeholders, not bootable)"}); err != nil {
			return nil, fmt.Errorf("demo: stage sample image: %w", err)
		}
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	cfg.Demo = true
	return &Demo{Config: cfg, ConfigPath: cfgPath}, nil
}

// PrintSummary writes the endpoints and copy-pasteable client commands.
func (d *Demo) PrintSummary(w io.Writer, addrs map[string]net.Addr) {
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\nbootyard demo is running (state in %s)\n\nEndpoints:\n", d.Config.Server.StateDir)
	for _, n := range names {
		fmt.Fprintf(w, "  %-5s %s\n", n, addrs[n])
	}
	dashed := "52-54-00-12-34-56"
	exe, err := os.Executable()
	if err != nil {
		exe = "bootyard"
	}
	fmt.Fprintf(w, `
Try it (in another terminal):
  curl -s tftp://127.0.0.1:%[1]d/hello.txt
  curl -s tftp://127.0.0.1:%[1]d/ipxe/%[3]s.ipxe              # per-machine iPXE script, rendered
  curl -s tftp://127.0.0.1:%[1]d/images/demo-linux/vmlinuz      # a file of the staged image
  curl -s ftp://127.0.0.1:%[2]d/README.txt
  curl -s ftp://127.0.0.1:%[2]d/preseed/demo01.cfg              # rendered answer file
  echo hello | curl -sT - ftp://127.0.0.1:%[2]d/incoming/hello.log  # anonymous drop box (write-only)
  curl -sk --ssl-reqd ftp://127.0.0.1:%[2]d/README.txt          # explicit FTPS (self-signed)
  %[6]s profiles match --config %[4]s --mac %[5]s --user-class iPXE
  %[6]s status --config %[4]s

Edit %[4]s and send SIGHUP to reload; Ctrl-C stops.
`, TFTPPort, FTPPort, dashed, d.ConfigPath, DemoMAC, exe)
}
