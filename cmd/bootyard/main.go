// Command bootyard is the PXE boot provisioning appliance: DHCP (proxy or
// full server), hardened TFTP, FTP/FTPS with an anonymous drop box, and an
// image store, in one process. Run `bootyard help` for the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/bootyard/bootyard/internal/config"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // runtime failure
	exitUsage   = 2 // usage or configuration error
)

// env is what a subcommand may touch besides its arguments, so tests run
// subcommands in-process.
type env struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	stdinTTY  bool
	stdoutTTY bool
	// signals delivers SIGINT/SIGTERM/SIGHUP to serve; nil means the real
	// process signals.
	signals chan os.Signal
}

type command struct {
	run     func(ctx context.Context, args []string, e *env) int
	summary string
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"serve":         {cmdServe, "run the appliance in the foreground"},
		"check":         {cmdCheck, "validate a configuration file and print every problem"},
		"images":        {cmdImages, "stage, list, verify and remove OS images"},
		"profiles":      {cmdProfiles, "show which plan and files a machine gets (profiles match)"},
		"leases":        {cmdLeases, "list DHCP leases"},
		"status":        {cmdStatus, "show a running daemon's services and counters"},
		"hash-password": {cmdHashPassword, "read a password on stdin and print a bcrypt hash for [[ftp.user]]"},
		"version":       {cmdVersion, "print the version"},
		"help":          {cmdHelp, "show this help"},
	}
}

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	e := &env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		stdinTTY:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTTY: term.IsTerminal(int(os.Stdout.Fd())),
	}
	os.Exit(run(context.Background(), os.Args[1:], e))
}

// run dispatches args (without the program name) to a subcommand.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(e.stdout)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(e.stderr, "bootyard: unknown command %q\n\n", name)
		usage(e.stderr)
		return exitUsage
	}
	return c.run(ctx, args[1:], e)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "bootyard — PXE boot provisioning appliance\n\nUsage: bootyard <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nEvery command takes --config FILE (default "+config.DefaultPath+") and --help.\n"+
		"Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n")
}

// newFlags returns a flag set for a subcommand that prints its usage to
// e.stderr and returns errors instead of exiting.
func newFlags(name, synopsis string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bootyard %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and maps the outcome to an exit code: -1 means go
// on, exitOK means --help was asked for, exitUsage a bad flag.
func parseFlags(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	default:
		return exitUsage
	}
}

// configPath picks the configuration file: the flag when given, else the
// default path when it exists, else "" (no file).
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if _, err := os.Stat(config.DefaultPath); err == nil {
		return config.DefaultPath
	}
	return ""
}

// loadConfig loads the configuration at path ("" means the default path) and
// prints every problem; the int is -1 on success or the exit code to return.
func loadConfig(e *env, path string) (*config.Config, int) {
	p := configPath(path)
	if p == "" {
		fmt.Fprintf(e.stderr, "bootyard: no configuration: %s does not exist (use --config FILE)\n", config.DefaultPath)
		return nil, exitUsage
	}
	cfg, err := config.Load(p)
	if err != nil {
		printConfigError(e.stderr, err)
		return nil, exitUsage
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", p, w)
	}
	return cfg, -1
}

func printConfigError(w io.Writer, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, "bootyard:", err)
}

func cmdVersion(_ context.Context, args []string, e *env) int {
	fs := newFlags("version", "version", e)
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	fmt.Fprintln(e.stdout, "bootyard", version)
	return exitOK
}

func cmdHelp(_ context.Context, args []string, e *env) int {
	if len(args) > 0 {
		if c, ok := commands[args[0]]; ok && args[0] != "help" {
			return c.run(context.Background(), []string{"--help"}, e)
		}
		fmt.Fprintf(e.stderr, "bootyard: unknown command %q\n", args[0])
		return exitUsage
	}
	usage(e.stdout)
	return exitOK
}

func cmdCheck(_ context.Context, args []string, e *env) int {
	fs := newFlags("check", "check [--config FILE] [FILE]", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitUsage
	}
	if fs.NArg() == 1 {
		if *path != "" && *path != fs.Arg(0) {
			fmt.Fprintln(e.stderr, "bootyard check: give the file once, as --config FILE or as FILE")
			return exitUsage
		}
		*path = fs.Arg(0)
	}
	cfg, code := loadConfig(e, *path)
	if code >= 0 {
		return code
	}
	fmt.Fprintf(e.stdout, "%s: ok (%s)\n", cfg.File, summary(cfg))
	return exitOK
}

// summary is a one-line description of what a configuration runs.
func summary(cfg *config.Config) string {
	var parts []string
	parts = append(parts, "dhcp "+cfg.DHCP.Mode)
	if cfg.TFTP.Enabled {
		parts = append(parts, "tftp on "+cfg.TFTP.Listen.String())
	} else {
		parts = append(parts, "tftp off")
	}
	if cfg.FTP.Enabled {
		parts = append(parts, "ftp on "+cfg.FTP.Listen.String())
	} else {
		parts = append(parts, "ftp off")
	}
	parts = append(parts, fmt.Sprintf("%d profiles, %d machines, %d rules", len(cfg.Profiles), len(cfg.Machines), len(cfg.Rules)))
	return strings.Join(parts, ", ")
}

// notifySignals returns the channel serve listens on.
func notifySignals(e *env) (chan os.Signal, func()) {
	if e.signals != nil {
		return e.signals, func() {}
	}
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}
