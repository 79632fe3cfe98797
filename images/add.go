package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AddOptions tune Add.
type AddOptions struct {
	// Replace allows publishing over an existing image of the same name.
	Replace bool
	// Description is stored in the manifest. When replacing, an empty
	// Description keeps the old image's.
	Description string
	// Progress, when set, is called after each chunk copied with the bytes
	// copied so far and the total of all sources. It runs on the copying
	// goroutine: keep it cheap.
	Progress func(done, total int64)
	// Warn, when set, receives notes about sources that were skipped
	// (symlinks to directories, special files).
	Warn func(msg string)
	// Now is the clock for the manifest's Added time (nil: time.Now).
	Now func() time.Time
	// ReplaceGrace is how long a replaced image's old directory stays on
	// disk (under .staging) before it is deleted, so that a reader whose
	// path lookup is half-way through the old directory still finds its
	// file. Zero means DefaultReplaceGrace; negative means no wait.
	ReplaceGrace time.Duration
}

// DefaultReplaceGrace is the default AddOptions.ReplaceGrace.
const DefaultReplaceGrace = time.Second

// source is one file to copy: its path on disk and inside the image.
type source struct {
	from string
	to   string
	size int64
}

// copyChunk is the unit of copying between cancellation checks and progress
// reports.
const copyChunk = 1 << 20

// Add copies sources into a new image called name and publishes it
// atomically. A source that is a file lands at its base name; a directory
// contributes its contents with their relative paths (symlinks to files are
// followed, symlinks to directories are skipped with a warning). Two
// sources that land on the same path are an error. Without opt.Replace an
// existing image is an error wrapping ErrExists. On any error or
// cancellation nothing is published and the staging copy is removed.
func (s *Store) Add(ctx context.Context, name string, sources []string, opt AddOptions) (*Image, error) {
	if err := ValidName(name); err != nil {
		return nil, fmt.Errorf("images: add: %w", err)
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("images: add %q: no source files", name)
	}
	if !opt.Replace {
		if _, err := s.root.Lstat(name); err == nil {
			return nil, fmt.Errorf("images: add %q: %w (use --replace)", name, ErrExists)
		}
	}
	srcs, err := scanSources(sources, opt.Warn)
	if err != nil {
		return nil, fmt.Errorf("images: add %q: %w", name, err)
	}
	var total int64
	for _, sr := range srcs {
		total += sr.size
	}

	id := "add-" + randID()
	stage := stagingDir + "/" + id
	lock, err := s.createStageLock(stage + ".lock")
	if err != nil {
		return nil, fmt.Errorf("images: add %q: %w", name, err)
	}
	published := false
	defer func() {
		if !published {
			_ = s.root.RemoveAll(stage)
		}
		_ = s.root.Remove(stage + ".lock")
		lock.Close()
	}()
	if err := s.root.Mkdir(stage, 0o755); err != nil {
		return nil, fmt.Errorf("images: add %q: create staging: %w", name, err)
	}

	now := time.Now
	if opt.Now != nil {
		now = opt.Now
	}
	im := &Image{Name: name, Description: opt.Description}
	if opt.Replace && opt.Description == "" {
		if old, err := s.readManifest(name); err == nil {
			im.Description = old.Description
		}
	}
	dirs := map[string]bool{".": true}
	var done int64
	buf := make([]byte, copyChunk)
	for _, sr := range srcs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("images: add %q: %w", name, err)
		}
		for d := path.Dir(sr.to); !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		if d := path.Dir(sr.to); d != "." {
			if err := s.root.MkdirAll(stage+"/"+d, 0o755); err != nil {
				return nil, fmt.Errorf("images: add %q: %w", name, err)
			}
		}
		f, err := s.copyIn(ctx, sr, stage+"/"+sr.to, buf, &done, total, opt.Progress)
		if err != nil {
			return nil, fmt.Errorf("images: add %q: %w", name, err)
		}
		im.Files = append(im.Files, f)
	}
	sort.Slice(im.Files, func(i, j int) bool { return im.Files[i].Path < im.Files[j].Path })
	im.Added = now().UTC().Truncate(time.Second)

	mb, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("images: add %q: manifest: %w", name, err)
	}
	if err := s.writeSynced(stage+"/"+ManifestName, append(mb, '\n')); err != nil {
		return nil, fmt.Errorf("images: add %q: manifest: %w", name, err)
	}
	// Directories deepest first, so every entry is durable before publish.
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Slice(dl, func(i, j int) bool { return len(dl[i]) > len(dl[j]) })
	for _, d := range dl {
		if err := s.syncDir(stage + "/" + d); err != nil {
			return nil, fmt.Errorf("images: add %q: %w", name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("images: add %q: %w", name, err)
	}

	unlock, err := s.lockStore(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	old, err := s.publish(stage, name, opt.Replace)
	if err != nil {
		return nil, fmt.Errorf("images: add %q: %w", name, err)
	}
	published = true
	_ = s.dirf.Sync()
	unlock()
	if old != "" {
		grace := opt.ReplaceGrace
		if grace == 0 {
			grace = DefaultReplaceGrace
		}
		if grace > 0 {
			t := time.NewTimer(grace)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		_ = s.root.RemoveAll(old)
	}
	return im, nil
}

// publish makes the staged directory visible as name. With replace and an
// existing image, the two directories are exchanged atomically and the old
// one's staging path is returned for deletion.
func (s *Store) publish(stage, name string, replace bool) (old string, err error) {
	_, statErr := s.root.Lstat(name)
	exists := statErr == nil
	if exists && !replace {
		return "", fmt.Errorf("%w (use --replace)", ErrExists)
	}
	if !exists {
		if err := s.root.Rename(stage, name); err != nil {
			return "", fmt.Errorf("publish: %w", err)
		}
		return "", nil
	}
	fd := int(s.dirf.Fd())
	err = unix.Renameat2(fd, stage, fd, name, unix.RENAME_EXCHANGE)
	if err == nil {
		return stage, nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EOPNOTSUPP) {
		return "", fmt.Errorf("publish: exchange: %w", err)
	}
	// No RENAME_EXCHANGE on this file system: move the old one aside, then
	// the new one in. The name is missing between the two renames.
	aside := stagingDir + "/old-" + randID()
	if err := s.root.Rename(name, aside); err != nil {
		return "", fmt.Errorf("publish: move old aside: %w", err)
	}
	if err := s.root.Rename(stage, name); err != nil {
		_ = s.root.Rename(aside, name)
		return "", fmt.Errorf("publish: %w", err)
	}
	return aside, nil
}

// createStageLock creates and flocks a staging lock file, making sure the
// lock held is the file at that path (a concurrent cleaner may remove a
// lock file between its creation and the flock).
func (s *Store) createStageLock(lp string) (*os.File, error) {
	for range 10 {
		f, err := s.root.OpenFile(lp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("staging lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			return nil, fmt.Errorf("staging lock: %w", err)
		}
		fi1, err1 := f.Stat()
		fi2, err2 := s.root.Lstat(lp)
		if err1 == nil && err2 == nil && os.SameFile(fi1, fi2) {
			return f, nil
		}
		f.Close()
	}
	return nil, errors.New("staging lock: lost to a concurrent cleaner")
}

// copyIn copies one source into the staging tree while hashing it.
func (s *Store) copyIn(ctx context.Context, sr source, dst string, buf []byte, done *int64, total int64, progress func(int64, int64)) (File, error) {
	in, err := os.Open(sr.from)
	if err != nil {
		return File{}, fmt.Errorf("open source: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return File{}, fmt.Errorf("stat source: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return File{}, fmt.Errorf("source %s is not a regular file", sr.from)
	}
	out, err := s.root.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return File{}, fmt.Errorf("create %s: %w", sr.to, err)
	}
	defer out.Close()
	if err := out.Chmod(0o644); err != nil {
		return File{}, fmt.Errorf("chmod %s: %w", sr.to, err)
	}
	h := sha256.New()
	n, err := copyHashing(ctx, out, in, h, buf, func(k int64) {
		*done += k
		if progress != nil {
			progress(*done, total)
		}
	})
	if err != nil {
		return File{}, fmt.Errorf("copy %s: %w", sr.from, err)
	}
	if err := out.Sync(); err != nil {
		return File{}, fmt.Errorf("sync %s: %w", sr.to, err)
	}
	if err := out.Close(); err != nil {
		return File{}, fmt.Errorf("close %s: %w", sr.to, err)
	}
	return File{Path: sr.to, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Role: guessRole(sr.to)}, nil
}

// copyHashing copies src to dst and into h, one chunk at a time, checking
// ctx between chunks and reporting each chunk's length.
func copyHashing(ctx context.Context, dst io.Writer, src io.Reader, h hash.Hash, buf []byte, report func(int64)) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := io.ReadFull(src, buf)
		if k > 0 {
			h.Write(buf[:k])
			if _, err := dst.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			report(int64(k))
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func (s *Store) writeSynced(name string, data []byte) error {
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Store) syncDir(name string) error {
	d, err := s.root.Open(name)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", name, err)
	}
	return nil
}

// scanSources expands the command-line sources into files with their paths
// inside the image.
func scanSources(sources []string, warn func(string)) ([]source, error) {
	if warn == nil {
		warn = func(string) {}
	}
	var out []source
	seen := map[string]string{}
	addFile := func(from, to string, size int64) error {
		to = filepath.ToSlash(to)
		if err := validFilePath(to); err != nil {
			return err
		}
		if prev, dup := seen[to]; dup {
			return fmt.Errorf("%s and %s both land on %q", prev, from, to)
		}
		seen[to] = from
		out = append(out, source{from: from, to: to, size: size})
		return nil
	}
	for _, src := range sources {
		fi, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
		switch {
		case fi.Mode().IsRegular():
			if err := addFile(src, filepath.Base(src), fi.Size()); err != nil {
				return nil, err
			}
		case fi.IsDir():
			err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if p == src || d.IsDir() {
					return nil
				}
				rel, err := filepath.Rel(src, p)
				if err != nil {
					return err
				}
				fi, err := os.Stat(p) // follows symlinks
				if err != nil {
					return fmt.Errorf("source %s: %w", p, err)
				}
				switch {
				case fi.Mode().IsRegular():
					return addFile(p, rel, fi.Size())
				case fi.IsDir():
					warn(fmt.Sprintf("skipped %s: symlink to a directory", p))
				default:
					warn(fmt.Sprintf("skipped %s: not a regular file", p))
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("source %s is neither a file nor a directory", src)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the sources hold no files")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].to < out[j].to })
	return out, nil
}

// hasHiddenPrefix reports whether an FS name is hidden from readers: the
// top-level dot entries (.staging, .lock) and each image's manifest.
func hasHiddenPrefix(name string) bool {
	if name == "." {
		return false
	}
	first, rest, _ := strings.Cut(name, "/")
	if strings.HasPrefix(first, ".") {
		return true
	}
	return rest == ManifestName
}
