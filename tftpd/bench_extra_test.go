package tftpd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/pin/tftp/v3"
)

// benchServer runs a server with cfg for a benchmark and returns its address.
func benchServer(b *testing.B, cfg Config) string {
	b.Helper()
	s, err := New(cfg, Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return s.Addr().(*net.UDPAddr).String()
}

// benchFetch fetches name n times with pin/tftp's client and checks the size.
func benchFetch(b *testing.B, addr, name string, blksize, size int) {
	b.Helper()
	c, err := tftp.NewClient(addr)
	if err != nil {
		b.Fatal(err)
	}
	c.SetBlockSize(blksize)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		wt, err := c.Receive(name, "octet")
		if err != nil {
			b.Fatal(err)
		}
		n, err := wt.WriteTo(io.Discard)
		if err != nil || n != int64(size) {
			b.Fatalf("got %d bytes, %v", n, err)
		}
	}
}

// BenchmarkSinglePort16MiB is BenchmarkTransfer64MiB in single-port mode
// (every packet passes the gate and pin/tftp's dispatcher), on 16 MiB.
func BenchmarkSinglePort16MiB(b *testing.B) {
	root := b.TempDir()
	const size = 16 << 20
	if err := writeFileErr(root+"/big", randBytes(size, 98)); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(root)
	cfg.SinglePort = true
	addr := benchServer(b, cfg)
	for _, blk := range []int{512, 1468} {
		b.Run(fmt.Sprintf("blksize=%d", blk), func(b *testing.B) { benchFetch(b, addr, "big", blk, size) })
	}
}

// BenchmarkSmallFile fetches a 2 KiB file (a boot menu, a config): the
// per-transfer cost, allocations included.
func BenchmarkSmallFile(b *testing.B) {
	root := b.TempDir()
	const size = 2 << 10
	if err := writeFileErr(root+"/menu.cfg", randBytes(size, 97)); err != nil {
		b.Fatal(err)
	}
	benchFetch(b, benchServer(b, testConfig(root)), "menu.cfg", 1468, size)
}
