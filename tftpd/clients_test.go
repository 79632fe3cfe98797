package tftpd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealClients fetches files of the awkward sizes with every real client
// and checks the sha256 of what arrived. The 34 MiB file wraps the 16-bit
// block number at 512-byte blocks.
func TestRealClients(t *testing.T) {
	root := t.TempDir()
	sizes := []int{0, 1, 511, 512, 513, 8 << 20, 34 << 20}
	sums := map[string]string{}
	for i, n := range sizes {
		name := fmt.Sprintf("f/%d.bin", n)
		b := randBytes(n, uint64(i+1))
		writeFile(t, root, name, b)
		sums[name] = sum(b)
	}
	rendered := []byte("#!ipxe\nkernel images/debian/linux\n")
	deps := Deps{Renderer: RendererFunc(func(_ context.Context, req RenderRequest) ([]byte, bool, error) {
		if req.Name == "ipxe/52-54-00-12-34-56.ipxe" {
			return rendered, true, nil
		}
		return nil, false, nil
	})}
	ts := start(t, testConfig(root), deps)

	clients := []struct {
		name    string
		blksize int // for the large file; the small ones use the default
	}{{"curl", 1468}, {"tftp-hpa", 0}, {"atftp", 1468}, {"busybox", 1468}}
	for _, cl := range clients {
		t.Run(cl.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range sizes {
				name := fmt.Sprintf("f/%d.bin", n)
				blk := 0
				if n == 8<<20 {
					blk = cl.blksize
				}
				local := filepath.Join(dir, fmt.Sprint(n))
				out, err := fetch(t, cl.name, ts.addr, name, local, blk)
				if err != nil {
					t.Fatalf("%s get %s: %v\n%s", cl.name, name, err, out)
				}
				if got := fileSum(t, local); got != sums[name] {
					t.Fatalf("%s get %s: sha256 %s, want %s\n%s", cl.name, name, got, sums[name], out)
				}
			}
			local := filepath.Join(dir, "rendered")
			out, err := fetch(t, cl.name, ts.addr, "ipxe/52-54-00-12-34-56.ipxe", local, 0)
			if err != nil {
				t.Fatalf("%s get rendered: %v\n%s", cl.name, err, out)
			}
			if got, _ := os.ReadFile(local); string(got) != string(rendered) {
				t.Fatalf("%s rendered content = %q, want %q", cl.name, got, rendered)
			}
		})
	}
	st := ts.Stats()
	if want := uint64(len(clients) * (len(sizes) + 1)); st.Completed != want || st.Rendered != uint64(len(clients)) {
		t.Errorf("stats: completed %d (want %d), rendered %d (want %d)", st.Completed, want, st.Rendered, len(clients))
	}
	logs := ts.logs.String()
	for _, want := range []string{"msg=transfer", "resolved=f/35651584.bin", "outcome=ok", "source=rendered", "blksize=1468"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
