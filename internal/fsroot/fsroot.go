// Package fsroot is bootyard's one implementation of "secure mode", shared
// by the TFTP and FTP servers.
//
// A Root wraps an *os.Root, so every lookup happens relative to one directory
// with the kernel refusing "..", absolute paths and symlinks that leave it
// (openat2 RESOLVE_BENEATH semantics where available, a careful walk
// otherwise). On top of that the package applies a name policy (CleanName),
// serves regular files only (OpenRegular), and offers create-only, size-capped
// uploads that are written under a hidden temporary name and linked into place
// only when complete (CreateUpload).
//
// What it does not stop, as os.Root documents: bind mounts inside the root,
// hard links to files outside it (a hard link is the same file, so it is
// served; keep the root on its own file system or owned by root to prevent
// them), and the contents of /proc-like file systems mounted inside.
package fsroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
)

// Errors callers branch on. They are deliberately generic: their text may
// reach a client.
var (
	ErrDenied   = errors.New("access denied")
	ErrNotFound = errors.New("file not found")
	ErrExists   = errors.New("file already exists")
	ErrTooLarge = errors.New("file too large")
	ErrQuota    = errors.New("quota exceeded")
)

// MaxNameLen is the longest name accepted, in bytes.
const MaxNameLen = 255

// TempPrefix starts the names of uploads in progress. Names with this prefix
// are refused by CleanName, so no client can read or collide with them.
const TempPrefix = ".bootyard-upload-"

// CleanName applies the name policy to a client-supplied name and returns the
// name relative to the root: leading slashes are dropped; empty names, NUL
// and control characters, names over MaxNameLen bytes, ".." components and
// in-progress upload names are refused with ErrDenied. "." components and
// repeated slashes are removed. The result never starts with "/" and is "."
// for the root itself.
func CleanName(name string) (string, error) {
	if len(name) > MaxNameLen {
		return "", fmt.Errorf("%w: name longer than %d bytes", ErrDenied, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: control character in name", ErrDenied)
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: \"..\" in name", ErrDenied)
		}
		if strings.HasPrefix(part, TempPrefix) {
			return "", fmt.Errorf("%w: reserved name", ErrDenied)
		}
	}
	clean := strings.TrimLeft(path.Clean("/"+name), "/")
	if clean == "" {
		clean = "."
	}
	return clean, nil
}

// Root is a directory served in secure mode. It is safe for concurrent use.
type Root struct {
	root *os.Root
	dir  string
}

// Open opens dir as a Root. Call it before dropping privileges: afterwards
// every access goes through the open directory, even when a parent directory
// is closed to the service user.
func Open(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("fsroot: open %q: %w", dir, err)
	}
	return &Root{root: r, dir: dir}, nil
}

// Dir returns the directory the root was opened on (for logs only).
func (r *Root) Dir() string { return r.dir }

// OS returns the underlying *os.Root.
func (r *Root) OS() *os.Root { return r.root }

// Close releases the root.
func (r *Root) Close() error { return r.root.Close() }

// classify maps lookup errors to ErrNotFound or ErrDenied, keeping the cause.
func classify(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	default:
		return fmt.Errorf("%w: %v", ErrDenied, err)
	}
}

// OpenRegular opens name (already cleaned by CleanName) for reading and
// returns it with its FileInfo. Anything but a regular file (directory,
// device, FIFO, socket) is refused with ErrDenied; the open uses O_NONBLOCK
// so a FIFO cannot hang the caller, and the type check runs on the opened
// descriptor so the file cannot be swapped after the check. When
// worldReadable is set, files not readable by "other" are refused too.
func (r *Root) OpenRegular(name string, worldReadable bool) (*os.File, fs.FileInfo, error) {
	f, err := r.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, classify(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, classify(err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not a regular file", ErrDenied, name)
	}
	if worldReadable && fi.Mode().Perm()&0o004 == 0 {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s is not world-readable", ErrDenied, name)
	}
	// Back to blocking mode for plain reads (regular files ignore it, but
	// sendfile and io.Copy should see an ordinary descriptor).
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, nil, classify(err)
	}
	return f, fi, nil
}

// Quota tracks the bytes stored in an upload directory against a cap. The
// zero value has no cap. It is safe for concurrent use.
type Quota struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// NewQuota returns a quota of max bytes (0: unlimited) of which used are
// already taken.
func NewQuota(max, used int64) *Quota { return &Quota{max: max, used: used} }

// reserve takes n bytes, or fails with ErrQuota.
func (q *Quota) reserve(n int64) error {
	if q == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && q.used+n > q.max {
		return ErrQuota
	}
	q.used += n
	return nil
}

func (q *Quota) release(n int64) {
	if q == nil || n == 0 {
		return
	}
	q.mu.Lock()
	q.used -= n
	if q.used < 0 {
		q.used = 0
	}
	q.mu.Unlock()
}

// Used returns the bytes currently counted.
func (q *Quota) Used() int64 {
	if q == nil {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used
}

// DirSize returns the total size of the regular files directly inside dir
// (relative to the root), counting uploads in progress too.
func (r *Root) DirSize(dir string) (int64, error) {
	d, err := r.root.Open(dir)
	if err != nil {
		return 0, classify(err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return 0, fmt.Errorf("fsroot: read %q: %w", dir, err)
	}
	var total int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			total += fi.Size()
		}
	}
	return total, nil
}

// RemoveStaleUploads deletes uploads left in progress in dir by an earlier
// run (a crash or kill mid-transfer) and returns how many it removed.
func (r *Root) RemoveStaleUploads(dir string) (int, error) {
	d, err := r.root.Open(dir)
	if err != nil {
		return 0, classify(err)
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return 0, fmt.Errorf("fsroot: read %q: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			if err := r.root.Remove(path.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}

// UploadOptions shape one upload.
type UploadOptions struct {
	MaxBytes int64       // per-file cap; 0 means unlimited
	Quota    *Quota      // directory cap; nil means none
	Mode     fs.FileMode // permission bits of the final file (default 0600)
}

// Upload is a file being received. Write to it, then Commit or Abort; until
// Commit succeeds nothing is visible under the final name.
type Upload struct {
	root    *os.Root
	f       *os.File
	temp    string
	final   string
	max     int64
	quota   *Quota
	written int64
	done    bool
}

// CreateUpload starts a create-only upload of name (already cleaned, relative
// to the root). It fails with ErrExists when name exists and ErrDenied when
// its directory does not exist or is not a directory.
func (r *Root) CreateUpload(name string, opt UploadOptions) (*Upload, error) {
	if name == "." || name == "" {
		return nil, fmt.Errorf("%w: no file name", ErrDenied)
	}
	if _, err := r.root.Lstat(name); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, classify(err)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("fsroot: random name: %w", err)
	}
	temp := path.Join(path.Dir(name), TempPrefix+hex.EncodeToString(rnd[:]))
	mode := opt.Mode
	if mode == 0 {
		mode = 0o600
	}
	f, err := r.root.OpenFile(temp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return nil, classify(err)
	}
	// The umask may have narrowed the mode; set exactly what was asked.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		r.root.Remove(temp)
		return nil, classify(err)
	}
	return &Upload{root: r.root, f: f, temp: temp, final: name, max: opt.MaxBytes, quota: opt.Quota}, nil
}

// Write appends p. Past the per-file cap it writes nothing more and returns
// ErrTooLarge; past the directory quota, ErrQuota. The caller then Aborts.
func (u *Upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, os.ErrClosed
	}
	if u.max > 0 && u.written+int64(len(p)) > u.max {
		return 0, ErrTooLarge
	}
	if err := u.quota.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := u.f.Write(p)
	u.written += int64(n)
	if n < len(p) {
		u.quota.release(int64(len(p) - n))
	}
	return n, err
}

// ReadFrom copies r into the upload, honouring the caps.
func (u *Upload) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{u}, r)
}

// Written returns the bytes written so far.
func (u *Upload) Written() int64 { return u.written }

// Name returns the final name of the upload.
func (u *Upload) Name() string { return u.final }

// Commit syncs the data and links it under its final name. When the name
// was taken meanwhile it fails with ErrExists and removes the data.
func (u *Upload) Commit() error {
	if u.done {
		return os.ErrClosed
	}
	u.done = true
	err := u.f.Sync()
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// Link, not rename: link fails when the final name exists, so a
		// race between two uploads of one name cannot overwrite either.
		err = u.root.Link(u.temp, u.final)
		if errors.Is(err, fs.ErrExist) {
			err = ErrExists
		}
	}
	u.root.Remove(u.temp)
	if err != nil {
		u.quota.release(u.written)
		return fmt.Errorf("fsroot: commit %q: %w", u.final, err)
	}
	return nil
}

// Abort discards the upload. It is safe to call after Commit (then it does
// nothing) and more than once.
func (u *Upload) Abort() {
	if u.done {
		return
	}
	u.done = true
	u.f.Close()
	u.root.Remove(u.temp)
	u.quota.release(u.written)
}
