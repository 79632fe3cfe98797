package control

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCall(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	if err := Call(context.Background(), path, "status", nil); !errors.Is(err, ErrNoDaemon) {
		t.Fatalf("Call with no daemon: %v, want ErrNoDaemon", err)
	}
	// A stale socket file from a crashed daemon is replaced.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	s.Handle("echo", func(context.Context) (any, error) { return map[string]int{"n": 7}, nil })
	s.Handle("fail", func(context.Context) (any, error) { return nil, errors.New("boom") })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()

	// A second daemon on the same state directory is refused.
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "another bootyard") {
		t.Fatalf("second Listen: %v", err)
	}
	var out map[string]int
	if err := Call(context.Background(), path, "echo", &out); err != nil || out["n"] != 7 {
		t.Fatalf("echo: %v %v", out, err)
	}
	if err := Call(context.Background(), path, "fail", nil); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("fail: %v", err)
	}
	if err := Call(context.Background(), path, "nope", nil); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown: %v", err)
	}
	// Garbage and an oversized request get "bad request"; the server goes on.
	for _, junk := range [][]byte{[]byte("{\"cmd\":"), []byte("\x00\xff not json\n"), append([]byte(`{"cmd":"`), bytes.Repeat([]byte("a"), 8192)...)} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		c.(*net.UnixConn).CloseWrite()
		reply, _ := io.ReadAll(c)
		c.Close()
		if !strings.Contains(string(reply), "bad request") {
			t.Errorf("reply to %.20q: %q, want bad request", junk, reply)
		}
	}
	if err := Call(context.Background(), path, "echo", &out); err != nil {
		t.Fatalf("echo after junk: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket not removed on shutdown: %v", err)
	}
}
