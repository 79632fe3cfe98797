package images

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
)

// storeFS is the read-only view of published images returned by FS.
type storeFS struct{ root *os.Root }

var (
	_ fs.FS         = storeFS{}
	_ fs.StatFS     = storeFS{}
	_ fs.ReadDirFS  = storeFS{}
	_ fs.ReadFileFS = storeFS{}
)

func (v storeFS) check(op, name string) error {
	if !fs.ValidPath(name) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if hasHiddenPrefix(name) {
		return &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return nil
}

// Open opens a published file or directory. Regular files come back as
// *os.File; directories as a wrapper that hides internal entries; anything
// else (devices, FIFOs, sockets) is refused.
func (v storeFS) Open(name string) (fs.File, error) {
	if err := v.check("open", name); err != nil {
		return nil, err
	}
	f, err := v.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case fi.Mode().IsRegular():
		if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
			f.Close()
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return f, nil
	case fi.IsDir():
		return &dirFile{File: f, top: name == ".", image: name != "." && !strings.Contains(name, "/")}, nil
	default:
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
}

// Stat returns the FileInfo of a published file or directory.
func (v storeFS) Stat(name string) (fs.FileInfo, error) {
	if err := v.check("stat", name); err != nil {
		return nil, err
	}
	return v.root.Stat(name)
}

// ReadFile reads a published file.
func (v storeFS) ReadFile(name string) ([]byte, error) {
	f, err := v.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, ok := f.(*dirFile); ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return io.ReadAll(f)
}

// ReadDir lists a published directory, sorted by name.
func (v storeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := v.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, ok := f.(*dirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	ents, err := d.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, err
}

// dirFile is an open directory whose listing hides internal entries: dot
// entries at the top level, the manifest one level down.
type dirFile struct {
	*os.File
	top   bool // the store's top directory
	image bool // an image's top directory
}

func (d *dirFile) hidden(e fs.DirEntry) bool {
	switch {
	case d.top:
		return strings.HasPrefix(e.Name(), ".")
	case d.image:
		return e.Name() == ManifestName
	}
	return false
}

// ReadDir implements fs.ReadDirFile, leaving hidden entries out.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	for {
		ents, err := d.File.ReadDir(n)
		out := ents[:0]
		for _, e := range ents {
			if d.hidden(e) {
				continue
			}
			out = append(out, e)
		}
		if n <= 0 || len(out) > 0 || err != nil {
			if n > 0 && len(out) == 0 && err == nil {
				err = io.EOF
			}
			return out, err
		}
	}
}
