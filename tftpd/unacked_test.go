package tftpd

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/bootyard/bootyard/internal/units"
)

// TestUnacknowledgedLastBlock: a client that receives every block but never
// acknowledges the last one (a lost final ACK looks the same from here) is
// logged as "unacknowledged", not as a failed transfer; a client that stops
// acknowledging half-way is a failure.
func TestUnacknowledgedLastBlock(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Timeout = units.Duration(20 * time.Millisecond)
	cfg.Retries = 2
	ts := start(t, cfg, Deps{})
	writeFile(t, ts.root, "one-block.bin", randBytes(300, 1))
	writeFile(t, ts.root, "two-blocks.bin", randBytes(700, 2))

	c := dialRaw(t)
	c.send(ts.addr, rrq(1, "one-block.bin", "octet"))
	if p, _ := c.recv(2 * time.Second); len(p) < 4 || binary.BigEndian.Uint16(p) != 3 {
		t.Fatalf("want DATA 1, got %s", describe(p))
	}
	// No ACK: the server retransmits, then gives up.
	c2 := dialRaw(t)
	c2.send(ts.addr, rrq(1, "two-blocks.bin", "octet"))
	if p, _ := c2.recv(2 * time.Second); len(p) < 4 || binary.BigEndian.Uint16(p) != 3 {
		t.Fatalf("want DATA 1, got %s", describe(p))
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := ts.Stats()
		if st.Unacknowledged+st.Failed >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st := ts.Stats()
	if st.Unacknowledged != 1 || st.Failed != 1 || st.Completed != 0 {
		t.Fatalf("stats: unacknowledged %d, failed %d, completed %d; want 1, 1, 0\n%s", st.Unacknowledged, st.Failed, st.Completed, ts.logs)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "file=one-block.bin") || !strings.Contains(logs, "outcome=unacknowledged") {
		t.Errorf("no unacknowledged line for one-block.bin:\n%s", logs)
	}
	if !strings.Contains(logs, "file=two-blocks.bin resolved=two-blocks.bin source=file bytes=512") {
		t.Errorf("two-blocks.bin should have failed after its first block:\n%s", logs)
	}
	stillServing(t, ts)
}
