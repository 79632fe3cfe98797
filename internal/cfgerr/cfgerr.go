// Package cfgerr carries configuration problems from the packages that own a
// configuration section to the loader that reports them.
//
// A section's Validate method returns a List of problems, each naming the key
// path relative to its section ("max_block_size", "uploads.dir",
// "user[2].home"). The loader prefixes the section name, finds the line of the
// key in the file, and prints every problem as FILE:LINE: key.path: message.
package cfgerr

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration value.
type Problem struct {
	Key string // key path relative to the section that reported it
	Msg string // what is wrong, lowercase, no trailing period
}

// List collects problems. The zero value is ready to use.
type List []Problem

// Addf records a problem with key.
func (l *List) Addf(key, format string, args ...any) {
	*l = append(*l, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Merge appends the problems of sub, each with its key prefixed by prefix and
// a dot (or, when prefix ends with "]", by prefix and a dot as well).
func (l *List) Merge(prefix string, sub List) {
	for _, p := range sub {
		k := p.Key
		switch {
		case prefix == "":
		case k == "":
			k = prefix
		default:
			k = prefix + "." + k
		}
		*l = append(*l, Problem{Key: k, Msg: p.Msg})
	}
}

// Err returns the list as an error, or nil when it is empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Error implements error: one problem per line, "key: message".
func (l List) Error() string {
	var b strings.Builder
	for i, p := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Key)
		b.WriteString(": ")
		b.WriteString(p.Msg)
	}
	return b.String()
}
