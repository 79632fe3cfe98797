package tftpd

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/bootyard/bootyard/internal/cfgerr"
	"github.com/bootyard/bootyard/internal/units"
)

// Config is the [tftp] section of the configuration file.
type Config struct {
	// Enabled turns the TFTP service on. Default true.
	Enabled bool `toml:"enabled"`
	// Listen is the UDP address to serve on. Default ":69".
	Listen units.ListenAddr `toml:"listen"`
	// Root is the directory served; nothing outside it is reachable.
	// Default "/srv/bootyard/tftp". It must exist when the service is on.
	Root string `toml:"root"`
	// Allow lists the client prefixes that may talk to the server. Empty
	// (the default) allows everyone.
	Allow []units.Prefix `toml:"allow"`
	// MaxTransfers caps concurrent transfers of all clients together.
	// Default 512; 0 means unlimited.
	MaxTransfers int `toml:"max_transfers"`
	// MaxPerClient caps concurrent transfers per client address. Default 8;
	// 0 means unlimited.
	MaxPerClient int `toml:"max_per_client"`
	// RatePerClient caps new requests per second per client address, with a
	// burst of the same size. Default 20; 0 means unlimited.
	RatePerClient int `toml:"rate_per_client"`
	// MaxBlockSize caps the negotiated blksize. Default 0: derived from the
	// route's MTU (1468 on Ethernet), never above 65464.
	MaxBlockSize int `toml:"max_block_size"`
	// RefuseBlksize ignores the blksize option (512-byte blocks) for ROMs that
	// break with larger blocks. Default false.
	RefuseBlksize bool `toml:"refuse_blksize"`
	// Timeout is the first retransmission timeout; it doubles on every retry.
	// Default "1s".
	Timeout units.Duration `toml:"timeout"`
	// Retries is the number of retransmissions before a transfer is given up.
	// Default 5.
	Retries int `toml:"retries"`
	// Backoff is the retransmission schedule: "exponential" (the default:
	// the wait after the n-th retransmission is timeout*2^n, so a silent
	// peer is given up quickly and cheaply) or "constant" (every wait is
	// timeout).
	Backoff string `toml:"backoff"`
	// SinglePort serves every transfer from the listen port (for NAT and
	// firewalls). Default false.
	SinglePort bool `toml:"single_port"`
	// Anticipate is the number of blocks sent ahead without waiting for ACKs
	// (not RFC 7440). Default 0: lock-step, as every ROM expects.
	Anticipate int `toml:"anticipate"`
	// RequireWorldReadable serves only files readable by "other" (tftp-hpa
	// semantics). Default false.
	RequireWorldReadable bool `toml:"require_world_readable"`
	// Uploads is the write-request policy. Off by default.
	Uploads Uploads `toml:"uploads"`
	// Remap rules rewrite requested names before lookup, in order.
	Remap []Remap `toml:"remap"`
}

// Uploads is the [tftp.uploads] policy.
type Uploads struct {
	// Enabled allows write requests. Default false: every WRQ is refused.
	Enabled bool `toml:"enabled"`
	// Dir is the upload directory, relative to the TFTP root. Default "uploads".
	Dir string `toml:"dir"`
	// MaxBytes caps one uploaded file. Default 16MiB.
	MaxBytes units.Size `toml:"max_bytes"`
	// MaxTotal caps the upload directory. Default 1GiB.
	MaxTotal units.Size `toml:"max_total"`
}

// Remap is one name-rewriting rule: every match of the regular expression
// Match is replaced by Replace ($1 and ${name} expand to submatches).
type Remap struct {
	// Match is a Go regular expression (RE2 syntax; (?i) for case-insensitive).
	Match string `toml:"match"`
	// Replace is the replacement text, with $1 and ${name} expanded.
	Replace string `toml:"replace"`
	// Stop ends rule processing when this rule matched. Default false.
	Stop bool `toml:"stop"`
}

// DefaultConfig returns the documented defaults of the [tftp] section.
func DefaultConfig() Config {
	return Config{
		Enabled:       true,
		Listen:        units.MustListenAddr(":69"),
		Root:          "/srv/bootyard/tftp",
		MaxTransfers:  512,
		MaxPerClient:  8,
		RatePerClient: 20,
		Timeout:       units.Duration(time.Second),
		Retries:       5,
		Backoff:       "exponential",
		Uploads: Uploads{
			Dir:      "uploads",
			MaxBytes: 16 << 20,
			MaxTotal: 1 << 30,
		},
	}
}

// Validate checks the section. Keys in the returned problems are relative to
// the section. A disabled section is only type-checked.
func (c *Config) Validate() cfgerr.List {
	var l cfgerr.List
	for i, r := range c.Remap {
		if _, err := regexp.Compile(r.Match); err != nil {
			l.Addf(fmt.Sprintf("remap[%d].match", i), "bad regular expression: %v", err)
		}
	}
	if !c.Enabled {
		return l
	}
	if c.Listen.IsZero() {
		l.Addf("listen", "required when the service is enabled")
	}
	if c.Root == "" {
		l.Addf("root", "required when the service is enabled")
	} else if fi, err := os.Stat(c.Root); err != nil {
		l.Addf("root", "%v", errText(err))
	} else if !fi.IsDir() {
		l.Addf("root", "%s is not a directory", c.Root)
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"max_transfers", c.MaxTransfers}, {"max_per_client", c.MaxPerClient}, {"rate_per_client", c.RatePerClient}, {"anticipate", c.Anticipate}} {
		if k.v < 0 {
			l.Addf(k.key, "must not be negative (0 means unlimited)")
		}
	}
	if c.Retries < 1 {
		l.Addf("retries", "must be at least 1")
	}
	if c.MaxBlockSize != 0 && (c.MaxBlockSize < 8 || c.MaxBlockSize > 65464) {
		l.Addf("max_block_size", "%d is outside 8-65464 (RFC 2348); 0 derives it from the MTU", c.MaxBlockSize)
	}
	if c.Timeout.D() < 10*time.Millisecond || c.Timeout.D() > time.Minute {
		l.Addf("timeout", "%s is outside 10ms-1m", c.Timeout)
	}
	switch c.Backoff {
	case "", "exponential", "constant":
	default:
		l.Addf("backoff", "%q is not one of exponential, constant", c.Backoff)
	}
	if c.Anticipate > 0 && c.SinglePort {
		l.Addf("anticipate", "cannot be combined with single_port (pin/tftp closes the shared channel twice)")
	}
	if c.Anticipate > 60 {
		l.Addf("anticipate", "%d is above 60, the most pin/tftp sends ahead", c.Anticipate)
	}
	if c.Uploads.Enabled {
		d := strings.Trim(c.Uploads.Dir, "/")
		if d == "" || strings.Contains("/"+d+"/", "/../") || d == ".." {
			l.Addf("uploads.dir", "must be a directory inside the TFTP root, without \"..\"")
		}
		if c.Uploads.MaxTotal != 0 && c.Uploads.MaxBytes > c.Uploads.MaxTotal {
			l.Addf("uploads.max_bytes", "%s exceeds uploads.max_total %s", c.Uploads.MaxBytes, c.Uploads.MaxTotal)
		}
	}
	return l
}

// errText shortens *fs.PathError texts to the underlying reason.
func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
