package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	cases := []struct {
		name  string
		args  []string
		stdin string
		code  int
		check string // password the printed hash must match
		err   string
	}{
		{"ok", []string{"--cost", "4"}, "s3cret pass\n", 0, "s3cret pass", ""},
		{"crlf", []string{"--cost", "4"}, "pw\r\n", 0, "pw", ""},
		{"no newline", []string{"--cost", "4"}, "pw", 0, "pw", ""},
		{"empty", nil, "\n", 1, "", "empty password"},
		{"too long", []string{"--cost", "4"}, strings.Repeat("x", 73) + "\n", 1, "", "72 bytes"},
		{"bad cost", []string{"--cost", "99"}, "pw\n", 2, "", "out of range"},
		{"extra arg", []string{"secret"}, "", 2, "", "unexpected argument"},
		{"help", []string{"--help"}, "", 0, "", "usage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			e := &env{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errb}
			if code := cmdHashPassword(context.Background(), c.args, e); code != c.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, c.code, errb.String())
			}
			if c.err != "" && !strings.Contains(errb.String(), c.err) {
				t.Fatalf("stderr %q lacks %q", errb.String(), c.err)
			}
			if c.check != "" {
				h := strings.TrimSpace(out.String())
				if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(c.check)); err != nil {
					t.Fatalf("hash %q does not match: %v", h, err)
				}
				if strings.Contains(out.String()+errb.String(), c.check) {
					t.Fatal("password echoed")
				}
			}
		})
	}
}
