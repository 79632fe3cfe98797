package tftpd

import (
	"fmt"
	"io"
	"testing"

	"github.com/pin/tftp/v3"
)

// BenchmarkTransfer64MiB fetches a 64 MiB file over loopback with
// pin/tftp's client at three block sizes; MB/s is reported by SetBytes.
// One iteration takes seconds: run with -benchtime=1x.
func BenchmarkTransfer64MiB(b *testing.B) {
	root := b.TempDir()
	data := randBytes(64<<20, 99)
	p := root + "/big"
	if err := writeFileErr(p, data); err != nil {
		b.Fatal(err)
	}
	addr := benchServer(b, testConfig(root))
	for _, blk := range []int{512, 1468, 8192} {
		b.Run(fmt.Sprintf("blksize=%d", blk), func(b *testing.B) {
			c, err := tftp.NewClient(addr)
			if err != nil {
				b.Fatal(err)
			}
			c.SetBlockSize(blk)
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				wt, err := c.Receive("big", "octet")
				if err != nil {
					b.Fatal(err)
				}
				n, err := wt.WriteTo(io.Discard)
				if err != nil || n != int64(len(data)) {
					b.Fatalf("got %d bytes, %v", n, err)
				}
			}
		})
	}
}
