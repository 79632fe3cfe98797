//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// nicModules are the kernel modules the guest loads for its NIC (QEMU's
// e1000 in the BIOS runs, virtio-net in the UEFI runs); their dependencies
// are found in each module's .modinfo.
var nicModules = []string{"e1000", "virtio_pci", "virtio_net"}

// guestKernel is a Debian kernel extracted into the cache: the vmlinuz and
// the modules the initramfs carries, in load order.
type guestKernel struct {
	Version string   // e.g. 6.1.0-56-amd64
	Vmlinuz string   // path to the kernel image
	Modules []string // paths of .ko files, dependencies first
}

var kernelPkgRE = regexp.MustCompile(`Depends: (linux-image-(\d[^\s]*-amd64))\b`)

// kernelPackage names the kernel package linux-image-amd64 points at.
func kernelPackage(ctx context.Context) (pkg, version string, err error) {
	out, err := run(ctx, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", "", err
	}
	m := kernelPkgRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", "", fmt.Errorf("apt-cache depends linux-image-amd64: no linux-image-*-amd64 dependency in:\n%s", out)
	}
	return m[1], m[2], nil
}

// fetchKernel downloads (once) the current Debian amd64 kernel package,
// extracts it and keeps the kernel image and the NIC modules in the cache.
// Nothing is installed on the host.
func fetchKernel(t *testing.T) guestKernel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache := cacheDir(t)

	pkg, version, err := kernelPackage(ctx)
	if err != nil {
		// A fresh machine may have no package lists yet.
		t.Logf("e2e: %v; running apt-get update", err)
		if _, err := run(ctx, "apt-get", "update", "-qq"); err != nil {
			t.Fatalf("e2e: kernel: %v", err)
		}
		if pkg, version, err = kernelPackage(ctx); err != nil {
			t.Fatalf("e2e: kernel: %v", err)
		}
	}
	dir := filepath.Join(cache, "kernel", version)
	k := guestKernel{Version: version, Vmlinuz: filepath.Join(dir, "vmlinuz")}
	if mods, err := readLines(filepath.Join(dir, "modules.load")); err == nil && hasModules(mods, nicModules) {
		if _, err := os.Stat(k.Vmlinuz); err == nil {
			for _, m := range mods {
				k.Modules = append(k.Modules, filepath.Join(dir, m))
			}
			t.Logf("e2e: kernel %s from cache %s", version, dir)
			return k
		}
	}

	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	deb, err := findDeb(debs, pkg)
	if err != nil {
		t.Logf("e2e: downloading %s", pkg)
		download := func() ([]byte, error) {
			cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
			cmd.Dir = debs
			return cmd.CombinedOutput()
		}
		if out, err := download(); err != nil {
			// Stale package lists name a version the mirror dropped.
			t.Logf("e2e: apt-get download %s: %v\n%s\nrunning apt-get update", pkg, err, out)
			if _, err := run(ctx, "apt-get", "update", "-qq"); err != nil {
				t.Fatalf("e2e: kernel: %v", err)
			}
			if out, err := download(); err != nil {
				t.Fatalf("e2e: apt-get download %s: %v\n%s", pkg, err, out)
			}
		}
		if deb, err = findDeb(debs, pkg); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}

	tmp, err := os.MkdirTemp(cache, ".extract-")
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, "dpkg-deb", "-x", deb, tmp); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	modRoot := filepath.Join(tmp, "lib/modules", version)
	order, err := moduleLoadOrder(modRoot, nicModules)
	if err != nil {
		t.Fatalf("e2e: kernel %s: %v", version, err)
	}

	stage := dir + ".new"
	_ = os.RemoveAll(stage)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if err := copyFile(filepath.Join(tmp, "boot", "vmlinuz-"+version), filepath.Join(stage, "vmlinuz"), 0o644); err != nil {
		t.Fatalf("e2e: kernel image: %v", err)
	}
	var names []string
	for _, rel := range order {
		name := filepath.Base(rel)
		if err := copyFile(filepath.Join(modRoot, rel), filepath.Join(stage, name), 0o644); err != nil {
			t.Fatalf("e2e: module: %v", err)
		}
		names = append(names, name)
	}
	if err := os.WriteFile(filepath.Join(stage, "modules.load"), []byte(strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(stage, dir); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	for _, n := range names {
		k.Modules = append(k.Modules, filepath.Join(dir, n))
	}
	t.Logf("e2e: kernel %s extracted into %s (modules %s)", version, dir, strings.Join(names, " "))
	return k
}

// hasModules reports whether the cached load list holds every wanted module.
func hasModules(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if strings.ReplaceAll(strings.TrimSuffix(h, ".ko"), "-", "_") == w {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func findDeb(dir, pkg string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*_amd64.deb"))
	if len(m) == 0 {
		return "", fmt.Errorf("no %s_*_amd64.deb in %s", pkg, dir)
	}
	return m[len(m)-1], nil
}

// moduleLoadOrder finds each wanted module under modRoot and returns the
// relative paths of it and its dependencies (read from the .modinfo ELF
// section, since a package's modules.dep is made only when it is installed),
// dependencies first.
func moduleLoadOrder(modRoot string, want []string) ([]string, error) {
	index := map[string]string{} // module name -> relative path
	err := filepath.WalkDir(modRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".ko") {
			rel, _ := filepath.Rel(modRoot, p)
			name := strings.ReplaceAll(strings.TrimSuffix(d.Name(), ".ko"), "-", "_")
			index[name] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	var order []string
	seen := map[string]bool{}
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		name = strings.ReplaceAll(name, "-", "_")
		if seen[name] {
			return nil
		}
		if depth > 32 {
			return fmt.Errorf("module %s: dependency loop", name)
		}
		rel, ok := index[name]
		if !ok {
			return fmt.Errorf("module %s not found under %s (is it built in?)", name, modRoot)
		}
		deps, err := moduleDepends(filepath.Join(modRoot, rel))
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(d, depth+1); err != nil {
				return err
			}
		}
		seen[name] = true
		order = append(order, rel)
		return nil
	}
	for _, w := range want {
		if err := visit(w, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDepends reads depends= from a kernel module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: .modinfo: %w", path, err)
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// guestInit is the initramfs /init. It reads by.* parameters from the
// kernel command line, loads the NIC modules, gets an address with udhcpc,
// downloads the payload with ftpget, uploads a log with ftpput into the
// anonymous drop box and powers off. Every step prints a "BYE2E" line on the
// serial console; the host waits for those.
const guestInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mark() { echo "BYE2E $* up=$(cut -d' ' -f1 /proc/uptime)"; }
fail() { mark "FAIL $*"; sync; poweroff -f; sleep 10; }
mark init kernel=$(uname -r)

SERVER= PAYLOAD= UPLOAD= TOKEN= IFACE=eth0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	by.server=*) SERVER=${arg#by.server=} ;;
	by.payload=*) PAYLOAD=${arg#by.payload=} ;;
	by.upload=*) UPLOAD=${arg#by.upload=} ;;
	by.token=*) TOKEN=${arg#by.token=} ;;
	esac
done
[ -n "$SERVER" ] && [ -n "$PAYLOAD" ] && [ -n "$UPLOAD" ] && [ -n "$TOKEN" ] || fail "cmdline lacks by.server/by.payload/by.upload/by.token: $(cat /proc/cmdline)"

for m in $(cat /etc/modules.load); do
	insmod /lib/modules/$m || fail "insmod $m"
done
i=0
while [ ! -e /sys/class/net/$IFACE ]; do
	i=$((i+1)); [ $i -gt 100 ] && fail "no $IFACE after loading modules"
	sleep 0.2
done
ip link set lo up
ip link set $IFACE up
mark link $IFACE mac=$(cat /sys/class/net/$IFACE/address)

udhcpc -i $IFACE -s /etc/udhcpc.script -q -n -t 15 -T 2 -x hostname:bye2e >/tmp/udhcpc.log 2>&1 || { cat /tmp/udhcpc.log; fail "udhcpc got no lease"; }
mark dhcp $(cat /tmp/lease)

ftpget -v "$SERVER" /tmp/payload "$PAYLOAD" >/tmp/ftpget.log 2>&1 || { cat /tmp/ftpget.log; fail "ftpget $SERVER $PAYLOAD"; }
SHA=$(sha256sum /tmp/payload | cut -d' ' -f1)
mark payload sha256=$SHA bytes=$(wc -c </tmp/payload)

{
	echo "bootyard-e2e upload"
	echo "token=$TOKEN"
	echo "payload_sha256=$SHA"
	echo "kernel=$(uname -r)"
	cat /tmp/lease
} >/tmp/upload.log
ftpput -v -u anonymous -p e2e@bootyard "$SERVER" "$UPLOAD" /tmp/upload.log >/tmp/ftpput.log 2>&1 || { cat /tmp/ftpput.log; fail "ftpput $SERVER $UPLOAD"; }
mark upload $UPLOAD

mark DONE token=$TOKEN
sync
poweroff -f
sleep 10
`

// udhcpcScript configures the interface from udhcpc's environment and
// records the lease for the console.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	if [ -n "$router" ]; then ip route add default via "${router%% *}" dev "$interface"; fi
	echo "ip=$ip mask=$mask serverid=$serverid siaddr=$siaddr" >/tmp/lease
	;;
esac
exit 0
`

// buildInitramfs writes a gzip-compressed newc cpio initramfs with the
// static busybox, the NIC modules and the init script to out.
func buildInitramfs(t *testing.T, k guestKernel, out string) {
	t.Helper()
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("e2e: busybox not found: install busybox-static (make test does)")
	}
	if ok, err := isStatic(busybox); err != nil || !ok {
		t.Fatalf("e2e: %s is not a static binary (err %v): install busybox-static (make test does)", busybox, err)
	}
	root, err := os.MkdirTemp("", "bye2e-initramfs-")
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	defer os.RemoveAll(root)

	modDir := filepath.Join("lib/modules")
	var load []string
	for _, m := range k.Modules {
		load = append(load, filepath.Base(m))
	}
	files := []struct {
		path, src, data string
		mode            os.FileMode
	}{
		{path: "bin/busybox", src: busybox, mode: 0o755},
		{path: "init", data: guestInit, mode: 0o755},
		{path: "etc/udhcpc.script", data: udhcpcScript, mode: 0o755},
		{path: "etc/modules.load", data: strings.Join(load, "\n") + "\n", mode: 0o644},
	}
	for _, m := range k.Modules {
		files = append(files, struct {
			path, src, data string
			mode            os.FileMode
		}{path: filepath.Join(modDir, filepath.Base(m)), src: m, mode: 0o644})
	}
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "usr/bin", "usr/sbin", modDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatalf("e2e: %v", err)
		}
	}
	for _, f := range files {
		dst := filepath.Join(root, f.path)
		if f.src != "" {
			err = copyFile(f.src, dst, f.mode)
		} else {
			err = os.WriteFile(dst, []byte(f.data), f.mode)
		}
		if err != nil {
			t.Fatalf("e2e: initramfs %s: %v", f.path, err)
		}
	}

	// busybox's own cpio writes the archive from a sorted file list.
	var list bytes.Buffer
	var paths []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != root {
			rel, _ := filepath.Rel(root, p)
			paths = append(paths, rel)
		}
		return err
	})
	for _, p := range paths {
		list.WriteString(p + "\n")
	}
	cmd := exec.Command(busybox, "cpio", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = root
	cmd.Stdin = &list
	var archive, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &archive, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("e2e: busybox cpio: %v\n%s", err, stderr.String())
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := zw.Write(archive.Bytes()); err != nil {
		t.Fatalf("e2e: gzip: %v", err)
	}
	if err := zw.Close(); err != nil {
		t.Fatalf("e2e: gzip: %v", err)
	}
	if err := os.WriteFile(out, gz.Bytes(), 0o644); err != nil {
		t.Fatalf("e2e: initramfs: %v", err)
	}
	t.Logf("e2e: initramfs %s: %d files, %d bytes", out, len(paths), gz.Len())
}

func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// makePayload writes size pseudo-random bytes (seeded by the run) and
// returns their sha256.
func makePayload(t *testing.T, path string, size int, seed string) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("e2e: payload: %v", err)
	}
	h := sha256.New()
	bw := bufio.NewWriter(f)
	w := io.MultiWriter(bw, h)
	block := sha256.Sum256([]byte(seed))
	for written := 0; written < size; {
		block = sha256.Sum256(block[:])
		n := min(len(block), size-written)
		if _, err := w.Write(block[:n]); err != nil {
			t.Fatalf("e2e: payload: %v", err)
		}
		written += n
	}
	if err := bw.Flush(); err != nil {
		t.Fatalf("e2e: payload: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("e2e: payload: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}
