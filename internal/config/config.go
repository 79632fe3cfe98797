// Package config loads bootyard's configuration: one TOML file decoded once
// into one struct tree, with defaults filled in, relative paths resolved
// against the file's directory, and every problem reported at once as
// FILE:LINE: key.path: message.
//
// Each package owns its section's type (tftpd.Config, ftpd.Config, …) with
// its defaults and its Validate method; this package composes them, rejects
// unknown keys, and adds the checks that span sections (two services on one
// port).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/bootyard/bootyard/dhcp"
	"github.com/bootyard/bootyard/ftpd"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/cfgerr"
	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
	"github.com/bootyard/bootyard/tftpd"
)

// DefaultPath is the configuration file used when none is given.
const DefaultPath = "/etc/bootyard/bootyard.toml"

// Server is the [server] section: process-wide settings.
type Server struct {
	// StateDir holds leases, certificates, the transfer log and, by default,
	// the image store. Default "/var/lib/bootyard". Created when missing.
	StateDir string `toml:"state_dir"`
	// User is the account the daemon drops to after binding its ports when
	// started as root. Default "bootyard", falling back to "nobody".
	User string `toml:"user"`
	// AllowRoot, with User = "", keeps root after start-up. Default false.
	AllowRoot bool `toml:"allow_root"`
	// LogFormat is text or json. Default "text".
	LogFormat string `toml:"log_format"`
	// LogLevel is debug, info, warn or error. Default "info".
	LogLevel string `toml:"log_level"`
	// ShutdownTimeout bounds the drain of running transfers on SIGINT or
	// SIGTERM. Default "30s".
	ShutdownTimeout units.Duration `toml:"shutdown_timeout"`
}

// Config is the whole configuration file.
type Config struct {
	Server   Server             `toml:"server"`
	DHCP     dhcp.Config        `toml:"dhcp"`
	TFTP     tftpd.Config       `toml:"tftp"`
	FTP      ftpd.Config        `toml:"ftp"`
	Images   images.Config      `toml:"images"`
	Profiles []profiles.Profile `toml:"profile"`
	Machines []profiles.Machine `toml:"machine"`
	Rules    []profiles.Rule    `toml:"rule"`

	// File is the path the configuration was read from ("" for the demo).
	File string `toml:"-"`
	// Demo marks the embedded demo configuration.
	Demo bool `toml:"-"`
	// Warnings are problems that do not stop start-up (e.g. a profile
	// naming an image that is not staged yet).
	Warnings []string `toml:"-"`
}

// Default returns a configuration with every documented default.
func Default() *Config {
	return &Config{
		Server: Server{
			StateDir:        "/var/lib/bootyard",
			User:            "bootyard",
			LogFormat:       "text",
			LogLevel:        "info",
			ShutdownTimeout: units.Duration(30 * time.Second),
		},
		DHCP: dhcp.DefaultConfig(),
		TFTP: tftpd.DefaultConfig(),
		FTP:  ftpd.DefaultConfig(),
	}
}

// Error is one problem in a configuration file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path with array indices, "" for syntax errors
	Msg  string
}

// Error formats the problem as FILE:LINE: key.path: message.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Load reads, decodes and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, filepath.Dir(abs), data)
}

// Parse decodes and validates data read from file; relative paths resolve
// against baseDir. On failure the error is an Errors value.
func Parse(file, baseDir string, data []byte) (*Config, error) {
	cfg := Default()
	cfg.File = file
	text := string(data)
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
	if err != nil {
		return nil, Errors{decodeError(file, text, err)}
	}
	ix := scanKeys(text)
	var errs Errors
	for _, k := range md.Undecoded() {
		plain := k.String()
		found := false
		for _, kl := range ix.keys {
			if kl.plain == plain {
				errs = append(errs, Error{File: file, Line: kl.line, Key: kl.indexed, Msg: "unknown key"})
				found = true
			}
		}
		if !found {
			errs = append(errs, Error{File: file, Key: plain, Msg: "unknown key"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	cfg.resolve(baseDir)
	problems, warnings := cfg.validate(baseDir)
	cfg.Warnings = warnings
	for _, p := range problems {
		errs = append(errs, Error{File: file, Line: ix.Line(p.Key), Key: p.Key, Msg: p.Msg})
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool {
			li, lj := errs[i].Line, errs[j].Line
			if li == 0 {
				li = 1 << 30
			}
			if lj == 0 {
				lj = 1 << 30
			}
			return li < lj
		})
		return nil, errs
	}
	return cfg, nil
}

var typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// decodeError turns a decoder error into an Error with the best line known.
func decodeError(file, text string, err error) Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line := pe.Position.Line
		msg := pe.Message
		// The lexer reports a construct left open at the end of a line (an
		// unterminated array, table name or string, a missing value) where
		// it notices: at the start of the next line. Name the line where
		// the construct is: the line of the last key when it lies above,
		// else the previous non-blank line.
		if line > 1 && atLineStart(text, pe.Position.Start) {
			if kl := keyLineAbove(text, pe.LastKey, line); kl > 0 {
				line = kl
			} else {
				line = prevContentLine(text, line)
			}
		}
		key := pe.LastKey
		if key != "" {
			key = indexedKey(text, key, line)
		}
		return Error{File: file, Line: line, Key: key, Msg: cleanMsg(msg)}
	}
	if m := typeErrRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Error{File: file, Line: line, Key: indexedKey(text, m[2], line), Msg: cleanMsg(m[3])}
	}
	return Error{File: file, Msg: cleanMsg(strings.TrimPrefix(err.Error(), "toml: "))}
}

// atLineStart reports whether byte offset off is the first byte of a line
// or a newline (the decoder counts a newline as part of the next line).
func atLineStart(text string, off int) bool {
	if off < 0 || off > len(text) {
		return false
	}
	return off == 0 || off == len(text) || text[off] == '\n' || text[off-1] == '\n'
}

// keyLineAbove finds the line, at or above line, that sets the last segment
// of key ("allow" for "tftp.allow"), or 0. It does not look past the header
// of the table the key lives in.
func keyLineAbove(text, key string, line int) int {
	if key == "" {
		return 0
	}
	seg := key[strings.LastIndex(key, ".")+1:]
	lines := strings.Split(text, "\n")
	for l := min(line, len(lines)); l >= 1; l-- {
		t := strings.TrimSpace(lines[l-1])
		if rest, ok := strings.CutPrefix(t, seg); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
			return l
		}
		if strings.HasPrefix(t, "[") && l < line {
			return 0 // the key's table ends here: the key is not above
		}
	}
	return 0
}

func prevContentLine(text string, line int) int {
	lines := strings.Split(text, "\n")
	for l := line - 1; l >= 1; l-- {
		if strings.TrimSpace(lines[l-1]) != "" {
			return l
		}
	}
	return line
}

// indexedKey finds the indexed form of a plain key set on line.
func indexedKey(text, plain string, line int) string {
	ix := scanKeys(text)
	for _, kl := range ix.keys {
		if kl.plain == plain && kl.line == line {
			return kl.indexed
		}
	}
	return plain
}

// cleanMsg makes the decoder's messages read like ours.
func cleanMsg(s string) string {
	s = strings.TrimPrefix(s, "toml: ")
	s = strings.Replace(s, "incompatible types: TOML value has type", "wrong type: value is", 1)
	s = strings.Replace(s, "; destination has type", ", want", 1)
	return s
}

// resolve fills derived defaults and makes relative paths absolute.
func (c *Config) resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.Server.StateDir)
	abs(&c.TFTP.Root)
	abs(&c.FTP.Root)
	abs(&c.FTP.TLSCert)
	abs(&c.FTP.TLSKey)
	abs(&c.FTP.Xferlog)
	abs(&c.Images.Dir)
	for i := range c.FTP.Listeners {
		abs(&c.FTP.Listeners[i].Root)
	}
	if c.Images.Dir == "" && c.Server.StateDir != "" {
		c.Images.Dir = filepath.Join(c.Server.StateDir, "images")
	}
	if c.FTP.Xferlog == "" && c.Server.StateDir != "" {
		c.FTP.Xferlog = filepath.Join(c.Server.StateDir, "xferlog")
	}
}

var (
	logFormats = map[string]bool{"text": true, "json": true}
	logLevels  = map[string]bool{"debug": true, "info": true, "warn": true, "error": true}
)

// validate runs every section's checks and the cross-section ones.
func (c *Config) validate(base string) (cfgerr.List, []string) {
	var l cfgerr.List
	s := c.Server
	if s.StateDir == "" {
		l.Addf("server.state_dir", "required")
	}
	if !logFormats[s.LogFormat] {
		l.Addf("server.log_format", "unknown format %q (want text or json)", s.LogFormat)
	}
	if !logLevels[s.LogLevel] {
		l.Addf("server.log_level", "unknown level %q (want debug, info, warn or error)", s.LogLevel)
	}
	if s.User == "" && !s.AllowRoot {
		l.Addf("server.user", "empty: set a user to drop to, or allow_root = true to keep root")
	}
	if s.User != "" && s.AllowRoot {
		l.Addf("server.allow_root", "allow_root = true needs user = \"\" (keeping root and naming a user contradict)")
	}
	if s.ShutdownTimeout <= 0 {
		l.Addf("server.shutdown_timeout", "must be positive")
	}
	l.Merge("dhcp", c.DHCP.Validate())
	l.Merge("tftp", c.TFTP.Validate())
	l.Merge("ftp", c.FTP.Validate())
	c.crossCheck(&l)
	var warnings []string
	var idx profiles.ImageIndex
	if fi, err := os.Stat(c.Images.Dir); err == nil && fi.IsDir() {
		idx = images.DirIndex(c.Images.Dir) // reads manifests, creates nothing
	}
	_, pl, w := profiles.Compile(profiles.Input{
		Profiles: c.Profiles, Machines: c.Machines, Rules: c.Rules, BaseDir: base, Images: idx,
	})
	l = append(l, pl...)
	warnings = append(warnings, w...)
	return l, warnings
}

// crossCheck finds listeners of different services that would collide.
func (c *Config) crossCheck(l *cfgerr.List) {
	type ep struct {
		key  string
		addr units.ListenAddr
	}
	var udp, tcp []ep
	if c.DHCP.Mode != dhcp.ModeOff {
		udp = append(udp, ep{"dhcp.port", wildcardPort(c.DHCP.Port)})
		if c.DHCP.ProxyPort != 0 {
			udp = append(udp, ep{"dhcp.proxy_port", wildcardPort(c.DHCP.ProxyPort)})
		}
	}
	if c.TFTP.Enabled {
		udp = append(udp, ep{"tftp.listen", c.TFTP.Listen})
	}
	if c.FTP.Enabled {
		tcp = append(tcp, ep{"ftp.listen", c.FTP.Listen}, ep{"ftp.implicit_tls_listen", c.FTP.ImplicitTLSListen})
		for i, ln := range c.FTP.Listeners {
			tcp = append(tcp, ep{fmt.Sprintf("ftp.listener[%d].listen", i), ln.Listen})
		}
		for _, e := range tcp {
			if !e.addr.IsZero() && c.FTP.PassivePorts.Contains(e.addr.Port) {
				l.Addf("ftp.passive_ports", "%s includes the port of %s (%s)", c.FTP.PassivePorts, e.key, e.addr)
			}
		}
	}
	check := func(eps []ep) {
		for i := 0; i < len(eps); i++ {
			for j := i + 1; j < len(eps); j++ {
				a, b := eps[i], eps[j]
				if strings.SplitN(a.key, ".", 2)[0] == strings.SplitN(b.key, ".", 2)[0] {
					continue // a section checks its own listeners
				}
				if overlaps(a.addr, b.addr) {
					l.Addf(b.key, "%s conflicts with %s (%s)", b.addr, a.key, a.addr)
				}
			}
		}
	}
	check(udp)
	check(tcp)
}

// wildcardPort is the address a DHCP socket binds: every address, port p.
func wildcardPort(p int) units.ListenAddr {
	a, err := units.ParseListenAddr(":" + strconv.Itoa(p))
	if err != nil {
		return units.ListenAddr{}
	}
	return a
}

// overlaps is ListenAddr.Overlaps that also treats a DHCP port (bound on the
// wildcard address, Host "") as set.
func overlaps(a, b units.ListenAddr) bool {
	if a.Port == 0 || b.Port == 0 || a.Port != b.Port {
		return false
	}
	if a.IsWildcard() || b.IsWildcard() {
		return true
	}
	return a.Host == b.Host
}
