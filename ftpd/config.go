package ftpd

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bootyard/bootyard/internal/cfgerr"
	"github.com/bootyard/bootyard/internal/units"
)

// Config is the [ftp] section of the configuration file.
type Config struct {
	// Enabled turns the FTP service on. Default true.
	Enabled bool `toml:"enabled"`
	// Listen is the control address for plain FTP and explicit FTPS
	// (AUTH TLS). Default ":21".
	Listen units.ListenAddr `toml:"listen"`
	// ImplicitTLSListen is the control address for implicit FTPS. Default
	// off; ":990" is the usual choice.
	ImplicitTLSListen units.ListenAddr `toml:"implicit_tls_listen"`
	// Banner is the greeting sent on connect. Default "bootyard FTP ready".
	Banner string `toml:"banner"`
	// Root is the public tree. Default "/srv/bootyard/ftp". Published images
	// appear under images/ inside it.
	Root string `toml:"root"`
	// PassivePorts is the range for passive data connections.
	// Default "30000-30100".
	PassivePorts units.PortRange `toml:"passive_ports"`
	// PublicAddress is announced in PASV replies (for NAT). Default: the
	// control connection's local address.
	PublicAddress units.Addr `toml:"public_address"`
	// Active allows PORT/EPRT, only to the control connection's peer and a
	// port >= 1024. Default true.
	Active bool `toml:"active"`
	// RequireTLS makes named users use AUTH TLS before login and PROT P for
	// data. Default true.
	RequireTLS bool `toml:"require_tls"`
	// AllowPlaintextLogin lets named users log in without TLS. Default false.
	AllowPlaintextLogin bool `toml:"allow_plaintext_login"`
	// TLSCert and TLSKey name a PEM certificate and key. Default: a
	// self-signed ECDSA certificate generated into the state directory.
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the key file matching TLSCert.
	TLSKey string `toml:"tls_key"`
	// Xferlog is the xferlog-format transfer log. Default <state_dir>/xferlog.
	Xferlog string `toml:"xferlog"`
	// MaxClients caps concurrent control connections. Default 200.
	MaxClients int `toml:"max_clients"`
	// MaxPerIP caps concurrent control connections per client address.
	// Default 8.
	MaxPerIP int `toml:"max_per_ip"`
	// LoginTimeout disconnects a client that has not logged in. Default "30s".
	LoginTimeout units.Duration `toml:"login_timeout"`
	// IdleTimeout disconnects an idle logged-in client. Default "5m".
	IdleTimeout units.Duration `toml:"idle_timeout"`
	// SessionTimeout ends any session after this long. Default "0" (none).
	SessionTimeout units.Duration `toml:"session_timeout"`
	// DataTimeout aborts a data transfer that moves no byte for this long.
	// Default "1m".
	DataTimeout units.Duration `toml:"data_timeout"`
	// MaxLoginFailures from one address before a temporary ban. Default 10.
	MaxLoginFailures int `toml:"max_login_failures"`
	// BanTime is how long a banned address is refused. Default "15m".
	BanTime units.Duration `toml:"ban_time"`
	// LoginFailureDelay is the pause after a failed login; it doubles with
	// each further failure from the same address (up to 16 times).
	// Default "500ms".
	LoginFailureDelay units.Duration `toml:"login_failure_delay"`
	// DenyUsers are refused at login; root always is. Default ["root"].
	DenyUsers []string `toml:"deny_users"`
	// Anonymous is the anonymous-user policy.
	Anonymous Anonymous `toml:"anonymous"`
	// Users are virtual accounts.
	Users []User `toml:"user"`
	// Listeners give other addresses their own banner, root and anonymous
	// policy (vsftpd's per-IP configurations).
	Listeners []Listener `toml:"listener"`
}

// Anonymous is the [ftp.anonymous] policy.
type Anonymous struct {
	// Enabled lets "anonymous" and "ftp" log in. Default true.
	Enabled bool `toml:"enabled"`
	// Incoming is the write-only drop box, relative to the root.
	// Default "incoming".
	Incoming string `toml:"incoming"`
	// MaxUpload caps one uploaded file. Default 256MiB.
	MaxUpload units.Size `toml:"max_upload"`
	// IncomingQuota caps the drop box. Default 10GiB.
	IncomingQuota units.Size `toml:"incoming_quota"`
	// MaxRate caps each anonymous transfer in bytes per second. Default "0"
	// (unlimited).
	MaxRate units.Size `toml:"max_rate"`
}

// User is one [[ftp.user]] virtual account.
type User struct {
	// Name is the login name (required; not root, anonymous or ftp).
	Name string `toml:"name"`
	// PasswordHash is a bcrypt hash (`bootyard hash-password`).
	PasswordHash Secret `toml:"password_hash"`
	// Home is the user's directory inside the FTP root. Default "/".
	Home string `toml:"home"`
	// Permissions: read, write, delete, mkdir, rename. Default ["read"].
	Permissions []string `toml:"permissions"`
	// MaxRate caps each transfer in bytes per second. Default "0".
	MaxRate units.Size `toml:"max_rate"`
}

// Listener is one [[ftp.listener]] block: an extra control address with its
// own banner, root and anonymous policy. Unset keys inherit from [ftp].
//
// The listener serves plain FTP and explicit FTPS (AUTH TLS). An anonymous
// block, when given, replaces [ftp.anonymous] as a whole for this listener
// (write every key you need; a missing enabled means false).
type Listener struct {
	// Listen is the control address (required).
	Listen units.ListenAddr `toml:"listen"`
	// Banner is the greeting; default the [ftp] banner.
	Banner string `toml:"banner"`
	// Root is the public tree; default the [ftp] root.
	Root string `toml:"root"`
	// Anonymous is the anonymous policy; default [ftp.anonymous].
	Anonymous *Anonymous `toml:"anonymous"`
}

// Secret is a string that never appears in logs.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[redacted]" }

// Permissions a named user may hold.
var validPermissions = map[string]bool{"read": true, "write": true, "delete": true, "mkdir": true, "rename": true}

// DefaultConfig returns the documented defaults of the [ftp] section.
func DefaultConfig() Config {
	return Config{
		Enabled:           true,
		Listen:            units.MustListenAddr(":21"),
		Banner:            "bootyard FTP ready",
		Root:              "/srv/bootyard/ftp",
		PassivePorts:      units.PortRange{First: 30000, Last: 30100},
		Active:            true,
		RequireTLS:        true,
		MaxClients:        200,
		MaxPerIP:          8,
		LoginTimeout:      units.Duration(30 * time.Second),
		IdleTimeout:       units.Duration(5 * time.Minute),
		DataTimeout:       units.Duration(time.Minute),
		MaxLoginFailures:  10,
		BanTime:           units.Duration(15 * time.Minute),
		LoginFailureDelay: units.Duration(500 * time.Millisecond),
		DenyUsers:         []string{"root"},
		Anonymous: Anonymous{
			Enabled:       true,
			Incoming:      "incoming",
			MaxUpload:     256 << 20,
			IncomingQuota: 10 << 30,
		},
	}
}

// Validate checks the section. Keys in the returned problems are relative to
// the section. A disabled section is only type-checked.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	if !c.Enabled {
		return l
	}
	if c.Listen.IsZero() && c.ImplicitTLSListen.IsZero() {
		l.Addf("listen", "required when the service is enabled (or set implicit_tls_listen)")
	}
	if c.Listen.Overlaps(c.ImplicitTLSListen) {
		l.Addf("implicit_tls_listen", "%s conflicts with listen %s", c.ImplicitTLSListen, c.Listen)
	}
	checkDir(&l, "root", c.Root)
	if c.PassivePorts.IsZero() {
		l.Addf("passive_ports", "required (a range such as 30000-30100)")
	} else if c.PassivePorts.First < 1024 {
		l.Addf("passive_ports", "%s reaches below 1024", c.PassivePorts)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		if c.TLSCert == "" {
			l.Addf("tls_cert", "tls_key is set but tls_cert is not: give both or neither")
		} else {
			l.Addf("tls_key", "tls_cert is set but tls_key is not: give both or neither")
		}
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				l.Addf(f.key, "%v", errText(err))
			}
		}
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"max_clients", c.MaxClients}, {"max_per_ip", c.MaxPerIP}, {"max_login_failures", c.MaxLoginFailures}} {
		if k.v < 0 {
			l.Addf(k.key, "must not be negative (0 means unlimited)")
		}
	}
	if c.MaxClients > 0 && c.MaxPerIP > c.MaxClients {
		l.Addf("max_per_ip", "%d exceeds max_clients %d", c.MaxPerIP, c.MaxClients)
	}
	validateAnonymous(&l, "anonymous", c.Anonymous)
	seen := map[string]int{}
	for i, u := range c.Users {
		k := fmt.Sprintf("user[%d]", i)
		name := strings.TrimSpace(u.Name)
		switch {
		case name == "":
			l.Addf(k+".name", "required")
		case strings.EqualFold(name, "anonymous") || strings.EqualFold(name, "ftp"):
			l.Addf(k+".name", "%q is the anonymous user; configure it under [ftp.anonymous]", name)
		case name == "root":
			l.Addf(k+".name", "root is always refused")
		}
		if j, dup := seen[name]; dup && name != "" {
			l.Addf(k+".name", "duplicate user %q (also user[%d])", name, j)
		}
		seen[name] = i
		if !strings.HasPrefix(string(u.PasswordHash), "$2") {
			l.Addf(k+".password_hash", "want a bcrypt hash (make one with `bootyard hash-password`)")
		}
		if u.Home != "" && strings.Contains("/"+strings.Trim(u.Home, "/")+"/", "/../") {
			l.Addf(k+".home", "must stay inside the FTP root (no \"..\")")
		}
		for _, p := range u.Permissions {
			if !validPermissions[p] {
				l.Addf(k+".permissions", "unknown permission %q (want read, write, delete, mkdir, rename)", p)
			}
		}
	}
	for i, ln := range c.Listeners {
		k := fmt.Sprintf("listener[%d]", i)
		if ln.Listen.IsZero() {
			l.Addf(k+".listen", "required")
		}
		if ln.Listen.Overlaps(c.Listen) || ln.Listen.Overlaps(c.ImplicitTLSListen) {
			l.Addf(k+".listen", "%s conflicts with another FTP listener", ln.Listen)
		}
		if ln.Root != "" {
			checkDir(&l, k+".root", ln.Root)
		}
		if ln.Anonymous != nil {
			validateAnonymous(&l, k+".anonymous", *ln.Anonymous)
		}
	}
	return l
}

func validateAnonymous(l *cfgerr.List, key string, a Anonymous) {
	in := path.Clean("/" + a.Incoming)
	if a.Enabled && (in == "/" || strings.Contains(a.Incoming, "..")) {
		l.Addf(key+".incoming", "must name a directory inside the FTP root")
	}
	if a.IncomingQuota != 0 && a.MaxUpload > a.IncomingQuota {
		l.Addf(key+".max_upload", "%s exceeds incoming_quota %s", a.MaxUpload, a.IncomingQuota)
	}
}

func checkDir(l *cfgerr.List, key, dir string) {
	if dir == "" {
		l.Addf(key, "required when the service is enabled")
		return
	}
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		l.Addf(key, "%v", errText(err))
	case !fi.IsDir():
		l.Addf(key, "%s is not a directory", dir)
	}
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
