package fsroot

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var cleanCases = []struct {
	in, want string // want "" = ErrDenied
}{
	{"a", "a"},
	{"/a/b", "a/b"},
	{"//a//b/", "a/b"},
	{"./a/./b", "a/b"},
	{"/", "."},
	{"", "."},
	{"..", ""},
	{"a/../b", ""},
	{"a/..", ""},
	{"a\x00", ""},
	{"a\tb", ""},
	{"a\x7fb", ""},
	{strings.Repeat("x", MaxNameLen), strings.Repeat("x", MaxNameLen)},
	{strings.Repeat("x", MaxNameLen+1), ""},
	{TempPrefix + "abc", ""},
	{"d/" + TempPrefix, ""},
	{"...", "..."},
	{`..\x`, `..\x`},
}

func TestCleanName(t *testing.T) {
	for _, c := range cleanCases {
		got, err := CleanName(c.in)
		if c.want == "" {
			if !errors.Is(err, ErrDenied) {
				t.Errorf("CleanName(%q) = %q, %v; want ErrDenied", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// FuzzCleanName checks that a cleaned name never escapes and is stable.
func FuzzCleanName(f *testing.F) {
	for _, c := range cleanCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CleanName(in)
		if err != nil {
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("CleanName(%q): %v", in, err)
			}
			return
		}
		if strings.HasPrefix(got, "/") || len(got) > MaxNameLen {
			t.Fatalf("CleanName(%q) = %q", in, got)
		}
		for _, p := range strings.Split(got, "/") {
			if p == ".." || strings.HasPrefix(p, TempPrefix) {
				t.Fatalf("CleanName(%q) = %q", in, got)
			}
		}
		if again, err := CleanName(got); err != nil || again != got {
			t.Fatalf("not stable: %q -> %q -> %q %v", in, got, again, err)
		}
	})
}

func testRoot(t *testing.T) (*Root, string) {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	for _, d := range []string{dir, filepath.Join(dir, "up"), filepath.Join(base, "out")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(base, "out", "secret"), []byte("s"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "pub"), []byte("pub"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "private"), []byte("p"), 0o600))
	must(os.Symlink("../out/secret", filepath.Join(dir, "esc")))
	must(os.Symlink("pub", filepath.Join(dir, "in")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	r, err := Open(dir)
	must(err)
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func TestOpenRegular(t *testing.T) {
	r, _ := testRoot(t)
	cases := []struct {
		name  string
		world bool
		want  error // nil = opens
	}{
		{"pub", true, nil},
		{"in", true, nil},
		{"private", false, nil},
		{"private", true, ErrDenied},
		{"esc", false, ErrDenied},
		{"fifo", false, ErrDenied},
		{"up", false, ErrDenied},
		{"missing", false, ErrNotFound},
	}
	for _, c := range cases {
		f, _, err := r.OpenRegular(c.name, c.world)
		if c.want == nil {
			if err != nil {
				t.Errorf("OpenRegular(%q): %v", c.name, err)
				continue
			}
			f.Close()
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("OpenRegular(%q, %v) = %v, want %v", c.name, c.world, err, c.want)
		}
	}
}

func TestUpload(t *testing.T) {
	r, dir := testRoot(t)
	q := NewQuota(100, 0)
	u, err := r.CreateUpload("up/a", UploadOptions{MaxBytes: 60, Quota: q})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.ReadFrom(bytes.NewReader(make([]byte, 50))); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "up/a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("upload visible before Commit: %v", err)
	}
	if err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "up/a")); err != nil || fi.Size() != 50 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after Commit: %v %v", fi, err)
	}
	if _, err := r.CreateUpload("up/a", UploadOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	// Per-file cap.
	u, _ = r.CreateUpload("up/b", UploadOptions{MaxBytes: 10, Quota: q})
	if _, err := u.Write(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over MaxBytes: %v", err)
	}
	u.Abort()
	// Directory quota: 50 used of 100.
	u, _ = r.CreateUpload("up/c", UploadOptions{Quota: q})
	if _, err := io.Copy(u, bytes.NewReader(make([]byte, 51))); !errors.Is(err, ErrQuota) {
		t.Errorf("over quota: %v", err)
	}
	u.Abort()
	u.Abort()
	if q.Used() != 50 {
		t.Errorf("quota used %d after aborts, want 50", q.Used())
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "up"))
	if len(ents) != 1 {
		t.Errorf("leftovers in up/: %v", ents)
	}
	if n, err := r.DirSize("up"); err != nil || n != 50 {
		t.Errorf("DirSize = %d, %v", n, err)
	}
	// Stale temp files are removed.
	if err := os.WriteFile(filepath.Join(dir, "up", TempPrefix+"old"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := r.RemoveStaleUploads("up"); err != nil || n != 1 {
		t.Errorf("RemoveStaleUploads = %d, %v", n, err)
	}
	for _, bad := range []string{".", "missing/x", "esc"} {
		if _, err := r.CreateUpload(bad, UploadOptions{}); err == nil {
			t.Errorf("CreateUpload(%q) succeeded", bad)
		}
	}
}
