package tftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// TFTP error codes (RFC 1350, RFC 2347).
const (
	codeUndefined    = 0
	codeNotFound     = 1
	codeAccess       = 2
	codeDiskFull     = 3
	codeIllegalOp    = 4
	codeFileExists   = 6
	codeOptionRefuse = 8
)

// maxRequest is the longest request packet passed on: pin/tftp reads
// requests into 516-byte buffers, and no valid request needs more.
const maxRequest = 516

// request is a parsed RRQ or WRQ.
type request struct {
	op   uint16
	name string
	mode string // lowercased
	opts []option
}

// option is one RFC 2347 option, its name lowercased.
type option struct{ name, value string }

var errMalformed = errors.New("malformed request")

// parseRequest parses an RRQ or WRQ. Option names are lowercased (RFC 2347
// says they are case-insensitive; pin/tftp matches them case-sensitively),
// a repeated option keeps its first value and a trailing incomplete option
// is ignored. A name or mode without its terminating NUL is malformed.
func parseRequest(b []byte) (request, error) {
	if len(b) < 4 {
		return request{}, errMalformed
	}
	op := binary.BigEndian.Uint16(b)
	if op != opRRQ && op != opWRQ {
		return request{}, errMalformed
	}
	rest := b[2:]
	field := func() (string, bool) {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return "", false
		}
		s := string(rest[:i])
		rest = rest[i+1:]
		return s, true
	}
	name, ok1 := field()
	mode, ok2 := field()
	if !ok1 || !ok2 {
		return request{}, errMalformed
	}
	r := request{op: op, name: name, mode: strings.ToLower(mode)}
	seen := map[string]bool{}
	for len(rest) > 0 {
		k, ok := field()
		if !ok {
			break
		}
		v, ok := field()
		if !ok {
			break
		}
		k = strings.ToLower(k)
		if k == "" || seen[k] {
			continue
		}
		seen[k] = true
		r.opts = append(r.opts, option{k, v})
	}
	return r, nil
}

// get returns the value of option k.
func (r *request) get(k string) (string, bool) {
	for _, o := range r.opts {
		if o.name == k {
			return o.value, true
		}
	}
	return "", false
}

// negotiate rewrites the options to what pin/tftp should see: only blksize
// and tsize survive (pin/tftp drops timeout and windowsize anyway); blksize
// is dropped when invalid (outside 8-65464, not a number) or refused, and
// clamped to maxBlock; pin/tftp itself drops values under 512, so those mean
// 512-byte blocks. tsize is dropped in netascii mode (the size on the wire
// differs from the file's), forced to "0" in an RRQ (the server fills it in)
// and dropped in a WRQ when it is not a number. It returns the block size
// the transfer will use.
func (r *request) negotiate(maxBlock int, refuseBlksize bool) int {
	blk := 512
	out := r.opts[:0]
	for _, o := range r.opts {
		switch o.name {
		case "blksize":
			n, err := strconv.Atoi(o.value)
			if err != nil || n < 8 || n > 65464 || refuseBlksize {
				continue
			}
			if n > maxBlock {
				n = maxBlock
			}
			if n >= 512 {
				blk = n
			}
			out = append(out, option{"blksize", strconv.Itoa(n)})
		case "tsize":
			if r.mode == "netascii" {
				continue
			}
			if r.op == opRRQ {
				out = append(out, option{"tsize", "0"})
				continue
			}
			if n, err := strconv.ParseInt(o.value, 10, 64); err != nil || n < 0 {
				continue
			}
			out = append(out, o)
		}
	}
	r.opts = out
	return blk
}

// marshal writes the request into p and returns its length, or false when
// it does not fit.
func (r *request) marshal(p []byte) (int, bool) {
	n := 4 + len(r.name) + len(r.mode)
	for _, o := range r.opts {
		n += 2 + len(o.name) + len(o.value)
	}
	if n > len(p) || n > maxRequest {
		return 0, false
	}
	binary.BigEndian.PutUint16(p, r.op)
	i := 2
	put := func(s string) {
		i += copy(p[i:], s)
		p[i] = 0
		i++
	}
	put(r.name)
	put(r.mode)
	for _, o := range r.opts {
		put(o.name)
		put(o.value)
	}
	return i, true
}

// errorPacket builds an ERROR packet.
func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, opERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, msg...)
	return append(b, 0)
}
