package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

// cmdHashPassword implements `bootyard hash-password`: it reads a password
// from stdin (without echo when stdin is a terminal, asking twice) and
// prints a bcrypt hash for password_hash in [[ftp.user]].
func cmdHashPassword(_ context.Context, args []string, e *env) int {
	fs := flag.NewFlagSet("hash-password", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.String("config", "", "configuration file (not needed; accepted for symmetry)")
	cost := fs.Int("cost", 12, fmt.Sprintf("bcrypt cost (%d-%d)", bcrypt.MinCost, bcrypt.MaxCost))
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: bootyard hash-password [--cost N] < password\n\n"+
			"Reads one password from stdin (no echo on a terminal) and prints a bcrypt\n"+
			"hash for password_hash in [[ftp.user]].\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "bootyard hash-password: unexpected argument %q (the password is read from stdin)\n", fs.Arg(0))
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(e.stderr, "bootyard hash-password: --cost %d out of range %d-%d\n", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	pw, err := readPassword(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "bootyard hash-password: %v\n", err)
		return 1
	}
	switch {
	case len(pw) == 0:
		fmt.Fprintln(e.stderr, "bootyard hash-password: empty password")
		return 1
	case len(pw) > 72:
		fmt.Fprintln(e.stderr, "bootyard hash-password: password longer than 72 bytes (bcrypt's limit)")
		return 1
	}
	h, err := bcrypt.GenerateFromPassword(pw, *cost)
	if err != nil {
		fmt.Fprintf(e.stderr, "bootyard hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, string(h))
	return 0
}

// readPassword reads the password: from a terminal without echo (twice, to
// catch typos), otherwise the first line of stdin.
func readPassword(e *env) ([]byte, error) {
	if f, ok := e.stdin.(*os.File); ok && e.stdinTTY {
		fmt.Fprint(e.stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(e.stderr, "Repeat: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return nil, fmt.Errorf("read password: %w", err)
		}
		if string(a) != string(b) {
			return nil, errors.New("passwords do not match")
		}
		return a, nil
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read password: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}
