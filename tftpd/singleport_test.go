package tftpd

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSinglePortBlockCap: in single-port mode pin/tftp allocates a read
// buffer of its blksize cap for every packet, so the cap is the largest
// block of a non-loopback interface (not loopback's 64 KiB) unless
// max_block_size says otherwise; the OACK and the log line agree on it.
func TestSinglePortBlockCap(t *testing.T) {
	lan := 1468
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 && ifi.MTU-32 > lan {
			lan = min(ifi.MTU-32, 65464)
		}
	}
	root := t.TempDir()
	data := randBytes(20000, 21)
	writeFile(t, root, "f", data)
	for _, tc := range []struct {
		maxBlock, want int
	}{{0, lan}, {8192, 8192}} {
		t.Run(fmt.Sprint("max_block_size=", tc.maxBlock), func(t *testing.T) {
			cfg := testConfig(root)
			cfg.SinglePort = true
			cfg.MaxBlockSize = tc.maxBlock
			ts := start(t, cfg, Deps{})
			got, first, err := dialRaw(t).get(ts.addr, "f", "blksize", "16384")
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("fetch: %v, %d bytes", err, len(got))
			}
			if o := oackOpts(first); o["blksize"] != fmt.Sprint(tc.want) {
				t.Errorf("OACK %v, want blksize %d", o, tc.want)
			}
			want := fmt.Sprintf("blksize=%d ", tc.want)
			for end := time.Now().Add(2 * time.Second); !strings.Contains(ts.logs.String(), want) && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
			}
			if logs := ts.logs.String(); !strings.Contains(logs, want) {
				t.Errorf("log does not say %s:\n%s", want, logs)
			}
		})
	}
}
