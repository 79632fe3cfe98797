package tftpload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

// serve starts pin/tftp's server (a TFTP server nobody here wrote) on
// loopback with the given files and returns its address.
func serve(t *testing.T, files map[string][]byte) netip.AddrPort {
	t.Helper()
	s := tftp.NewServer(func(name string, rf io.ReaderFrom) error {
		data, ok := files[name]
		if !ok {
			return errors.New("file not found")
		}
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(int64(len(data)))
		}
		_, err := rf.ReadFrom(bytes.NewReader(data))
		return err
	}, nil)
	s.SetTimeout(200 * time.Millisecond)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(conn) }()
	t.Cleanup(func() { s.Shutdown(); <-done })
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	_, _ = r.Read(b)
	return b
}

func TestGet(t *testing.T) {
	files := map[string][]byte{
		"small":    randomBytes(100_000),
		"exact":    randomBytes(1468 * 40), // ends with an empty DATA block
		"empty":    {},
		"rollover": randomBytes(512*65536 + 1000), // block numbers wrap past 65535
	}
	srv := serve(t, files)
	tests := []struct {
		name    string
		file    string
		blksize int
		tsize   bool
		wantBS  int
	}{
		{"default 512", "small", 0, false, 512},
		{"blksize 1468", "small", 1468, true, 1468},
		{"blksize 8192", "small", 8192, true, 8192},
		{"exact multiple", "exact", 1468, false, 1468},
		{"empty file", "empty", 1468, false, 1468},
		{"block number rollover", "rollover", 512, true, 512},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := sha256.New()
			res, err := Get(context.Background(), Options{
				Server: srv, BlockSize: tt.blksize, TSize: tt.tsize,
				Timeout: 500 * time.Millisecond, Hash: h,
			}, tt.file)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := files[tt.file]
			if res.Bytes != int64(len(want)) {
				t.Fatalf("got %d bytes, want %d", res.Bytes, len(want))
			}
			if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
				t.Fatal("payload differs from the served file")
			}
			if res.BlockSize != tt.wantBS {
				t.Errorf("block size %d, want %d", res.BlockSize, tt.wantBS)
			}
			if tt.tsize && res.TSize != int64(len(want)) {
				t.Errorf("tsize %d, want %d", res.TSize, len(want))
			}
			if res.Duration <= 0 || (res.Bytes > 0 && res.MBps() <= 0) {
				t.Errorf("no duration measured: %+v", res)
			}
		})
	}
}

func TestGetMissingFile(t *testing.T) {
	srv := serve(t, map[string][]byte{})
	_, err := Get(context.Background(), Options{Server: srv, Timeout: 500 * time.Millisecond}, "nope")
	var se *ServerError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a ServerError", err)
	}
	if IsTimeout(err) {
		t.Error("a refusal reported as a timeout")
	}
}

func TestGetSilentServer(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := Get(context.Background(), Options{
		Server:  conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		Timeout: 30 * time.Millisecond, Retries: 2,
	}, "x")
	if !IsTimeout(err) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if res.Retransmits != 2 {
		t.Errorf("%d retransmissions, want 2", res.Retransmits)
	}
	// The silent server saw the request three times.
	buf := make([]byte, 512)
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	for i := range 3 {
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
}

func TestGetCancel(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = Get(ctx, Options{Server: conn.LocalAddr().(*net.UDPAddr).AddrPort(), Timeout: 10 * time.Second}, "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestStorm(t *testing.T) {
	data := randomBytes(300_000)
	srv := serve(t, map[string][]byte{"boot": data})
	res, err := Storm(context.Background(), StormOptions{
		Get:         Options{Server: srv, BlockSize: 1468, TSize: true, Timeout: 500 * time.Millisecond},
		Name:        "boot",
		Clients:     16,
		SourceBase:  netip.MustParseAddr("127.0.3.1"),
		ExpectBytes: int64(len(data)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 0 || len(res.Durations) != 16 {
		t.Fatalf("failures %d (%v), successes %d", res.Failures, res.Errors, len(res.Durations))
	}
	if res.Bytes != 16*int64(len(data)) {
		t.Errorf("bytes %d", res.Bytes)
	}
	if p50, p99 := res.Percentile(50), res.Percentile(99); p50 <= 0 || p99 < p50 || res.Wall < p99 {
		t.Errorf("p50 %v p99 %v wall %v", p50, p99, res.Wall)
	}

	// A file that does not exist fails every client, and says why.
	res, err = Storm(context.Background(), StormOptions{
		Get: Options{Server: srv, Timeout: 500 * time.Millisecond}, Name: "missing", Clients: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failures != 4 || len(res.Errors) == 0 {
		t.Errorf("failures %d errors %v, want 4 failures", res.Failures, res.Errors)
	}
}

func TestPercentile(t *testing.T) {
	r := StormResult{}
	for i := 1; i <= 100; i++ {
		r.Durations = append(r.Durations, time.Duration(i))
	}
	for _, tt := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0.5, 1}} {
		if got := r.Percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if (StormResult{}).Percentile(50) != 0 {
		t.Error("empty result has a percentile")
	}
}

var oackTests = []struct {
	body    string
	blksize int
	tsize   int64
	ok      bool
}{
	{"blksize\x001468\x00tsize\x00123\x00", 1468, 123, true},
	{"BLKSIZE\x00512\x00", 512, -1, true},
	{"tsize\x000\x00", 0, 0, true},
	{"", 0, -1, true},
	{"blksize\x00", 0, -1, false},
	{"blksize\x00abc\x00", 0, -1, false},
	{"blksize\x0070000\x00", 0, -1, false},
	{"tsize\x00-1\x00", 0, -1, false},
}

func TestParseOACK(t *testing.T) {
	for _, tt := range oackTests {
		bs, ts, err := parseOACK([]byte(tt.body))
		if (err == nil) != tt.ok {
			t.Errorf("%q: err %v, want ok=%v", tt.body, err, tt.ok)
			continue
		}
		if tt.ok && (bs != tt.blksize || ts != tt.tsize) {
			t.Errorf("%q: got %d/%d, want %d/%d", tt.body, bs, ts, tt.blksize, tt.tsize)
		}
	}
}

func FuzzParseOACK(f *testing.F) {
	for _, tt := range oackTests {
		f.Add([]byte(tt.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		bs, ts, err := parseOACK(body)
		if err != nil {
			return
		}
		if bs != 0 && (bs < 8 || bs > 65464) {
			t.Errorf("blksize %d out of range", bs)
		}
		if ts < -1 {
			t.Errorf("tsize %d", ts)
		}
	})
}
