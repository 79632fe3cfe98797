package privdrop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The drop is tested in a child process (this test binary re-executed): it
// changes the identity of the whole process, which must not leak into the
// other tests.
func TestMain(m *testing.M) {
	if secret := os.Getenv("PRIVDROP_CHILD_SECRET"); secret != "" {
		os.Exit(child(secret))
	}
	os.Exit(m.Run())
}

func child(secret string) int {
	acct, _, err := Lookup("bootyard-no-such-user", true)
	if err != nil {
		fmt.Println("lookup:", err)
		return 1
	}
	if err := Drop(acct); err != nil {
		fmt.Println("drop:", err)
		return 1
	}
	// Root-only file must now be closed to us.
	if _, err := os.ReadFile(secret); !errors.Is(err, fs.ErrPermission) {
		fmt.Println("read secret after drop: want permission denied, got", err)
		return 1
	}
	fmt.Printf("dropped uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	return 0
}

func TestDropAsRoot(t *testing.T) {
	if !IsRoot() {
		t.Skip("needs root to drop privileges (CI runs as root)")
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PRIVDROP_CHILD_SECRET="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	nobody, _, err := Lookup(FallbackUser, false)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("dropped uid=%d gid=%d", nobody.UID, nobody.GID)
	if !strings.Contains(string(out), want) {
		t.Fatalf("child output %q, want %q", out, want)
	}
}

func TestLookup(t *testing.T) {
	if _, _, err := Lookup("root", false); err == nil {
		t.Fatal("Lookup(root) succeeded: dropping to uid 0 must be refused")
	}
	if _, _, err := Lookup("bootyard-no-such-user", false); err == nil {
		t.Fatal("Lookup of a missing user without fallback succeeded")
	}
	a, fb, err := Lookup("bootyard-no-such-user", true)
	if err != nil || !fb || a.Name != FallbackUser {
		t.Fatalf("fallback lookup = %+v, %v, %v; want nobody, true, nil", a, fb, err)
	}
}

func TestVerifyRefusesRoot(t *testing.T) {
	if !IsRoot() {
		t.Skip("needs root: Verify must fail while the process can still become root")
	}
	if err := Verify(Account{UID: 0, GID: 0}); err == nil {
		t.Fatal("Verify passed for a process that can regain root")
	}
}
