package config

import (
	"strconv"
	"strings"
)

// keyLine is one key found in the file text: its path with array-table
// indices ("ftp.user[1].name"), the same path without them ("ftp.user.name")
// and its 1-based line.
type keyLine struct {
	indexed, plain string
	line           int
}

// keyIndex maps key paths to the line that sets them. BurntSushi/toml keeps
// key positions private and its Undecoded list carries none, so bootyard
// reads them off the text with a small scanner. It understands table and
// array-table headers, dotted keys, inline tables and arrays of inline tables
// (also across lines), and skips comments and multi-line strings. It only runs
// on files the TOML decoder already accepted, so it need not validate.
type keyIndex struct {
	keys  []keyLine
	lines map[string]int // indexed path -> first line
}

func (ix *keyIndex) add(indexed string, line int) {
	if _, ok := ix.lines[indexed]; ok {
		return
	}
	ix.lines[indexed] = line
	ix.keys = append(ix.keys, keyLine{indexed: indexed, plain: stripIndices(indexed), line: line})
}

// stripIndices turns "a[1].b[0].c" into "a.b.c".
func stripIndices(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Line returns the line of key (an indexed path), or of its closest
// enclosing key that appears in the file, or 0.
func (ix *keyIndex) Line(key string) int {
	for k := key; k != ""; {
		if l, ok := ix.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// scanKeys builds the index of data.
func scanKeys(data string) *keyIndex {
	ix := &keyIndex{lines: map[string]int{}}
	arrayIdx := map[string]int{} // indexed array-table path -> current index
	counts := map[string]int{}   // indexed array-table path -> elements seen
	table := ""
	resolve := func(segs []string) string {
		p := ""
		for _, s := range segs {
			if p == "" {
				p = s
			} else {
				p += "." + s
			}
			if i, ok := arrayIdx[p]; ok {
				p += "[" + strconv.Itoa(i) + "]"
			}
		}
		return p
	}
	lines := strings.Split(data, "\n")
	var ml string // closing delimiter of a multi-line string in progress
	// State of a multi-line array value in progress.
	var arrKey string
	arrDepth, arrElem := 0, 0
	for n, raw := range lines {
		lineNo := n + 1
		line := raw
		if ml != "" {
			i := strings.Index(line, ml)
			if i < 0 {
				continue
			}
			line = line[i+len(ml):]
			ml = ""
			if arrKey == "" {
				continue
			}
		}
		if arrKey != "" {
			arrDepth, arrElem, ml = scanArray(ix, arrKey, line, lineNo, arrDepth, arrElem)
			if arrDepth == 0 {
				arrKey = ""
			}
			continue
		}
		t := strings.TrimSpace(stripComment(line))
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "[[") {
			segs := splitKey(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(t, "[["), "]]")))
			parent := resolve(segs[:len(segs)-1])
			p := segs[len(segs)-1]
			if parent != "" {
				p = parent + "." + p
			}
			i := counts[p]
			counts[p] = i + 1
			arrayIdx[p] = i
			table = p + "[" + strconv.Itoa(i) + "]"
			ix.add(table, lineNo)
			continue
		}
		if strings.HasPrefix(t, "[") {
			segs := splitKey(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(t, "["), "]")))
			table = resolve(segs)
			ix.add(table, lineNo)
			continue
		}
		eq := keyEnd(t)
		if eq < 0 {
			continue
		}
		key := strings.Join(splitKey(strings.TrimSpace(t[:eq])), ".")
		full := key
		if table != "" {
			full = table + "." + key
		}
		ix.add(full, lineNo)
		val := strings.TrimSpace(t[eq+1:])
		switch {
		case strings.HasPrefix(val, "{"):
			scanInline(ix, full, val, lineNo)
		case strings.HasPrefix(val, "["):
			d, e, m := scanArray(ix, full, val, lineNo, 0, 0)
			if d > 0 {
				arrKey, arrDepth, arrElem, ml = full, d, e, m
			} else {
				ml = m
			}
		case strings.HasPrefix(val, `"""`) && strings.Count(val, `"""`) == 1:
			ml = `"""`
		case strings.HasPrefix(val, `'''`) && strings.Count(val, `'''`) == 1:
			ml = `'''`
		}
	}
	return ix
}

// keyEnd returns the index of the "=" that ends the key on a key/value line,
// skipping quoted key parts, or -1.
func keyEnd(s string) int {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted key, honouring quotes, and trims each part.
func splitKey(s string) []string {
	var parts []string
	var cur strings.Builder
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == q {
				q = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			q = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// stripComment removes a trailing comment outside of strings.
func stripComment(s string) string {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#':
			return s[:i]
		}
	}
	return s
}

// scanInline records the keys of an inline table value starting at s.
func scanInline(ix *keyIndex, prefix, s string, line int) {
	depth := 0
	start := 0
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '{' || c == '[':
			if depth == 0 && c == '{' {
				start = i + 1
			}
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return
			}
		case c == ',' && depth == 1:
			start = i + 1
		case c == '=' && depth == 1:
			k := strings.Join(splitKey(strings.TrimSpace(s[start:i])), ".")
			full := prefix + "." + k
			ix.add(full, line)
			rest := strings.TrimSpace(s[i+1:])
			if strings.HasPrefix(rest, "{") {
				scanInline(ix, full, rest, line)
			}
		}
	}
}

// scanArray walks (part of) an array value, recording inline-table elements
// as key[i]. It returns the bracket depth still open at the end of s, the
// number of elements seen so far and, when s ends inside a multi-line string,
// its closing delimiter.
func scanArray(ix *keyIndex, key, s string, line, depth, elem int) (int, int, string) {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q != 0:
			if c == '\\' && q == '"' {
				i++
			} else if c == q {
				q = 0
			}
		case strings.HasPrefix(s[i:], `"""`) || strings.HasPrefix(s[i:], `'''`):
			d := s[i : i+3]
			if j := strings.Index(s[i+3:], d); j >= 0 {
				i += 3 + j + 2
			} else {
				return depth, elem, d
			}
		case c == '"' || c == '\'':
			q = c
		case c == '#':
			return depth, elem, ""
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth == 0 {
				return 0, elem, ""
			}
		case c == '{' && depth == 1:
			el := key + "[" + strconv.Itoa(elem) + "]"
			elem++
			ix.add(el, line)
			scanInline(ix, el, s[i:], line)
			// skip to the matching brace
			d := 0
			for ; i < len(s); i++ {
				if s[i] == '{' {
					d++
				} else if s[i] == '}' {
					d--
					if d == 0 {
						break
					}
				}
			}
		}
	}
	return depth, elem, ""
}
