package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// writeTree creates files (path → content) under a new temp directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestAddGetListRemove(t *testing.T) {
	s := openStore(t)
	src := writeTree(t, map[string]string{
		"tree/linux":                "KERNEL",
		"tree/initrd.gz":            "INITRD",
		"tree/sub/deep/.treeinfo":   "TREEINFO",
		"extra/debian-12-amd64.iso": "ISO",
	})
	if err := os.Symlink("sub", filepath.Join(src, "tree", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("linux", filepath.Join(src, "tree", "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	var warns []string
	var lastDone, lastTotal int64
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	im, err := s.Add(context.Background(), "debian-12", []string{filepath.Join(src, "tree"), filepath.Join(src, "extra", "debian-12-amd64.iso")}, AddOptions{
		Description: "Debian 12 netboot",
		Progress:    func(d, tot int64) { lastDone, lastTotal = d, tot },
		Warn:        func(m string) { warns = append(warns, m) },
		Now:         func() time.Time { return fixed },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []File{
		{Path: "debian-12-amd64.iso", Size: 3, SHA256: sum("ISO"), Role: RoleISO},
		{Path: "initrd.gz", Size: 6, SHA256: sum("INITRD"), Role: RoleInitrd},
		{Path: "linux", Size: 6, SHA256: sum("KERNEL"), Role: RoleKernel},
		{Path: "sub/deep/.treeinfo", Size: 8, SHA256: sum("TREEINFO"), Role: RoleOther},
		{Path: "vmlinuz", Size: 6, SHA256: sum("KERNEL"), Role: RoleKernel},
	}
	if fmt.Sprint(im.Files) != fmt.Sprint(want) {
		t.Errorf("files:\n got %v\nwant %v", im.Files, want)
	}
	if !im.Added.Equal(fixed) || im.Description != "Debian 12 netboot" {
		t.Errorf("added %v description %q", im.Added, im.Description)
	}
	if lastDone != 29 || lastTotal != 29 {
		t.Errorf("progress ended at %d/%d, want 29/29", lastDone, lastTotal)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "dirlink") {
		t.Errorf("warnings %q, want one about dirlink", warns)
	}
	fi, err := os.Stat(filepath.Join(s.Dir(), "debian-12", "linux"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("published file mode: %v %v", fi, err)
	}

	got, err := s.Get("debian-12")
	if err != nil || fmt.Sprint(got.Files) != fmt.Sprint(want) || got.Size() != 29 {
		t.Errorf("Get: %v %v", got, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "debian-12" {
		t.Errorf("List: %v %v", list, err)
	}
	files, ok := s.Lookup("debian-12")
	if !ok || strings.Join(files, ",") != "debian-12-amd64.iso,initrd.gz,linux,sub/deep/.treeinfo,vmlinuz" {
		t.Errorf("Lookup: %v %v", files, ok)
	}
	if _, ok := s.Lookup("nope"); ok {
		t.Error("Lookup(nope) ok")
	}
	if probs, err := s.Verify(context.Background()); err != nil || len(probs) != 0 {
		t.Errorf("Verify of a fresh image: %v %v", probs, err)
	}

	// Adding again without Replace fails and leaves the old image.
	src2 := writeTree(t, map[string]string{"linux": "NEW"})
	if _, err := s.Add(context.Background(), "debian-12", []string{filepath.Join(src2, "linux")}, AddOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("add over existing: %v, want ErrExists", err)
	}
	if b, _ := fs.ReadFile(s.FS(), "debian-12/linux"); string(b) != "KERNEL" {
		t.Errorf("after refused add: %q", b)
	}
	if _, err := s.Add(context.Background(), "debian-12", []string{filepath.Join(src2, "linux")}, AddOptions{Replace: true, ReplaceGrace: -1}); err != nil {
		t.Fatal(err)
	}
	if b, _ := fs.ReadFile(s.FS(), "debian-12/linux"); string(b) != "NEW" {
		t.Errorf("after replace: %q", b)
	}
	if _, err := fs.Stat(s.FS(), "debian-12/initrd.gz"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old file survived replace: %v", err)
	}
	assertStagingEmpty(t, s.Dir())

	if err := s.Remove("debian-12"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("debian-12"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove("debian-12"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	assertStagingEmpty(t, s.Dir())
}

func assertStagingEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, stagingDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("staging not empty: %v", names)
	}
}

func TestAddErrors(t *testing.T) {
	s := openStore(t)
	a := writeTree(t, map[string]string{"linux": "A"})
	b := writeTree(t, map[string]string{"linux": "B"})
	empty := t.TempDir()
	tests := []struct {
		name    string
		image   string
		sources []string
		want    string
	}{
		{"bad name", "../x", []string{a}, "invalid name"},
		{"dot name", ".hidden", []string{a}, "invalid name"},
		{"slash", "a/b", []string{a}, "invalid name"},
		{"control", "a\x01", []string{a}, "invalid name"},
		{"no sources", "x", nil, "no source files"},
		{"missing source", "x", []string{filepath.Join(a, "nope")}, "no such file"},
		{"collision", "x", []string{a, b}, "both land on \"linux\""},
		{"empty dir", "x", []string{empty}, "hold no files"},
		{"manifest name", "x", []string{writeTree(t, map[string]string{ManifestName: "x"})}, "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Add(context.Background(), tt.image, tt.sources, AddOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("failed adds published %v", list)
	}
	assertStagingEmpty(t, s.Dir())
}

func TestValidName(t *testing.T) {
	for _, n := range []string{"debian-12", "a", "rescue_1.2+x", strings.Repeat("a", MaxNameLen)} {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", ".x", "-x", "a/b", "a b", "a\x00", "é", strings.Repeat("a", MaxNameLen+1)} {
		if err := ValidName(n); err == nil {
			t.Errorf("ValidName(%q) accepted", n)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, n := range []string{"debian-12", "..", ".x", "a/b", "a\x00", "x..y"} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if ValidName(n) != nil {
			return
		}
		// An accepted name is one plain path element that is not hidden.
		if !fs.ValidPath(n) || strings.ContainsAny(n, "/\\") || n[0] == '.' || n == ".." || hasHiddenPrefix(n) {
			t.Fatalf("ValidName accepted %q", n)
		}
	})
}

func TestVerifyFindsEveryProblem(t *testing.T) {
	s := openStore(t)
	src := writeTree(t, map[string]string{"a": "AAAA", "b": "BBBB", "c": "CCCC", "d": "DDDD"})
	if _, err := s.Add(context.Background(), "img", []string{src}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(context.Background(), "good", []string{src}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(s.Dir(), "img")
	must(t, os.WriteFile(filepath.Join(d, "a"), []byte("AAAX"), 0o644)) // same size, other bytes
	must(t, os.WriteFile(filepath.Join(d, "b"), []byte("BB"), 0o644))   // truncated
	must(t, os.Remove(filepath.Join(d, "c")))                           // missing
	must(t, os.WriteFile(filepath.Join(d, "zz"), []byte("?"), 0o644))   // extra
	must(t, os.MkdirAll(filepath.Join(s.Dir(), "stray"), 0o755))        // no manifest

	probs, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		got = append(got, p.Image+"/"+p.Path+":"+p.Kind)
	}
	want := []string{"img/a:corrupt", "img/b:size", "img/c:missing", "img/zz:extra", "stray/:manifest"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems:\n got %v\nwant %v", got, want)
	}
	probs, err = s.Verify(context.Background(), "good", "absent")
	if err != nil || len(probs) != 1 || probs[0].Image != "absent" || probs[0].Kind != "missing" {
		t.Errorf("Verify(good, absent) = %v %v", probs, err)
	}
	if !strings.Contains(probs[0].String(), "absent: missing") {
		t.Errorf("String: %q", probs[0].String())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFS(t *testing.T) {
	s := openStore(t)
	src := writeTree(t, map[string]string{"linux": "K", "initrd.gz": "I", "sub/x.cfg": "X"})
	if _, err := s.Add(context.Background(), "one", []string{src}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(context.Background(), "two", []string{filepath.Join(src, "linux")}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	// Debris that must stay hidden.
	must(t, os.MkdirAll(filepath.Join(s.Dir(), stagingDir, "add-x", "half"), 0o755))
	if err := fstest.TestFS(s.FS(), "one/linux", "one/initrd.gz", "one/sub/x.cfg", "two/linux"); err != nil {
		t.Fatal(err)
	}
	for _, hidden := range []string{".staging", ".staging/add-x", ".lock", "one/" + ManifestName, "../images", "/etc/passwd"} {
		if _, err := s.FS().Open(hidden); err == nil {
			t.Errorf("Open(%q) succeeded", hidden)
		}
	}
	ents, err := fs.ReadDir(s.FS(), ".")
	if err != nil || len(ents) != 2 {
		t.Errorf("top listing: %v %v", ents, err)
	}
	ents, err = fs.ReadDir(s.FS(), "one")
	if err != nil || len(ents) != 3 {
		t.Errorf("image listing: %v %v", ents, err)
	}
	f, err := s.FS().Open("one/linux")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*os.File); !ok {
		t.Errorf("regular file is %T, want *os.File (sendfile)", f)
	}
}

func TestFSRefusesEscapes(t *testing.T) {
	s := openStore(t)
	src := writeTree(t, map[string]string{"linux": "K"})
	if _, err := s.Add(context.Background(), "one", []string{src}, AddOptions{}); err != nil {
		t.Fatal(err)
	}
	outside := writeTree(t, map[string]string{"secret": "S"})
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(s.Dir(), "one", "abs")))
	must(t, os.Symlink("../../"+filepath.Base(filepath.Dir(s.Dir())), filepath.Join(s.Dir(), "one", "rel")))
	must(t, syscall.Mkfifo(filepath.Join(s.Dir(), "one", "fifo"), 0o644))
	for _, n := range []string{"one/abs", "one/rel/images", "one/fifo"} {
		if f, err := s.FS().Open(n); err == nil {
			f.Close()
			t.Errorf("Open(%q) succeeded", n)
		}
	}
}

// TestReplaceUnderConcurrentReaders: readers going through FS while the
// image is added and replaced see either no image (before the first
// publish) or a complete version, never a missing or partial file after the
// first publish.
func TestReplaceUnderConcurrentReaders(t *testing.T) {
	s := openStore(t)
	const size = 256 << 10
	names := []string{"a", "b", "c"}
	versions := make([]string, 4)
	for v := range versions {
		files := map[string]string{}
		for _, n := range names {
			files[n] = strings.Repeat(string(rune('0'+v)), size)
		}
		versions[v] = writeTree(t, files)
	}
	var published atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	var reads atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				was := published.Load()
				for _, n := range names {
					b, err := fs.ReadFile(s.FS(), "img/"+n)
					if err != nil {
						if errors.Is(err, fs.ErrNotExist) && !was {
							continue
						}
						errc <- fmt.Errorf("read %s: %v", n, err)
						return
					}
					if len(b) != size || strings.Count(string(b), string(b[0])) != size {
						errc <- fmt.Errorf("read %s: partial or mixed content (%d bytes)", n, len(b))
						return
					}
					reads.Add(1)
				}
			}
		}()
	}
	for v, dir := range versions {
		if _, err := s.Add(context.Background(), "img", []string{dir}, AddOptions{Replace: v > 0, ReplaceGrace: 300 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		published.Store(true)
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Error("readers read nothing")
	}
	assertStagingEmpty(t, s.Dir())
}

func TestAddCancelled(t *testing.T) {
	s := openStore(t)
	big := filepath.Join(t.TempDir(), "big.img")
	must(t, os.WriteFile(big, nil, 0o644))
	must(t, os.Truncate(big, 8<<20))
	ctx, cancel := context.WithCancel(context.Background())
	_, err := s.Add(ctx, "big", []string{big}, AddOptions{Progress: func(done, total int64) {
		if done >= 2<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if _, err := s.Get("big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancelled add is visible: %v", err)
	}
	assertStagingEmpty(t, s.Dir())
}

// TestOpenKeepsLiveStaging: Open removes debris but not the staging
// directory of an add that is still running (its lock is held).
func TestOpenKeepsLiveStaging(t *testing.T) {
	s := openStore(t)
	live := stagingDir + "/add-live"
	lf, err := s.createStageLock(live + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	must(t, os.MkdirAll(filepath.Join(s.Dir(), live), 0o755))
	must(t, os.MkdirAll(filepath.Join(s.Dir(), stagingDir, "add-dead", "x"), 0o755))
	must(t, os.WriteFile(filepath.Join(s.Dir(), stagingDir, "add-dead2.lock"), nil, 0o600))
	must(t, os.MkdirAll(filepath.Join(s.Dir(), stagingDir, "add-dead2"), 0o755))
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), stagingDir))
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != "add-live,add-live.lock" {
		t.Errorf("staging after Open: %v", got)
	}
}

// The child side of TestInterruptedAdd: add a big file slowly, announcing
// on stdout when copying has started.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BOOTYARD_IMAGES_CHILD_STORE"); dir != "" {
		os.Exit(childAdd(dir, os.Getenv("BOOTYARD_IMAGES_CHILD_SRC")))
	}
	os.Exit(m.Run())
}

func childAdd(dir, src string) int {
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	announced := false
	_, err = s.Add(context.Background(), "slow", []string{src}, AddOptions{Progress: func(done, total int64) {
		if !announced && done >= 4<<20 {
			announced = true
			fmt.Println("copying")
		}
		time.Sleep(20 * time.Millisecond)
	}})
	fmt.Fprintln(os.Stderr, "child add finished:", err)
	return 0
}

// TestInterruptedAdd kills (SIGKILL) a process in the middle of an add:
// nothing is published, and the next Open removes the debris.
func TestInterruptedAdd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	big := filepath.Join(t.TempDir(), "big.iso")
	must(t, os.WriteFile(big, nil, 0o644))
	must(t, os.Truncate(big, 64<<20))

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BOOTYARD_IMAGES_CHILD_STORE="+dir, "BOOTYARD_IMAGES_CHILD_SRC="+big)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if l != "copying" {
			t.Fatalf("child said %q (stderr %s)", l, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("child never started copying (stderr %s)", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The half-copied image is invisible, even before any cleanup.
	ents, err := os.ReadDir(filepath.Join(dir, stagingDir))
	if err != nil || len(ents) == 0 {
		t.Fatalf("expected staging debris after the kill: %v %v", ents, err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get("slow"); !errors.Is(err, ErrNotFound) {
		t.Errorf("killed add is visible: %v", err)
	}
	if _, err := fs.Stat(s.FS(), "slow/big.iso"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("killed add is visible in FS: %v", err)
	}
	assertStagingEmpty(t, dir)
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("List after killed add: %v", list)
	}
}
