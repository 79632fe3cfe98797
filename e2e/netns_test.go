//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// Addresses live only inside the namespaces the test creates.
const (
	subnet     = "10.233.0.0/24"
	serverIP   = "10.233.0.1" // bootyard's side of the veth pair
	bridgeIP   = "10.233.0.2" // the VM side's bridge (the other DHCP server in proxy mode)
	ula        = "fd00:233::" // IPv6 prefix the VM side's router advertises
	bridgeIP6  = "fd00:233::2"
	reservedIP = "10.233.0.21"
	poolFirst  = "10.233.0.100"
	poolLast   = "10.233.0.150"
	prefixLen  = "24"
	serverIf   = "by0" // veth end in the server namespace
	vmIf       = "by1" // veth end in the VM namespace, enslaved to the bridge
	bridgeIf   = "br0"
	tapIf      = "tap0"
)

var netSeq atomic.Int32

// testNet is two network namespaces joined by a veth pair: the server
// namespace holds bootyard on serverIf; the VM namespace holds a bridge
// joining the veth end and QEMU's tap device. Nothing touches the host's
// own interfaces or routes.
type testNet struct {
	srvNS, vmNS string
}

// setupNet creates the namespaces and registers their removal.
func setupNet(t *testing.T) *testNet {
	t.Helper()
	n := &testNet{}
	id := fmt.Sprintf("bye2e-%d-%d", os.Getpid(), netSeq.Add(1))
	n.srvNS, n.vmNS = id+"-srv", id+"-vm"
	for _, ns := range []string{n.srvNS, n.vmNS} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			// t.Context is already cancelled when cleanups run.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := run(ctx, "ip", "netns", "del", ns); err != nil {
				t.Errorf("e2e: remove namespace %s: %v", ns, err)
			}
		})
	}
	s := func(args ...string) { mustRun(t, "ip", append([]string{"-n", n.srvNS}, args...)...) }
	v := func(args ...string) { mustRun(t, "ip", append([]string{"-n", n.vmNS}, args...)...) }

	// The pair is created inside the server namespace with its peer
	// placed straight into the VM namespace.
	s("link", "add", serverIf, "type", "veth", "peer", "name", vmIf, "netns", n.vmNS)
	s("addr", "add", serverIP+"/"+prefixLen, "dev", serverIf)
	s("link", "set", "lo", "up")
	s("link", "set", serverIf, "up")

	v("link", "set", "lo", "up")
	v("link", "add", bridgeIf, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	v("link", "set", vmIf, "master", bridgeIf)
	v("tuntap", "add", "dev", tapIf, "mode", "tap")
	v("link", "set", tapIf, "master", bridgeIf)
	v("addr", "add", bridgeIP+"/"+prefixLen, "dev", bridgeIf)
	v("addr", "add", bridgeIP6+"/64", "dev", bridgeIf, "nodad")
	for _, dev := range []string{vmIf, tapIf, bridgeIf} {
		v("link", "set", dev, "up")
	}
	t.Logf("e2e: namespaces %s (%s on %s) and %s (%s, %s, %s on %s)", n.srvNS, serverIP, serverIf, n.vmNS, bridgeIf, vmIf, tapIf, bridgeIP)
	return n
}

// inSrv prefixes argv so it runs in the server namespace.
func (n *testNet) inSrv(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.srvNS}, argv...)
}

// inVM prefixes argv so it runs in the VM namespace.
func (n *testNet) inVM(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", n.vmNS}, argv...)
}

// runVM runs a client command to completion in the VM namespace.
func (n *testNet) runVM(ctx context.Context, argv ...string) ([]byte, error) {
	full := n.inVM(argv...)
	return run(ctx, full[0], full[1:]...)
}
