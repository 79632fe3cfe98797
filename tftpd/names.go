package tftpd

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// rule is a compiled remap rule.
type rule struct {
	re      *regexp.Regexp
	replace string
	stop    bool
}

// compileRemap compiles the remap rules in order.
func compileRemap(rs []Remap) ([]rule, error) {
	out := make([]rule, 0, len(rs))
	for i, r := range rs {
		re, err := regexp.Compile(r.Match)
		if err != nil {
			return nil, fmt.Errorf("tftpd: remap[%d]: %w", i, err)
		}
		out = append(out, rule{re: re, replace: r.Replace, stop: r.Stop})
	}
	return out, nil
}

// errName is the class of names refused by the name policy.
var errName = fsroot.ErrDenied

// normalize turns a requested name into the name looked up, relative to the
// root. The raw name is checked first (length, NUL and control bytes), then
// the remap rules run in order, then fsroot.CleanName drops leading slashes
// and refuses "..", control bytes, overlong names and reserved upload names.
// The result is never "." (the root itself is not a file).
func normalize(raw string, rules []rule) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%w: empty name", errName)
	}
	if len(raw) > fsroot.MaxNameLen {
		return "", fmt.Errorf("%w: name longer than %d bytes", errName, fsroot.MaxNameLen)
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: control character in name", errName)
		}
	}
	name := raw
	for _, r := range rules {
		if !r.re.MatchString(name) {
			continue
		}
		name = r.re.ReplaceAllString(name, r.replace)
		if len(name) > 4*fsroot.MaxNameLen {
			// A rule that multiplies the name is a config mistake; do not
			// let it grow without bound through the next rules.
			return "", fmt.Errorf("%w: name longer than %d bytes after remap", errName, fsroot.MaxNameLen)
		}
		if r.stop {
			break
		}
	}
	clean, err := fsroot.CleanName(name)
	if err != nil {
		return "", err
	}
	if clean == "." {
		return "", fmt.Errorf("%w: names a directory", errName)
	}
	return clean, nil
}

// imagesPrefix is where published images appear in the TFTP tree.
const imagesPrefix = "images/"

// imageName returns the name inside the images store for a cleaned name
// under images/, and whether the name is one.
func imageName(clean string) (string, bool) {
	rest, ok := strings.CutPrefix(clean, imagesPrefix)
	if !ok || rest == "" {
		return "", false
	}
	return rest, true
}

// uploadName checks that a cleaned name is a plain file directly inside the
// upload directory dir, and not hidden.
func uploadName(clean, dir string) error {
	dir = strings.Trim(path.Clean("/"+dir), "/")
	d, base := path.Split(clean)
	if strings.TrimSuffix(d, "/") != dir {
		return fmt.Errorf("%w: uploads go to %s/ only", errName, dir)
	}
	if base == "" || strings.HasPrefix(base, ".") {
		return fmt.Errorf("%w: hidden or empty upload name", errName)
	}
	return nil
}
