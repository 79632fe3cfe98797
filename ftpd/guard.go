package ftpd

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// This file holds the pure policy functions: PORT/EPRT target checks and the
// path/permission decision every file-system call goes through. They take no
// sockets and no files, so they are table-tested and fuzzed directly.

// minActivePort is the lowest port an active data connection may target
// (RFC 2577 section 3: refuse PORT to privileged ports).
const minActivePort = 1024

var errBadPort = errors.New("malformed address")

// parseActiveTarget parses the argument of PORT ("h1,h2,h3,h4,p1,p2") or
// EPRT ("|1|10.0.0.1|4242|" with any delimiter) into an address and port.
func parseActiveTarget(verb, arg string) (netip.AddrPort, error) {
	arg = strings.TrimSpace(arg)
	switch verb {
	case "PORT":
		parts := strings.Split(arg, ",")
		if len(parts) != 6 {
			return netip.AddrPort{}, errBadPort
		}
		var b [6]byte
		for i, p := range parts {
			n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 8)
			if err != nil {
				return netip.AddrPort{}, errBadPort
			}
			b[i] = byte(n)
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), uint16(b[4])<<8|uint16(b[5])), nil
	case "EPRT":
		if len(arg) < 2 {
			return netip.AddrPort{}, errBadPort
		}
		d := arg[:1]
		f := strings.Split(arg, d)
		if len(f) != 5 || f[0] != "" || f[4] != "" {
			return netip.AddrPort{}, errBadPort
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil || a.Zone() != "" {
			return netip.AddrPort{}, errBadPort
		}
		switch f[1] {
		case "1":
			if !a.Is4() {
				return netip.AddrPort{}, errBadPort
			}
		case "2":
			if !a.Is6() {
				return netip.AddrPort{}, errBadPort
			}
		default:
			return netip.AddrPort{}, errBadPort
		}
		p, err := strconv.ParseUint(f[3], 10, 16)
		if err != nil || p == 0 {
			return netip.AddrPort{}, errBadPort
		}
		return netip.AddrPortFrom(a, uint16(p)), nil
	}
	return netip.AddrPort{}, errBadPort
}

// checkActiveTarget decides whether an active data connection to target is
// allowed for a control connection from peer: the address must be the
// peer's own (no FTP bounce, RFC 2577) and the port unprivileged.
func checkActiveTarget(peer netip.Addr, target netip.AddrPort) error {
	if target.Addr().Unmap() != peer.Unmap() {
		return fmt.Errorf("bounce attempt: data connection to %s, control connection from %s", target.Addr(), peer)
	}
	if target.Port() < minActivePort {
		return fmt.Errorf("bounce attempt: data connection to privileged port %d", target.Port())
	}
	return nil
}

// op is a file-system action a session asks for.
type op int

const (
	opStat   op = iota // SIZE, MDTM, CWD, RNFR, MLST, STAT <file>
	opList             // LIST, NLST, MLSD, STAT <dir>
	opRead             // RETR
	opCreate           // STOR, STOU
	opAppend           // APPE, REST+STOR
	opDelete           // DELE
	opMkdir            // MKD
	opRmdir            // RMD
	opRename           // RNTO (checked for both names)
	opAttr             // MFMT, SITE CHMOD/CHOWN
	numOps
)

var opNames = [...]string{"stat", "list", "read", "create", "append", "delete", "mkdir", "rmdir", "rename", "attr"}

func (o op) String() string {
	if o >= 0 && o < numOps {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// perm is a named user's permission set.
type perm uint8

const (
	permRead perm = 1 << iota
	permWrite
	permDelete
	permMkdir
	permRename
)

func parsePerms(ps []string) perm {
	var p perm
	for _, s := range ps {
		switch s {
		case "read":
			p |= permRead
		case "write":
			p |= permWrite
		case "delete":
			p |= permDelete
		case "mkdir":
			p |= permMkdir
		case "rename":
			p |= permRename
		}
	}
	return p
}

// account is what a logged-in session may do.
type account struct {
	name      string // user name ("anonymous" for the anonymous user)
	anonymous bool
	perms     perm   // named users only
	home      string // view root relative to the tree root ("." = whole tree)
}

// errDenied and errNotFound are the only texts a client sees for a refused or
// missing path: they carry no real path and do not tell a hidden file from an
// absent one in the drop box.
var (
	errDenied   = errors.New("permission denied")
	errNotFound = errors.New("no such file or directory")
)

// imagesDir is where the published images appear in the FTP tree.
const imagesDir = "images"

// under reports whether rel is dir or inside it (both cleaned, relative).
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// resolve maps a path the library hands the driver (absolute in the
// session's view, e.g. "/incoming/x") to a name relative to the tree root,
// confined to the account's home. It applies fsroot's name policy, so the
// result never contains "..", never starts with "/" and never names an
// upload in progress.
func resolve(home, name string) (string, error) {
	// The library already cleans paths against the session's "/" (so
	// "CWD ../.." stays at "/"); clean again so a direct caller cannot
	// climb either, then apply the name policy.
	clean, err := fsroot.CleanName(path.Clean("/" + name))
	if err != nil {
		return "", errDenied
	}
	if home == "" || home == "." {
		return clean, nil
	}
	if clean == "." {
		return home, nil
	}
	return fsroot.CleanName(home + "/" + clean)
}

// decide is the permission policy: may acct perform o on rel (a resolved
// name) given the drop box directory incoming ("" when anonymous uploads are
// off)? It returns nil or errDenied. Named users cannot write under images/;
// nobody changes attributes. Anonymous users read the public tree, and in
// incoming may only create new files directly inside it: no listing, stat,
// read-back, append, delete, rename or mkdir there.
func decide(acct *account, incoming string, o op, rel string) error {
	if acct == nil || rel == "" || strings.HasPrefix(rel, "/") {
		return errDenied
	}
	if !under(rel, acct.home) && acct.home != "." && acct.home != "" {
		return errDenied
	}
	inImages := under(rel, imagesDir)
	if acct.anonymous {
		inDrop := incoming != "" && under(rel, incoming)
		switch o {
		case opStat:
			// The drop box itself may be entered (CWD incoming), nothing
			// inside it may be looked at.
			if inDrop && rel != incoming {
				return errDenied
			}
			return nil
		case opList, opRead:
			if inDrop {
				return errDenied
			}
			return nil
		case opCreate:
			if incoming != "" && path.Dir(rel) == incoming && rel != incoming {
				return nil
			}
			return errDenied
		default:
			return errDenied
		}
	}
	need := perm(0)
	switch o {
	case opStat:
		return nil
	case opList, opRead:
		need = permRead
	case opCreate:
		need = permWrite
	case opDelete, opRmdir:
		need = permDelete
	case opMkdir:
		need = permMkdir
	case opRename:
		need = permRename
	default: // opAppend (uploads are create-only), opAttr
		return errDenied
	}
	if acct.perms&need == 0 {
		return errDenied
	}
	if need != permRead && (inImages || rel == "." || rel == acct.home) {
		return errDenied
	}
	return nil
}
