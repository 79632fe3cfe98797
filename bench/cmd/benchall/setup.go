package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// aptPackages are installed normally: they conflict with nothing.
// dnsmasq-base is the bare binary (no service), kea-admin ships perfdhcp,
// kea-common the libraries of kea-dhcp4.
var aptPackages = []string{"dnsmasq-base", "kea-admin", "kea-common", "curl", "iproute2"}

// extractPackages conflict with each other as packages (tftpd-hpa vs
// atftpd, vsftpd vs proftpd) or would start a system service when
// installed (kea-dhcp4-server): they are downloaded and unpacked into
// <work>/peers/<pkg>, and their binaries run from there.
var extractPackages = []string{"tftpd-hpa", "atftpd", "vsftpd", "proftpd-core", "proftpd-mod-crypto", "kea-dhcp4-server"}

// peerBinaries are checked with ldd after unpacking.
var peerBinaries = map[string]string{
	"tftpd-hpa":          "usr/sbin/in.tftpd",
	"atftpd":             "usr/sbin/atftpd",
	"vsftpd":             "usr/sbin/vsftpd",
	"proftpd-core":       "usr/sbin/proftpd",
	"proftpd-mod-crypto": "usr/lib/proftpd/mod_tls.so",
	"kea-dhcp4-server":   "usr/sbin/kea-dhcp4",
}

func installed(pkg string) bool {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	return err == nil && strings.Contains(string(out), "install ok installed")
}

func installedVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// peerDir is where a package is unpacked.
func (e *env) peerDir(pkg string) string { return filepath.Join(e.Work, "peers", pkg) }

// ensurePackages installs and unpacks what the benchmarks need; apt-get
// update runs once, and only when something is missing.
func (e *env) ensurePackages(ctx context.Context) error {
	var missing, toExtract []string
	for _, p := range aptPackages {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	for _, p := range extractPackages {
		if _, err := os.Stat(filepath.Join(e.peerDir(p), ".version")); err != nil {
			toExtract = append(toExtract, p)
		}
	}
	if contains(toExtract, "proftpd-core") && !contains(toExtract, "proftpd-mod-crypto") {
		toExtract = append(toExtract, "proftpd-mod-crypto") // it unpacks into the core's tree
	}
	updated := false
	aptEnv := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	apt := func(dir string, args ...string) error {
		if !updated {
			logf("apt-get update")
			cmd := exec.CommandContext(ctx, "apt-get", "update", "-qq")
			cmd.Env = aptEnv
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get update: %w: %s", err, lastLines(string(out), 5))
			}
			updated = true
		}
		logf("apt-get %s", strings.Join(args, " "))
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = aptEnv
		cmd.Dir = dir // apt-get download writes into the current directory
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", args[0], err, lastLines(string(out), 5))
		}
		return nil
	}
	if len(toExtract) > 0 {
		if err := os.MkdirAll(filepath.Join(e.Work, "peers"), 0o755); err != nil {
			return err
		}
		// A fresh directory, so that only this run's .debs are unpacked.
		tmp, err := os.MkdirTemp(filepath.Join(e.Work, "peers"), "dl-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		// The sandbox user _apt cannot write into root's directory.
		args := append([]string{"download", "-qq", "-o", "APT::Sandbox::User=root"}, toExtract...)
		if err := apt(tmp, args...); err != nil {
			return err
		}
		for _, p := range toExtract {
			matches, _ := filepath.Glob(filepath.Join(tmp, p+"_*.deb"))
			if len(matches) == 0 {
				return fmt.Errorf("apt-get download %s: no .deb found", p)
			}
			deb := matches[len(matches)-1]
			dir := e.peerDir(p)
			_ = os.RemoveAll(dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if _, err := run(ctx, "dpkg-deb", "-x", deb, dir); err != nil {
				return err
			}
			// proftpd looks for its modules beside the core's.
			if p == "proftpd-mod-crypto" {
				if _, err := run(ctx, "dpkg-deb", "-x", deb, e.peerDir("proftpd-core")); err != nil {
					return err
				}
			}
			ver, _ := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
			deps, _ := exec.Command("dpkg-deb", "-f", deb, "Depends").Output()
			if err := os.WriteFile(filepath.Join(dir, ".depends"), deps, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, ".version"), []byte(strings.TrimSpace(string(ver))), 0o644); err != nil {
				return err
			}
		}
	}
	// The unpacked binaries' shared libraries are ordinary packages.
	for _, p := range extractPackages {
		b, _ := os.ReadFile(filepath.Join(e.peerDir(p), ".depends"))
		for _, d := range libDepends(string(b)) {
			if !installed(d) && !contains(missing, d) {
				missing = append(missing, d)
			}
		}
	}
	if len(missing) > 0 {
		args := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
		if err := apt("/", args...); err != nil {
			return err
		}
	}
	for p, bin := range peerBinaries {
		out, err := exec.Command("ldd", filepath.Join(e.peerDir(p), bin)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ldd %s: %w: %s", bin, err, out)
		}
		if strings.Contains(string(out), "not found") {
			return fmt.Errorf("%s: missing shared libraries:\n%s", bin, out)
		}
	}
	return nil
}

var depName = regexp.MustCompile(`^\s*([a-z0-9][a-z0-9+.-]*)`)

// libDepends picks the library packages (and kea's own) out of a Depends
// field: the first alternative of each, without versions.
func libDepends(field string) []string {
	var out []string
	for _, d := range strings.Split(field, ",") {
		first := strings.Split(d, "|")[0]
		m := depName.FindStringSubmatch(first)
		if m == nil {
			continue
		}
		name := m[1]
		if strings.HasPrefix(name, "lib") && !strings.HasPrefix(name, "libpam-") || strings.HasPrefix(name, "kea-") {
			out = append(out, name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (e *env) peerVersion(pkg string) string {
	b, err := os.ReadFile(filepath.Join(e.peerDir(pkg), ".version"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// ensureFile writes size deterministic pseudo-random bytes to path unless a
// file of that size is already there.
func ensureFile(path string, size int64, seed byte) error {
	if fi, err := os.Stat(path); err == nil && fi.Size() == size {
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	r := mrand.NewChaCha8([32]byte{seed})
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// writeCert writes a self-signed RSA-2048 certificate and key (RSA so that
// every server takes the same file).
func writeCert(certPath, keyPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "bootyard-bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 6), net.IPv4(127, 0, 0, 7)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	kb := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(keyPath, kb, 0o600)
}

// Network namespaces this program creates (and deletes on the way out).
const (
	nsBench = "byb-bench" // TFTP and FTP: loopback only
	nsDSrv  = "byb-dsrv"  // DHCP servers
	nsDCli  = "byb-dcli"  // perfdhcp, acting as a relay
)

// DHCP addressing, in 198.18.0.0/15 (RFC 2544, set aside for benchmarks)
// and only inside the namespaces above.
const (
	dhcpSrvIf   = "bydS"
	dhcpCliIf   = "bydC"
	dhcpSrvAddr = "198.18.0.1"
	dhcpCliAddr = "198.18.0.2"
	dhcpPrefix  = "198.18.0.0/16"
	dhcpFirst   = "198.18.1.0"
	dhcpLast    = "198.18.255.254"
)

func setupNetns(ctx context.Context) error {
	teardownNetns()
	steps := [][]string{
		{"ip", "netns", "add", nsBench},
		{"ip", "-n", nsBench, "link", "set", "lo", "up"},
		// A non-loopback address, so that getaddrinfo(AI_ADDRCONFIG) in
		// tftpd-hpa resolves IPv4 names; nothing is routed through it.
		{"ip", "-n", nsBench, "link", "add", "byb0", "type", "veth", "peer", "name", "byb1"},
		{"ip", "-n", nsBench, "addr", "add", "198.18.255.1/32", "dev", "byb0"},
		{"ip", "-n", nsBench, "link", "set", "byb0", "up"},
		{"ip", "-n", nsBench, "link", "set", "byb1", "up"},
		{"ip", "netns", "add", nsDSrv},
		{"ip", "netns", "add", nsDCli},
		{"ip", "link", "add", dhcpSrvIf, "netns", nsDSrv, "type", "veth", "peer", "name", dhcpCliIf, "netns", nsDCli},
		{"ip", "-n", nsDSrv, "addr", "add", dhcpSrvAddr + "/16", "dev", dhcpSrvIf},
		{"ip", "-n", nsDCli, "addr", "add", dhcpCliAddr + "/16", "dev", dhcpCliIf},
		{"ip", "-n", nsDSrv, "link", "set", "lo", "up"},
		{"ip", "-n", nsDCli, "link", "set", "lo", "up"},
		{"ip", "-n", nsDSrv, "link", "set", dhcpSrvIf, "up"},
		{"ip", "-n", nsDCli, "link", "set", dhcpCliIf, "up"},
	}
	for _, s := range steps {
		if _, err := run(ctx, s...); err != nil {
			return fmt.Errorf("network namespaces: %w", err)
		}
	}
	return nil
}

func teardownNetns() {
	for _, ns := range []string{nsBench, nsDSrv, nsDCli} {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
}
