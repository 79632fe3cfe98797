package images

import "github.com/bootyard/bootyard/internal/cfgerr"

// Config is the [images] section of the configuration file.
type Config struct {
	// Dir is the image store. Default <server.state_dir>/images; a relative
	// path is resolved against the configuration file's directory by the
	// loader. It is created (mode 0755) when missing.
	Dir string `toml:"dir"`
}

// DefaultConfig returns the defaults of the [images] section. Dir stays
// empty: the loader fills it from server.state_dir.
func DefaultConfig() Config { return Config{} }

// Validate reports problems with the section's keys, relative to the
// section ("dir").
func (c Config) Validate() cfgerr.List {
	var l cfgerr.List
	for i := 0; i < len(c.Dir); i++ {
		if b := c.Dir[i]; b < 0x20 || b == 0x7f {
			l.Addf("dir", "control character in path")
			break
		}
	}
	return l
}
