// Package privdrop drops root privileges after a daemon has bound its ports
// and opened its files: supplementary groups, then group, then user, in that
// order, and then it verifies that root cannot be regained.
//
// Go applies setuid and setgid to every thread of the process (since Go 1.16
// on Linux, via the runtime's all-threads syscall), so no goroutine keeps
// root after Drop returns.
package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// Account is the identity to drop to.
type Account struct {
	Name string
	UID  int
	GID  int
}

// FallbackUser is used when the configured user does not exist.
const FallbackUser = "nobody"

// Lookup resolves name to an account. When name does not exist and fallback
// is true, it resolves FallbackUser instead and reports that it did.
func Lookup(name string, fallback bool) (acct Account, usedFallback bool, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if !fallback || !errors.As(err, &unknown) || name == FallbackUser {
			return Account{}, false, fmt.Errorf("privdrop: look up user %q: %w", name, err)
		}
		u, err = user.Lookup(FallbackUser)
		if err != nil {
			return Account{}, false, fmt.Errorf("privdrop: user %q does not exist and neither does %q: %w", name, FallbackUser, err)
		}
		usedFallback = true
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Account{}, false, fmt.Errorf("privdrop: user %q: uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return Account{}, false, fmt.Errorf("privdrop: user %q: gid %q: %w", u.Username, u.Gid, err)
	}
	if uid == 0 {
		return Account{}, false, fmt.Errorf("privdrop: user %q has uid 0: dropping to it keeps root", u.Username)
	}
	return Account{Name: u.Username, UID: uid, GID: gid}, usedFallback, nil
}

// IsRoot reports whether the process runs with effective uid 0.
func IsRoot() bool { return os.Geteuid() == 0 }

// Drop switches the whole process to acct: setgroups to the account's
// primary group only, setgid, setuid. It then verifies that setuid(0) and
// setgid(0) fail and that the real, effective and saved ids all changed.
func Drop(acct Account) error {
	if err := syscall.Setgroups([]int{acct.GID}); err != nil {
		return fmt.Errorf("privdrop: setgroups(%d): %w", acct.GID, err)
	}
	if err := syscall.Setgid(acct.GID); err != nil {
		return fmt.Errorf("privdrop: setgid(%d): %w", acct.GID, err)
	}
	if err := syscall.Setuid(acct.UID); err != nil {
		return fmt.Errorf("privdrop: setuid(%d): %w", acct.UID, err)
	}
	return Verify(acct)
}

// Verify checks that the process runs as acct and cannot regain root.
func Verify(acct Account) error {
	if os.Getuid() != acct.UID || os.Geteuid() != acct.UID {
		return fmt.Errorf("privdrop: still uid %d/euid %d after dropping to %d", os.Getuid(), os.Geteuid(), acct.UID)
	}
	if os.Getgid() != acct.GID || os.Getegid() != acct.GID {
		return fmt.Errorf("privdrop: still gid %d/egid %d after dropping to %d", os.Getgid(), os.Getegid(), acct.GID)
	}
	if err := syscall.Setuid(0); err == nil {
		return errors.New("privdrop: setuid(0) succeeded after the drop: root can be regained")
	}
	if err := syscall.Setgid(0); err == nil {
		return errors.New("privdrop: setgid(0) succeeded after the drop: root group can be regained")
	}
	return nil
}

// Chown gives path to acct when running as root; elsewhere it does nothing.
// The daemon uses it for the directories it writes after the drop.
func Chown(path string, acct Account) error {
	if !IsRoot() {
		return nil
	}
	if err := os.Lchown(path, acct.UID, acct.GID); err != nil {
		return fmt.Errorf("privdrop: chown %q: %w", path, err)
	}
	return nil
}
