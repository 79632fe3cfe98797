package ftpd

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// Benchmarks over loopback with a Go client (no rate limit): a 1 GiB
// download and a 256 MiB upload, plain and TLS. Files are created lazily
// (sparse) only when a benchmark runs. Run with:
//
//	go test ./ftpd/ -run XXX -bench . -benchtime 1x
func BenchmarkDownload1GiB(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			e := startServer(b, nil)
			f, err := os.Create(e.root + "/pub/big.bin")
			if err != nil {
				b.Fatal(err)
			}
			f.Truncate(1 << 30)
			f.Close()
			os.Chmod(e.root+"/pub/big.bin", 0o644)
			r := benchLogin(b, e, mode)
			b.SetBytes(1 << 30)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dc := benchData(b, r, mode)
				r.expect(150, "RETR /pub/big.bin")
				n, _ := io.Copy(io.Discard, dc)
				dc.Close()
				if code, _ := r.read(); code != 226 || n != 1<<30 {
					b.Fatalf("RETR: %d, %d bytes", code, n)
				}
			}
		})
	}
}

func BenchmarkUpload256MiB(b *testing.B) {
	for _, mode := range []string{"plain", "tls"} {
		b.Run(mode, func(b *testing.B) {
			e := startServer(b, func(c *Config) { c.Anonymous.MaxUpload = 0; c.Anonymous.IncomingQuota = 0 })
			dir := "/incoming/"
			if mode == "tls" {
				dir = "/pub/"
			}
			r := benchLogin(b, e, mode)
			buf := make([]byte, 1<<20)
			b.SetBytes(256 << 20)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dc := benchData(b, r, mode)
				r.expect(150, "STOR %sup-%d.bin", dir, i)
				for j := 0; j < 256; j++ {
					if _, err := dc.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				dc.Close()
				if code, msg := r.read(); code != 226 {
					b.Fatalf("STOR: %d %q", code, msg)
				}
				b.StopTimer()
				os.Remove(e.root + dir + "up-" + itoa(i) + ".bin")
				b.StartTimer()
			}
		})
	}
}

func benchLogin(b *testing.B, e *testEnv, mode string) *rawc {
	r := dialRaw(b, e.addr)
	r.c.SetDeadline(noDeadline)
	r.banner()
	if mode == "tls" {
		r.expect(234, "AUTH TLS")
		r = tlsUpgrade(b, r)
		r.c.SetDeadline(noDeadline)
	}
	if mode == "tls" {
		r.expect(331, "USER alice")
		r.expect(230, "PASS %s", alicePass)
		r.expect(200, "PBSZ 0")
		r.expect(200, "PROT P")
	} else {
		r.expect(331, "USER anonymous")
		r.expect(230, "PASS bench@example.org")
	}
	r.expect(200, "TYPE I")
	return r
}

func benchData(b *testing.B, r *rawc, mode string) net.Conn {
	dc := r.epsv()
	dc.SetDeadline(noDeadline)
	if mode == "tls" {
		tc := tls.Client(dc, &tls.Config{InsecureSkipVerify: true, ClientSessionCache: tls.NewLRUClientSessionCache(4)})
		return tc
	}
	return dc
}

var noDeadline time.Time
