package images

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors callers branch on.
var (
	// ErrNotFound: no published image has that name.
	ErrNotFound = errors.New("image not found")
	// ErrExists: an image of that name is published and Replace was not set.
	ErrExists = errors.New("image already exists")
	// ErrInvalidName: the image name or a file path breaks the name policy.
	ErrInvalidName = errors.New("invalid name")
)

// ManifestName is the file, inside each image directory, that holds the
// image's manifest. FS never serves it, and image files may not use the name.
const ManifestName = ".bootyard-manifest.json"

const (
	stagingDir = ".staging"
	lockName   = ".lock"
	// MaxNameLen is the longest image name accepted, in bytes.
	MaxNameLen = 128
)

// Role says what a file of an image is for. It is guessed from the file
// name when the image is added and only informs operators.
type Role string

// Roles of image files.
const (
	RoleKernel Role = "kernel"
	RoleInitrd Role = "initrd"
	RoleISO    Role = "iso"
	RoleRootFS Role = "rootfs"
	RoleOther  Role = "other"
)

// File is one file of an image, as recorded in its manifest.
type File struct {
	// Path is the file's path inside the image, slash-separated.
	Path string `json:"path"`
	// Size is the file's length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex sha256 of the content.
	SHA256 string `json:"sha256"`
	// Role is guessed from the name (kernel, initrd, iso, rootfs, other).
	Role Role `json:"role"`
}

// Image is one published image: its manifest.
type Image struct {
	// Name is the image's name, also its directory in the store.
	Name string `json:"name"`
	// Description is the operator's free text.
	Description string `json:"description,omitempty"`
	// Added is when the image was published.
	Added time.Time `json:"added"`
	// Files lists every file, sorted by path.
	Files []File `json:"files"`
}

// Size returns the total size of the image's files.
func (im *Image) Size() int64 {
	var n int64
	for _, f := range im.Files {
		n += f.Size
	}
	return n
}

// Problem is one thing Verify found wrong.
type Problem struct {
	// Image is the image's name.
	Image string
	// Path is the file's path inside the image ("" for the image itself).
	Path string
	// Kind is "missing", "corrupt", "size", "extra", "unreadable" or
	// "manifest".
	Kind string
	// Msg explains the problem.
	Msg string
}

// String formats the problem as "image/path: kind: msg".
func (p Problem) String() string {
	name := p.Image
	if p.Path != "" {
		name += "/" + p.Path
	}
	return fmt.Sprintf("%s: %s: %s", name, p.Kind, p.Msg)
}

// Store is an image store directory. Its methods are safe for concurrent
// use by goroutines; several processes may share a store (publishing is
// serialised with a lock file).
type Store struct {
	dir  string
	root *os.Root
	dirf *os.File // the same directory, for flock and renameat2
}

// ValidName reports whether name is acceptable as an image name: 1 to
// MaxNameLen bytes of ASCII letters, digits, '.', '_', '+' and '-', not
// starting with '.' or '-'.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty image name", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: image name longer than %d bytes", ErrInvalidName, MaxNameLen)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: image name %q starts with %q", ErrInvalidName, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.' || c == '_' || c == '+' || c == '-':
		default:
			return fmt.Errorf("%w: image name %q: character %q not allowed (use letters, digits, '.', '_', '+', '-')", ErrInvalidName, name, c)
		}
	}
	return nil
}

// validFilePath checks a slash-separated path inside an image.
func validFilePath(p string) error {
	if p == "" || !fs.ValidPath(p) || p == "." {
		return fmt.Errorf("%w: file path %q", ErrInvalidName, p)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w: control character in file path %q", ErrInvalidName, p)
		}
	}
	if p == ManifestName {
		return fmt.Errorf("%w: file path %q is reserved for the manifest", ErrInvalidName, p)
	}
	return nil
}

// Open opens the store at dir, creating it (mode 0755) and its staging
// directory when missing, and removes the debris of interrupted adds and
// removals (staging entries no running process holds a lock on).
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("images: create store %q: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("images: open store %q: %w", dir, err)
	}
	dirf, err := root.Open(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("images: open store %q: %w", dir, err)
	}
	s := &Store{dir: dir, root: root, dirf: dirf}
	if err := root.Mkdir(stagingDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		s.Close()
		return nil, fmt.Errorf("images: create %s/%s: %w", dir, stagingDir, err)
	}
	if err := s.cleanStaging(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Close releases the store's directory handles. FS views stop working.
func (s *Store) Close() error {
	err1 := s.dirf.Close()
	err2 := s.root.Close()
	return errors.Join(err1, err2)
}

// cleanStaging removes staging entries whose owner is gone. An add holds an
// exclusive flock on "<id>.lock" for as long as it runs; an entry without a
// lock file, or whose lock can be taken, is debris.
func (s *Store) cleanStaging() error {
	ents, err := s.readDir(stagingDir)
	if err != nil {
		return fmt.Errorf("images: clean staging: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		p := stagingDir + "/" + name
		lp := p + ".lock"
		lf, err := s.root.OpenFile(lp, os.O_RDWR, 0)
		if err == nil {
			if unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
				lf.Close() // an add in progress
				continue
			}
		}
		if err := s.root.RemoveAll(p); err != nil {
			if lf != nil {
				lf.Close()
			}
			return fmt.Errorf("images: remove staging debris %s: %w", name, err)
		}
		if lf != nil {
			s.root.Remove(lp)
			lf.Close()
		}
	}
	// Lock files whose directory is gone (an add that died between the two).
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".lock") {
			continue
		}
		lp := stagingDir + "/" + name
		if _, err := s.root.Lstat(strings.TrimSuffix(lp, ".lock")); err == nil {
			continue
		}
		lf, err := s.root.OpenFile(lp, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			s.root.Remove(lp)
		}
		lf.Close()
	}
	return nil
}

// readDir lists a directory of the store, sorted by name.
func (s *Store) readDir(name string) ([]fs.DirEntry, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, err
}

// lockStore takes the store-wide publish lock, waiting for other processes.
func (s *Store) lockStore(ctx context.Context) (unlock func(), err error) {
	f, err := s.root.OpenFile(lockName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("images: open lock: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			var once sync.Once
			return func() { once.Do(func() { f.Close() }) }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("images: lock store: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("images: lock store: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readManifest reads and checks the manifest of image name.
func (s *Store) readManifest(name string) (*Image, error) {
	b, err := s.root.ReadFile(name + "/" + ManifestName)
	if err != nil {
		return nil, err
	}
	var im Image
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("manifest of %q: %w", name, err)
	}
	if im.Name != name {
		return nil, fmt.Errorf("manifest of %q names image %q", name, im.Name)
	}
	for _, f := range im.Files {
		if err := validFilePath(f.Path); err != nil {
			return nil, fmt.Errorf("manifest of %q: %w", name, err)
		}
	}
	return &im, nil
}

// Get returns the manifest of a published image, or an error wrapping
// ErrNotFound.
func (s *Store) Get(name string) (*Image, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("images: %w: %w", ErrNotFound, err)
	}
	im, err := s.readManifest(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("images: %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	return im, nil
}

// List returns every published image, sorted by name. Directories without
// a readable manifest are left out (Verify reports them).
func (s *Store) List() ([]Image, error) {
	ents, err := s.readDir(".")
	if err != nil {
		return nil, fmt.Errorf("images: list %s: %w", s.dir, err)
	}
	var out []Image
	for _, e := range ents {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		im, err := s.readManifest(e.Name())
		if err != nil {
			continue
		}
		out = append(out, *im)
	}
	return out, nil
}

// Lookup returns the paths of a published image's files. ok is false when
// no such image is published. It serves the profiles package's checks.
func (s *Store) Lookup(name string) (files []string, ok bool) {
	if ValidName(name) != nil {
		return nil, false
	}
	im, err := s.readManifest(name)
	if err != nil {
		return nil, false
	}
	files = make([]string, len(im.Files))
	for i, f := range im.Files {
		files[i] = f.Path
	}
	return files, true
}

// DirIndex looks images up by their manifests in a store directory
// without opening the store: no directory is created and no staging debris
// is removed, so `bootyard check` may use it. It satisfies
// profiles.ImageIndex.
type DirIndex string

// Lookup returns the paths of a published image's files from its manifest.
func (d DirIndex) Lookup(name string) (files []string, ok bool) {
	if ValidName(name) != nil {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(string(d), name, ManifestName))
	if err != nil {
		return nil, false
	}
	var im Image
	if json.Unmarshal(b, &im) != nil || im.Name != name {
		return nil, false
	}
	for _, f := range im.Files {
		files = append(files, f.Path)
	}
	return files, true
}

// Remove unpublishes an image and deletes its files. The name disappears
// in one rename; readers that have files open keep reading them.
func (s *Store) Remove(name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("images: remove: %w", err)
	}
	if _, err := s.root.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("images: remove %q: %w", name, ErrNotFound)
	}
	unlock, err := s.lockStore(context.Background())
	if err != nil {
		return err
	}
	defer unlock()
	trash := stagingDir + "/rm-" + randID()
	if err := s.root.Rename(name, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("images: remove %q: %w", name, ErrNotFound)
		}
		return fmt.Errorf("images: remove %q: %w", name, err)
	}
	_ = s.dirf.Sync()
	if err := s.root.RemoveAll(trash); err != nil {
		return fmt.Errorf("images: remove %q: delete files: %w", name, err)
	}
	return nil
}

// FS returns a read-only view of the published images: "<name>/<path>".
// The staging area, the lock file and the manifests are hidden. Regular
// files are returned as *os.File, directories as a wrapper whose ReadDir
// hides the same names. The view stays valid until Close.
func (s *Store) FS() fs.FS { return storeFS{root: s.root} }

func randID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// guessRole classifies a file by its name.
func guessRole(p string) Role {
	b := strings.ToLower(path.Base(p))
	switch {
	case strings.HasSuffix(b, ".iso"):
		return RoleISO
	case strings.HasPrefix(b, "vmlinuz"), strings.HasPrefix(b, "vmlinux"), b == "linux", b == "linux64",
		strings.HasPrefix(b, "bzimage"), b == "kernel", strings.HasSuffix(b, ".kernel"), b == "image", b == "image.gz":
		return RoleKernel
	case strings.HasPrefix(b, "initrd"), strings.HasPrefix(b, "initramfs"), strings.Contains(b, ".cpio"):
		return RoleInitrd
	case strings.HasSuffix(b, ".squashfs"), strings.HasSuffix(b, ".sfs"), strings.HasPrefix(b, "rootfs"),
		strings.HasSuffix(b, ".qcow2"), strings.HasSuffix(b, ".raw"), strings.HasSuffix(b, ".wim"),
		strings.Contains(b, ".tar"), strings.HasSuffix(b, ".tgz"), strings.HasSuffix(b, ".img.xz"):
		return RoleRootFS
	}
	return RoleOther
}
