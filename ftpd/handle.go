package ftpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
	"golang.org/x/time/rate"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// Copy sizes. A plain download goes to the kernel in sendfileChunk pieces
// (one or a few sendfile(2) calls each); between pieces the data deadline is
// pushed forward and the rate limiter consulted.
const (
	sendfileChunk = 4 << 20
	copyBuf       = 256 << 10
)

// deadliner is the part of net.Conn (and *tls.Conn) the copy loops use to
// enforce data_timeout on connections the library opened itself.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// transfer is what downloads and uploads share: accounting, the transfer-error
// hook, rate limiting and the deadline of the data connection.
type transfer struct {
	s       *session
	rel     string
	start   time.Time
	n       int64
	xferErr error
	lim     *rate.Limiter
	timeout time.Duration
	once    sync.Once
}

func (t *transfer) init(s *session, rel string) {
	t.s, t.rel, t.start, t.timeout = s, rel, time.Now(), s.pol().cfg.DataTimeout.D()
	if r := s.maxRate(); r > 0 {
		burst := int(r / 8)
		burst = max(16<<10, min(burst, 1<<20))
		t.lim = rate.NewLimiter(rate.Limit(r), burst)
	}
	s.srv.transferStarted()
}

// chunk returns how much to move next: the burst under a rate limit.
func (t *transfer) chunk(def int) int {
	if t.lim != nil {
		return min(def, t.lim.Burst())
	}
	return def
}

func (t *transfer) wait(n int) error {
	if t.lim == nil || n <= 0 {
		return nil
	}
	return t.lim.WaitN(t.s.ctx, n)
}

func (t *transfer) deadline(c any, write bool) {
	if t.timeout <= 0 {
		return
	}
	if d, ok := c.(deadliner); ok {
		if write {
			_ = d.SetWriteDeadline(time.Now().Add(t.timeout))
		} else {
			_ = d.SetReadDeadline(time.Now().Add(t.timeout))
		}
	}
}

// TransferError implements ftpserver.FileTransferError: the library calls it
// before Close when the data connection broke, was aborted or a copy failed.
func (t *transfer) TransferError(err error) { t.xferErr = err }

// download serves RETR.
type download struct {
	transfer
	r    io.ReadSeeker
	f    *os.File  // non-nil for files on disk: enables sendfile
	c    io.Closer // closed at the end (may be nil)
	size int64
}

var (
	_ ftpserver.FileTransfer      = (*download)(nil)
	_ ftpserver.FileTransferError = (*download)(nil)
	_ io.WriterTo                 = (*download)(nil)
)

func (s *session) newDownload(rel string, r io.ReadSeeker, c io.Closer, size int64) *download {
	d := &download{r: r, c: c, size: size}
	d.init(s, rel)
	if f, ok := r.(*os.File); ok {
		d.f = f
	}
	return d
}

// Read implements io.Reader (the library only uses it for hashing, which is
// off, but it must work).
func (d *download) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.n += int64(n)
	return n, err
}

// Write implements io.Writer; downloads are read-only.
func (d *download) Write([]byte) (int, error) { return 0, errDenied }

// Seek implements io.Seeker (REST before RETR).
func (d *download) Seek(off int64, whence int) (int64, error) { return d.r.Seek(off, whence) }

// WriteTo implements io.WriterTo; the library's io.Copy(conn, file) lands
// here.
//
// Why sendfile holds: ftpserverlib copies with io.Copy(dataConn, handle). An
// *os.File would do that by itself, but bootyard needs a handle of its own
// (accounting, the transfer-error hook, xferlog), so the handle implements
// WriterTo and, when the data connection is a plain *net.TCPConn and the
// file is an *os.File, calls TCPConn.ReadFrom with an io.LimitedReader over
// the file: net's sendFile accepts exactly that pair and issues sendfile(2),
// so the bytes never enter user space. Measured with
// `strace -f -c -e trace=sendfile,read,write` on a 256 MiB RETR over
// loopback: see docs/ftp.md. TLS data connections (and rendered files) take
// the generic copy loop.
func (d *download) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if tc, ok := w.(*net.TCPConn); ok && d.f != nil {
		for {
			n := int64(d.chunk(sendfileChunk))
			if err := d.wait(int(n)); err != nil {
				return total, err
			}
			d.deadline(tc, true)
			m, err := tc.ReadFrom(&io.LimitedReader{R: d.f, N: n})
			total += m
			d.n += m
			d.s.srv.stats.bytesOut.Add(m)
			if err != nil {
				return total, err
			}
			if m < n { // end of file
				return total, nil
			}
		}
	}
	buf := make([]byte, d.chunk(copyBuf))
	for {
		n, rerr := d.r.Read(buf)
		if n > 0 {
			if err := d.wait(n); err != nil {
				return total, err
			}
			d.deadline(w, true)
			m, werr := w.Write(buf[:n])
			total += int64(m)
			d.n += int64(m)
			d.s.srv.stats.bytesOut.Add(int64(m))
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Close implements io.Closer: it logs the transfer.
func (d *download) Close() error {
	d.once.Do(func() {
		if d.c != nil {
			d.c.Close()
		}
		ok := d.xferErr == nil
		d.s.srv.stats.downloads.Add(1)
		d.s.transferDone("download", d.rel, d.n, d.start, ok, d.xferErr)
		d.s.xfer(d.rel, d.n, time.Since(d.start), 'o', ok)
	})
	return nil
}

// upload serves STOR (and STOU): the data goes into an fsroot.Upload under
// a hidden temporary name and is linked into place by Close only when the
// library reported no transfer error and nothing failed.
type upload struct {
	transfer
	u    *fsroot.Upload
	werr error
}

var (
	_ ftpserver.FileTransfer      = (*upload)(nil)
	_ ftpserver.FileTransferError = (*upload)(nil)
	_ io.ReaderFrom               = (*upload)(nil)
)

func (s *session) newUpload(u *fsroot.Upload, rel string) *upload {
	up := &upload{u: u}
	up.init(s, rel)
	return up
}

// capErr maps the upload caps to the library's 552 error.
func capErr(err error) error {
	switch {
	case errors.Is(err, fsroot.ErrTooLarge):
		return fmt.Errorf("%w: file too large", ftpserver.ErrStorageExceeded)
	case errors.Is(err, fsroot.ErrQuota):
		return fmt.Errorf("%w: quota exceeded", ftpserver.ErrStorageExceeded)
	}
	return err
}

// Write implements io.Writer.
func (u *upload) Write(p []byte) (int, error) {
	n, err := u.u.Write(p)
	u.n += int64(n)
	u.s.srv.stats.bytesIn.Add(int64(n))
	if err != nil {
		u.werr = capErr(err)
		return n, u.werr
	}
	return n, nil
}

// Read implements io.Reader; uploads are write-only.
func (u *upload) Read([]byte) (int, error) { return 0, errDenied }

// Seek implements io.Seeker; only the start is allowed (no resume).
func (u *upload) Seek(off int64, whence int) (int64, error) {
	if off == 0 && whence == io.SeekStart {
		return 0, nil
	}
	return 0, errDenied
}

// ReadFrom implements io.ReaderFrom; the library's io.Copy(file, conn)
// lands here, so the data deadline and the rate limit apply.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, u.chunk(copyBuf))
	var total int64
	for {
		u.deadline(r, false)
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := u.wait(n); err != nil {
				return total, err
			}
			m, werr := u.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// Close implements io.Closer: commit on a clean transfer, abort otherwise.
func (u *upload) Close() error {
	var err error
	u.once.Do(func() {
		ok := u.xferErr == nil && u.werr == nil && u.s.ctx.Err() == nil
		cause := errors.Join(u.xferErr, u.werr)
		if ok {
			if err = u.u.Commit(); err != nil {
				ok = false
				cause = err
				if errors.Is(err, fsroot.ErrExists) {
					err = fmt.Errorf("%w: file exists", ftpserver.ErrFileNameNotAllowed)
				} else {
					err = errDenied
				}
			}
		} else {
			u.u.Abort()
			if u.werr != nil {
				err = u.werr
			}
		}
		u.s.srv.stats.uploads.Add(1)
		u.s.transferDone("upload", u.rel, u.n, u.start, ok, cause)
		u.s.xfer(u.rel, u.n, time.Since(u.start), 'i', ok)
	})
	return err
}
