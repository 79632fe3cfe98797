package ftpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"github.com/spf13/afero"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// sessionFS is the file system one logged-in session sees. It implements
// afero.Fs for ftpserverlib plus the library's ReadDir, GetHandle and
// RemoveDir extensions. Every name goes through resolve (name policy, home
// confinement) and decide (permissions, drop-box rules) before it reaches
// one of three backends:
//
//   - rendered files (Renderer), read-only, asked first;
//   - the images store (Deps.Images) mounted read-only at images/;
//   - the FTP root on disk, through an os.Root (fsroot), so "..", absolute
//     names and symlinks leaving the root fail in the kernel-backed lookup.
//
// Errors returned to the library are errDenied or errNotFound (or the
// library's ErrStorageExceeded / ErrFileNameNotAllowed for 552/553): the
// library copies them into replies, so they never carry a real path.
type sessionFS struct {
	s *session
}

var (
	_ afero.Fs                                    = (*sessionFS)(nil)
	_ ftpserver.ClientDriverExtensionFileList     = (*sessionFS)(nil)
	_ ftpserver.ClientDriverExtentionFileTransfer = (*sessionFS)(nil)
	_ ftpserver.ClientDriverExtensionRemoveDir    = (*sessionFS)(nil)
)

// check resolves name and applies the policy for o, logging a refusal.
func (f *sessionFS) check(o op, name string) (string, error) {
	s := f.s
	rel, err := resolve(s.acct.home, name)
	if err == nil {
		err = decide(s.acct, s.incoming(), o, rel)
	}
	if err != nil {
		s.refused(o, name, "policy")
		return "", errDenied
	}
	return rel, nil
}

// mapErr turns a backend error into one of the generic client errors.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fsroot.ErrNotFound):
		return errNotFound
	default:
		return errDenied
	}
}

// imageName returns the name inside the images store for rel, and whether
// rel lies under images/.
func imageName(rel string) (string, bool) {
	if rel == imagesDir {
		return ".", true
	}
	if strings.HasPrefix(rel, imagesDir+"/") {
		return rel[len(imagesDir)+1:], true
	}
	return "", false
}

// renderable reports whether rel may be a rendered name (outside images/
// and the drop box, not the root).
func (f *sessionFS) renderable(rel string) bool {
	if f.s.srv.deps.Renderer == nil || rel == "." {
		return false
	}
	if _, ok := imageName(rel); ok {
		return false
	}
	in := f.s.incoming()
	return in == "" || !under(rel, in)
}

// render asks the Renderer for rel, caching the last answer of the session
// (SIZE then RETR render once).
func (f *sessionFS) render(rel string) ([]byte, bool, error) {
	s := f.s
	if c := s.lastRender; c != nil && c.name == rel && time.Since(c.at) < 5*time.Second {
		return c.data, true, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	data, ok, err := s.srv.deps.Renderer.Render(ctx, RenderRequest{Name: rel, Client: s.remote, Server: s.local})
	if err != nil {
		s.log.Warn("render failed", "name", rel, "err", err)
		return nil, false, errNotFound
	}
	if ok {
		s.lastRender = &rendered{name: rel, data: data, at: time.Now()}
	}
	return data, ok, nil
}

// Name implements afero.Fs.
func (f *sessionFS) Name() string { return "bootyard" }

// Stat implements afero.Fs.
func (f *sessionFS) Stat(name string) (os.FileInfo, error) {
	rel, err := f.check(opStat, name)
	if err != nil {
		return nil, err
	}
	if f.renderable(rel) {
		data, ok, err := f.render(rel)
		if err != nil {
			return nil, err
		}
		if ok {
			return memInfo{name: path.Base(rel), size: int64(len(data))}, nil
		}
	}
	if in, ok := imageName(rel); ok {
		if f.s.srv.deps.Images == nil {
			return nil, errNotFound
		}
		fi, err := fs.Stat(f.s.srv.deps.Images, in)
		return fi, mapErr(err)
	}
	fi, err := f.s.root().OS().Stat(rel)
	return fi, mapErr(err)
}

// ReadDir implements ftpserver.ClientDriverExtensionFileList.
func (f *sessionFS) ReadDir(name string) ([]os.FileInfo, error) {
	rel, err := f.check(opList, name)
	if err != nil {
		return nil, err
	}
	if err := f.s.dataAllowed(); err != nil {
		return nil, err
	}
	var ents []fs.DirEntry
	if in, ok := imageName(rel); ok {
		if f.s.srv.deps.Images == nil {
			return nil, errNotFound
		}
		ents, err = fs.ReadDir(f.s.srv.deps.Images, in)
	} else {
		var d *os.File
		d, err = f.s.root().OS().Open(rel)
		if err == nil {
			ents, err = d.ReadDir(-1)
			d.Close()
		}
	}
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]os.FileInfo, 0, len(ents)+1)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), fsroot.TempPrefix) {
			continue
		}
		if rel == "." && e.Name() == imagesDir && f.s.srv.deps.Images != nil {
			continue // the mount shadows a directory of that name
		}
		if fi, err := e.Info(); err == nil {
			out = append(out, fi)
		}
	}
	if rel == "." && f.s.srv.deps.Images != nil {
		if fi, err := fs.Stat(f.s.srv.deps.Images, "."); err == nil {
			out = append(out, renamedInfo{FileInfo: fi, name: imagesDir})
		}
	}
	return out, nil
}

// GetHandle implements ftpserver.ClientDriverExtentionFileTransfer: the
// only way RETR, STOR and APPE reach files.
func (f *sessionFS) GetHandle(name string, flags int, offset int64) (ftpserver.FileTransfer, error) {
	if err := f.s.dataAllowed(); err != nil {
		return nil, err
	}
	if flags&(os.O_WRONLY|os.O_RDWR) != 0 {
		if flags&os.O_APPEND != 0 || offset != 0 {
			f.s.refused(opAppend, name, "uploads are create-only")
			return nil, errDenied
		}
		return f.create(name)
	}
	return f.open(name, offset)
}

func (f *sessionFS) create(name string) (ftpserver.FileTransfer, error) {
	s := f.s
	rel, err := f.check(opCreate, name)
	if err != nil {
		return nil, err
	}
	if f.renderable(rel) {
		if _, ok, _ := f.render(rel); ok {
			s.refused(opCreate, name, "rendered name")
			return nil, errDenied
		}
	}
	opt := fsroot.UploadOptions{Mode: 0o644}
	if s.acct.anonymous {
		a := s.anon()
		opt = fsroot.UploadOptions{Mode: 0o600, MaxBytes: int64(a.MaxUpload), Quota: s.tr.quotaNow()}
	}
	u, err := s.root().CreateUpload(rel, opt)
	switch {
	case errors.Is(err, fsroot.ErrExists):
		s.refused(opCreate, name, "exists")
		return nil, fmt.Errorf("%w: file exists", ftpserver.ErrFileNameNotAllowed)
	case err != nil:
		s.refused(opCreate, name, "create failed")
		return nil, mapErr(err)
	}
	return s.newUpload(u, rel), nil
}

func (f *sessionFS) open(name string, offset int64) (ftpserver.FileTransfer, error) {
	s := f.s
	rel, err := f.check(opRead, name)
	if err != nil {
		return nil, err
	}
	if f.renderable(rel) {
		data, ok, err := f.render(rel)
		if err != nil {
			return nil, err
		}
		if ok {
			return s.newDownload(rel, bytes.NewReader(data), nil, int64(len(data))), nil
		}
	}
	if in, ok := imageName(rel); ok {
		return f.openImage(rel, in)
	}
	file, fi, err := s.root().OpenRegular(rel, s.acct.anonymous)
	if err != nil {
		s.refused(opRead, name, "open failed")
		return nil, mapErr(err)
	}
	return s.newDownload(rel, file, file, fi.Size()), nil
}

func (f *sessionFS) openImage(rel, in string) (ftpserver.FileTransfer, error) {
	s := f.s
	if s.srv.deps.Images == nil {
		return nil, errNotFound
	}
	file, err := s.srv.deps.Images.Open(in)
	if err != nil {
		return nil, mapErr(err)
	}
	fi, err := file.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		file.Close()
		return nil, errDenied
	}
	// An *os.File goes out as is so the copy reaches sendfile.
	if osf, ok := file.(*os.File); ok {
		return s.newDownload(rel, osf, osf, fi.Size()), nil
	}
	rs, ok := file.(io.ReadSeeker)
	if !ok {
		rs = noSeek{file}
	}
	return s.newDownload(rel, rs, file, fi.Size()), nil
}

// Open implements afero.Fs; the library reaches files through GetHandle and
// ReadDir, so this serves only regular files on disk, read-only.
func (f *sessionFS) Open(name string) (afero.File, error) {
	rel, err := f.check(opRead, name)
	if err != nil {
		return nil, err
	}
	if _, ok := imageName(rel); ok {
		return nil, errDenied
	}
	file, _, err := f.s.root().OpenRegular(rel, f.s.acct.anonymous)
	if err != nil {
		return nil, mapErr(err)
	}
	return file, nil
}

// OpenFile implements afero.Fs (read-only; writes go through GetHandle).
func (f *sessionFS) OpenFile(name string, flag int, _ os.FileMode) (afero.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_TRUNC) != 0 {
		f.s.refused(opCreate, name, "direct open for writing")
		return nil, errDenied
	}
	return f.Open(name)
}

// Create implements afero.Fs; refused (uploads go through GetHandle).
func (f *sessionFS) Create(name string) (afero.File, error) {
	f.s.refused(opCreate, name, "direct create")
	return nil, errDenied
}

// Mkdir implements afero.Fs (MKD).
func (f *sessionFS) Mkdir(name string, _ os.FileMode) error {
	rel, err := f.check(opMkdir, name)
	if err != nil {
		return err
	}
	if err := f.s.root().OS().Mkdir(rel, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: exists", ftpserver.ErrFileNameNotAllowed)
		}
		return mapErr(err)
	}
	f.s.event("mkdir", "path", "/"+rel)
	return nil
}

// MkdirAll implements afero.Fs; refused (SITE MKDIR is off).
func (f *sessionFS) MkdirAll(name string, _ os.FileMode) error {
	f.s.refused(opMkdir, name, "recursive mkdir")
	return errDenied
}

// Remove implements afero.Fs (DELE): regular files only.
func (f *sessionFS) Remove(name string) error {
	rel, err := f.check(opDelete, name)
	if err != nil {
		return err
	}
	fi, err := f.s.root().OS().Lstat(rel)
	if err != nil {
		return mapErr(err)
	}
	if fi.IsDir() {
		return errDenied
	}
	if err := f.s.root().OS().Remove(rel); err != nil {
		return mapErr(err)
	}
	f.s.xfer(rel, fi.Size(), 0, 'd', true)
	f.s.event("delete", "path", "/"+rel)
	return nil
}

// RemoveDir implements ftpserver.ClientDriverExtensionRemoveDir (RMD):
// empty directories only.
func (f *sessionFS) RemoveDir(name string) error {
	rel, err := f.check(opRmdir, name)
	if err != nil {
		return err
	}
	fi, err := f.s.root().OS().Lstat(rel)
	if err != nil {
		return mapErr(err)
	}
	if !fi.IsDir() {
		return errDenied
	}
	if err := f.s.root().OS().Remove(rel); err != nil {
		return mapErr(err)
	}
	f.s.event("rmdir", "path", "/"+rel)
	return nil
}

// RemoveAll implements afero.Fs; refused (SITE RMDIR is off).
func (f *sessionFS) RemoveAll(name string) error {
	f.s.refused(opRmdir, name, "recursive remove")
	return errDenied
}

// Rename implements afero.Fs (RNFR/RNTO); it never replaces a file.
func (f *sessionFS) Rename(oldname, newname string) error {
	from, err := f.check(opRename, oldname)
	if err != nil {
		return err
	}
	to, err := f.check(opRename, newname)
	if err != nil {
		return err
	}
	r := f.s.root().OS()
	if _, err := r.Lstat(to); err == nil {
		return fmt.Errorf("%w: exists", ftpserver.ErrFileNameNotAllowed)
	}
	if err := r.Rename(from, to); err != nil {
		return mapErr(err)
	}
	f.s.event("rename", "from", "/"+from, "to", "/"+to)
	return nil
}

// Chmod implements afero.Fs; refused.
func (f *sessionFS) Chmod(name string, _ os.FileMode) error {
	f.s.refused(opAttr, name, "chmod")
	return errDenied
}

// Chown implements afero.Fs; refused.
func (f *sessionFS) Chown(name string, _, _ int) error {
	f.s.refused(opAttr, name, "chown")
	return errDenied
}

// Chtimes implements afero.Fs; refused.
func (f *sessionFS) Chtimes(name string, _, _ time.Time) error {
	f.s.refused(opAttr, name, "chtimes")
	return errDenied
}

// memInfo describes a rendered file.
type memInfo struct {
	name string
	size int64
}

func (m memInfo) Name() string       { return m.name }
func (m memInfo) Size() int64        { return m.size }
func (m memInfo) Mode() fs.FileMode  { return 0o444 }
func (m memInfo) ModTime() time.Time { return time.Now() }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }

// renamedInfo gives a FileInfo another name (the images mount point).
type renamedInfo struct {
	fs.FileInfo
	name string
}

func (r renamedInfo) Name() string { return r.name }

// noSeek adapts an fs.File that cannot seek (REST is then refused).
type noSeek struct{ fs.File }

func (noSeek) Seek(int64, int) (int64, error) { return 0, errDenied }
