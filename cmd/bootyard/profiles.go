package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/config"
	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
)

const profilesUsage = `Usage: bootyard profiles match [flags]

Prints the boot plan and every rendered file a client would get: the
operator's "why did this machine boot that?" tool.

  bootyard profiles match --mac 52:54:00:12:34:56 --arch efi-x64 --user-class iPXE
`

func cmdProfiles(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, profilesUsage)
		return exitUsage
	}
	switch args[0] {
	case "match":
		return profilesMatch(ctx, args[1:], e)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, profilesUsage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "bootyard profiles: unknown command %q\n\n%s", args[0], profilesUsage)
	return exitUsage
}

func profilesMatch(ctx context.Context, args []string, e *env) int {
	fs := newFlags("profiles match", "profiles match [--config FILE] --mac MAC [--arch A] [--user-class C] [--vendor-class C] [--uuid U] [--relay IP] [--ip IP] [--server IP] [--quiet]", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	macS := fs.String("mac", "", "client MAC address (required)")
	archS := fs.String("arch", "", "option 93 architecture: a firmware name (bios, efi-x64, efi-arm64, …) or an IANA code; default: none sent (reads as bios)")
	user := fs.String("user-class", "", "option 77 user class (iPXE for an iPXE client)")
	vendor := fs.String("vendor-class", "", "option 60 vendor class (e.g. PXEClient:Arch:00007:UNDI:003016, HTTPClient:…)")
	uuidS := fs.String("uuid", "", "option 97 machine UUID")
	relayS := fs.String("relay", "", "relay agent address (giaddr)")
	ipS := fs.String("ip", "", "client address (ciaddr)")
	serverS := fs.String("server", "", "server address for .Server (default: dhcp.server_address, else 192.0.2.1)")
	quiet := fs.Bool("quiet", false, "print the plan only, not the rendered files")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if *macS == "" {
		fmt.Fprintln(e.stderr, "bootyard profiles match: --mac is required")
		return exitUsage
	}
	f, server, err := matchFacts(*macS, *archS, *user, *vendor, *uuidS, *relayS, *ipS, *serverS)
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard profiles match:", err)
		return exitUsage
	}
	cfg, code := loadConfig(e, *path)
	if code >= 0 {
		return code
	}
	if !server.IsValid() {
		server = netip.MustParseAddr("192.0.2.1")
		if cfg.DHCP.ServerAddress.IsValid() {
			server = cfg.DHCP.ServerAddress.Addr
		}
	}
	f.Server = server
	in := profiles.Input{Profiles: cfg.Profiles, Machines: cfg.Machines, Rules: cfg.Rules, BaseDir: templateBaseDir(cfg)}
	if fi, err := os.Stat(cfg.Images.Dir); err == nil && fi.IsDir() {
		in.Images = images.DirIndex(cfg.Images.Dir)
	}
	set, probs, warns := profiles.Compile(in)
	for _, w := range warns {
		if !slices.Contains(cfg.Warnings, w) {
			fmt.Fprintf(e.stderr, "%s: warning: %s\n", cfg.File, w)
		}
	}
	if set == nil {
		for _, p := range probs {
			fmt.Fprintf(e.stderr, "%s: %s: %s\n", cfg.File, p.Key, p.Msg)
		}
		return exitUsage
	}
	plan, err := set.Match(f)
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	printPlan(e, f, plan)
	if *quiet {
		return exitOK
	}
	files, err := set.Files(f, server)
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	for _, r := range files {
		fmt.Fprintf(e.stdout, "\n==> %s <==\n%s", r.Name, r.Data)
		if len(r.Data) > 0 && r.Data[len(r.Data)-1] != '\n' {
			fmt.Fprintln(e.stdout)
		}
	}
	return exitOK
}

// templateBaseDir is the directory template_file paths resolve against:
// the configuration file's.
func templateBaseDir(cfg *config.Config) string {
	if cfg.File == "" {
		return "."
	}
	return filepath.Dir(cfg.File)
}

// matchFacts builds the client facts from the flags.
func matchFacts(macS, archS, user, vendor, uuidS, relayS, ipS, serverS string) (profiles.Facts, netip.Addr, error) {
	var f profiles.Facts
	var server netip.Addr
	m, err := units.ParseMAC(macS)
	if err != nil {
		return f, server, err
	}
	f.MAC, f.UserClass, f.VendorClass = m, user, vendor
	if archS != "" {
		codes, err := profiles.ParseArch(archS)
		if err != nil {
			return f, server, fmt.Errorf("--arch: %w", err)
		}
		f.Arch, f.HasArch = codes[0], true
		if f.VendorClass == "" {
			kind := "PXEClient"
			if strings.HasSuffix(string(profiles.ArchFirmware(f.Arch)), "-http") {
				kind = "HTTPClient"
			}
			f.VendorClass = fmt.Sprintf("%s:Arch:%05d:UNDI:003016", kind, f.Arch)
		}
	}
	if uuidS != "" {
		h := strings.ReplaceAll(uuidS, "-", "")
		if len(h) != 32 {
			return f, server, fmt.Errorf("--uuid %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", uuidS)
		}
		b := make([]byte, 17)
		for i := 0; i < 16; i++ {
			if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &b[i+1]); err != nil {
				return f, server, fmt.Errorf("--uuid %q: not hex", uuidS)
			}
		}
		f.UUID = b
	}
	for _, a := range []struct {
		flag, val string
		dst       *netip.Addr
	}{{"--relay", relayS, &f.Relay}, {"--ip", ipS, &f.ClientAddr}, {"--server", serverS, &server}} {
		if a.val == "" {
			continue
		}
		v, err := netip.ParseAddr(a.val)
		if err != nil {
			return f, server, fmt.Errorf("%s %q: not an IP address", a.flag, a.val)
		}
		*a.dst = v.Unmap()
	}
	return f, server, nil
}

func printPlan(e *env, f profiles.Facts, p profiles.Plan) {
	w := e.stdout
	arch := "none sent (reads as bios)"
	if f.HasArch {
		arch = fmt.Sprintf("%s (%d)", profiles.ArchFirmware(f.Arch), f.Arch)
	}
	fmt.Fprintf(w, "client:     %s arch %s", f.MAC, arch)
	if f.UserClass != "" {
		fmt.Fprintf(w, " user-class %q", f.UserClass)
	}
	if f.VendorClass != "" {
		fmt.Fprintf(w, " vendor-class %q", f.VendorClass)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "decided by: %s\n", p.Source)
	switch p.Action {
	case profiles.Ignore:
		fmt.Fprintf(w, "action:     ignore (no reply): %s\n", p.Reason)
		return
	case profiles.Local:
		fmt.Fprintf(w, "action:     local (boot from disk): %s\n", p.Reason)
		return
	}
	fmt.Fprintf(w, "action:     boot profile %s\n", p.Profile)
	fmt.Fprintf(w, "firmware:   %s (platform %s)\n", p.Firmware, p.Arch)
	how := "TFTP"
	if p.HTTP {
		how = "HTTP (UEFI HTTP boot: sent as a URL)"
	}
	fmt.Fprintf(w, "boot file:  %s via %s\n", p.BootFile, how)
	if p.Hostname != "" {
		fmt.Fprintf(w, "hostname:   %s\n", p.Hostname)
	}
	if p.IP.IsValid() {
		fmt.Fprintf(w, "fixed ip:   %s (DHCP server mode)\n", p.IP)
	}
	if p.Image != "" {
		fmt.Fprintf(w, "image:      %s\n", p.Image)
	}
	if p.Kernel != "" {
		fmt.Fprintf(w, "kernel:     %s\n", p.Kernel)
		for _, i := range p.Initrds {
			fmt.Fprintf(w, "initrd:     %s\n", i)
		}
		fmt.Fprintf(w, "cmdline:    %s\n", p.Cmdline)
	}
}
