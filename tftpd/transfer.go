package tftpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/bootyard/bootyard/internal/fsroot"
)

// Texts sent to clients. pin/tftp sends a handler's error text with code 1;
// keep them generic (no paths, no causes).
var (
	errNotFound = errors.New("file not found")
	errAccess   = errors.New("access violation")
	errBusy     = errors.New("server busy, try again later")
	errExists   = errors.New("file already exists")
	errTooLarge = errors.New("file too large")
	errInternal = errors.New("internal error")
	errStopping = errors.New("server shutting down")
)

// renderTimeout bounds one Renderer call.
const renderTimeout = 5 * time.Second

// transfer is one request as it is served and logged.
type transfer struct {
	op        string // "read" or "write"
	client    netip.AddrPort
	server    netip.Addr
	requested string
	resolved  string
	source    string // "file", "rendered", "images", "upload"
	blksize   int
	bytes     int64
	size      int64 // size of the file being read; -1 when unknown
	start     time.Time
	outcome   string // "ok", "not_found", "denied", "busy", ... , "failed"
	cause     error
	release   func()
}

// begin starts the record of a transfer.
func (s *Server) begin(op, filename string, peer any) *transfer {
	t := &transfer{op: op, requested: filename, start: time.Now(), blksize: 512, size: -1}
	if p, ok := peer.(interface{ RemoteAddr() net.UDPAddr }); ok {
		ra := p.RemoteAddr()
		t.client = ra.AddrPort()
		t.client = netip.AddrPortFrom(t.client.Addr().Unmap(), t.client.Port())
		pr := s.takePending(ra.String())
		t.server, t.blksize = pr.server, max(pr.blksize, 512)
		if s.spBlock > 0 {
			t.blksize = min(t.blksize, s.spBlock) // pin/tftp's single-port cap
		}
	}
	return t
}

// acquire takes a concurrency slot; the gate checked already, this is the
// authoritative count.
func (s *Server) acquire(t *transfer) error {
	rel, err := s.conc.Acquire(t.client.Addr())
	if err != nil {
		t.outcome, t.cause = "busy", err
		s.c.busy.Add(1)
		return errBusy
	}
	t.release = rel
	return nil
}

// finish counts and logs a transfer. Served transfers get one info line
// each; refusals before any data go through the rate-limited logger.
func (s *Server) finish(t *transfer) {
	if t.release != nil {
		t.release()
	}
	if t.outcome == "" {
		t.outcome = "ok"
		if t.cause != nil {
			t.outcome = "failed"
		}
	}
	switch t.outcome {
	case "ok":
		s.c.completed.Add(1)
	case "unacknowledged":
		s.c.unacknowledged.Add(1)
	default:
		s.c.failed.Add(1)
	}
	switch t.op {
	case "read":
		s.c.bytesSent.Add(uint64(t.bytes))
	case "write":
		s.c.bytesReceived.Add(uint64(t.bytes))
	}
	args := []any{
		slog.String("op", t.op),
		slog.String("client", t.client.String()),
		slog.String("file", t.requested),
		slog.String("resolved", t.resolved),
		slog.String("source", t.source),
		slog.Int64("bytes", t.bytes),
		slog.Duration("duration", time.Since(t.start)),
		slog.Int("blksize", t.blksize),
		slog.String("outcome", t.outcome),
	}
	if t.cause != nil {
		args = append(args, slog.String("err", t.cause.Error()))
	}
	switch t.outcome {
	case "ok", "failed", "too_large", "panic":
		s.log.Info("transfer", args...)
	default:
		s.rlog.Log(slog.LevelInfo, "refused_"+t.outcome, "transfer", args...)
	}
}

// recoverTo turns a panic in a handler (pin/tftp's send-ahead path panics on
// some read errors) into a failed transfer.
func (s *Server) recoverTo(t *transfer, err *error) {
	if p := recover(); p != nil {
		s.c.panics.Add(1)
		t.outcome, t.cause = "panic", fmt.Errorf("recovered panic: %v", p)
		*err = errInternal
	}
	s.finish(t)
}

// readHandler serves an RRQ. Whatever happens it ends in rf.ReadFrom or an
// error, so pin/tftp always closes the transfer's socket.
func (s *Server) readHandler(filename string, rf io.ReaderFrom) (err error) {
	s.c.reads.Add(1)
	t := s.begin("read", filename, rf)
	defer s.recoverTo(t, &err)
	return s.serveRead(t, rf)
}

func (s *Server) serveRead(t *transfer, rf io.ReaderFrom) error {
	if s.closing.Load() {
		t.outcome = "stopping"
		return errStopping
	}
	if err := s.acquire(t); err != nil {
		return err
	}
	st := s.cur.Load()
	name, err := normalize(t.requested, st.rules)
	if err != nil {
		t.outcome, t.cause = "denied", err
		s.c.denied.Add(1)
		return errAccess
	}
	t.resolved = name
	ot, _ := rf.(tftp.OutgoingTransfer)

	if s.renderer != nil {
		ctx, cancel := context.WithTimeout(s.ctx, renderTimeout)
		data, ok, err := s.renderer.Render(ctx, RenderRequest{Name: name, Client: t.client.Addr(), Server: t.server})
		cancel()
		if err != nil {
			t.source, t.outcome, t.cause = "rendered", "render_error", err
			s.c.renderErrors.Add(1)
			return errInternal
		}
		if ok {
			t.source = "rendered"
			s.c.rendered.Add(1)
			t.size = int64(len(data))
			if ot != nil {
				ot.SetSize(t.size)
			}
			return s.send(t, rf, bytes.NewReader(data))
		}
	}

	var (
		f    io.ReadCloser
		size int64
	)
	if in, ok := imageName(name); ok && s.images != nil {
		t.source = "images"
		f, size, err = openImage(s.images, in, st.cfg.RequireWorldReadable)
		if err == nil {
			s.c.images.Add(1)
		}
	} else {
		t.source = "file"
		root := s.fsRoot()
		if root == nil {
			t.outcome = "stopping"
			return errStopping
		}
		var fi fs.FileInfo
		var osf io.ReadCloser
		osf, fi, err = openRegular(root, name, st.cfg.RequireWorldReadable)
		if err == nil {
			f, size = osf, fi.Size()
		}
	}
	if err != nil {
		t.cause = err
		if errors.Is(err, fsroot.ErrNotFound) {
			t.outcome = "not_found"
			s.c.notFound.Add(1)
			return errNotFound
		}
		t.outcome = "denied"
		s.c.denied.Add(1)
		return errAccess
	}
	defer f.Close()
	t.size = size
	if ot != nil {
		ot.SetSize(size)
	}
	return s.send(t, rf, bufio.NewReaderSize(f, readAhead(size)))
}

// maxReadAhead is the read-ahead buffer of a large file: one read(2) per
// 128 blocks of 512 bytes, 44 of 1468.
const maxReadAhead = 64 << 10

// readAhead sizes the read-ahead buffer of a file of size bytes: the whole
// file when it is small (boot menus and configs are a few KiB, and a 64 KiB
// buffer for each was most of a small transfer's garbage), maxReadAhead
// otherwise.
func readAhead(size int64) int {
	return int(min(max(size+1, 512), maxReadAhead))
}

// openRegular is fsroot's regular-file open, as a ReadCloser.
func openRegular(root *fsroot.Root, name string, worldReadable bool) (io.ReadCloser, fs.FileInfo, error) {
	f, fi, err := root.OpenRegular(name, worldReadable)
	if err != nil {
		return nil, nil, err
	}
	return f, fi, nil
}

// send streams r to the client.
func (s *Server) send(t *transfer, rf io.ReaderFrom, r io.Reader) error {
	n, err := rf.ReadFrom(&stopReader{r: r, s: s})
	t.bytes = n
	if err != nil {
		// pin/tftp has told the client (or the client told us).
		t.cause = err
		if n == t.size && isTimeout(err) {
			// Every block went out and only the last ACK is missing: the
			// client may have the whole file (a lost final ACK looks the
			// same), so this is not logged as a failure.
			t.outcome = "unacknowledged"
		}
		return nil
	}
	return nil
}

// isTimeout reports whether err is a read deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// stopReader fails reads once Close was called, so a forced stop ends
// transfers at their next block.
type stopReader struct {
	r io.Reader
	s *Server
}

func (sr *stopReader) Read(p []byte) (int, error) {
	if sr.s.closing.Load() {
		return 0, errStopping
	}
	return sr.r.Read(p)
}

// openImage opens name in the images store as a regular file. When the
// store can stat, the type is checked before the open too, so a FIFO cannot
// block it (fs.FS has no O_NONBLOCK); the check on the opened file is the
// one that counts.
func openImage(images fs.FS, name string, worldReadable bool) (io.ReadCloser, int64, error) {
	if !fs.ValidPath(name) {
		return nil, 0, fmt.Errorf("%w: invalid image path", fsroot.ErrDenied)
	}
	check := func(fi fs.FileInfo) error {
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: %s is not a regular file", fsroot.ErrDenied, name)
		}
		if worldReadable && fi.Mode().Perm()&0o004 == 0 {
			return fmt.Errorf("%w: %s is not world-readable", fsroot.ErrDenied, name)
		}
		return nil
	}
	if sfs, ok := images.(fs.StatFS); ok {
		fi, err := sfs.Stat(name)
		if err != nil {
			return nil, 0, classifyFS(err)
		}
		if err := check(fi); err != nil {
			return nil, 0, err
		}
	}
	f, err := images.Open(name)
	if err != nil {
		return nil, 0, classifyFS(err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = check(fi)
	}
	if err != nil {
		f.Close()
		return nil, 0, classifyFS(err)
	}
	return f, fi.Size(), nil
}

// classifyFS maps fs errors to fsroot's classes.
func classifyFS(err error) error {
	switch {
	case errors.Is(err, fsroot.ErrDenied), errors.Is(err, fsroot.ErrNotFound):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v", fsroot.ErrNotFound, err)
	default:
		return fmt.Errorf("%w: %v", fsroot.ErrDenied, err)
	}
}

// writeHandler receives a WRQ into a create-only upload. It ends in
// wt.WriteTo or an error.
func (s *Server) writeHandler(filename string, wt io.WriterTo) (err error) {
	s.c.writes.Add(1)
	t := s.begin("write", filename, wt)
	t.source = "upload"
	defer s.recoverTo(t, &err)
	return s.serveWrite(t, wt)
}

func (s *Server) serveWrite(t *transfer, wt io.WriterTo) error {
	if s.closing.Load() {
		t.outcome = "stopping"
		return errStopping
	}
	if err := s.acquire(t); err != nil {
		return err
	}
	st := s.cur.Load()
	quota, ready := s.uploadState()
	root := s.fsRoot()
	if !st.cfg.Uploads.Enabled || !ready || root == nil {
		t.outcome = "denied"
		s.c.denied.Add(1)
		return errAccess
	}
	name, err := normalize(t.requested, st.rules)
	if err == nil {
		err = uploadName(name, st.cfg.Uploads.Dir)
	}
	if err != nil {
		t.outcome, t.cause = "denied", err
		s.c.denied.Add(1)
		return errAccess
	}
	t.resolved = name
	maxBytes := int64(st.cfg.Uploads.MaxBytes)
	if it, ok := wt.(tftp.IncomingTransfer); ok && maxBytes > 0 {
		if n, ok := it.Size(); ok && n > maxBytes {
			t.outcome = "too_large"
			s.c.tooLarge.Add(1)
			return errTooLarge
		}
	}
	up, err := root.CreateUpload(name, fsroot.UploadOptions{MaxBytes: maxBytes, Quota: quota, Mode: 0o600})
	if err != nil {
		t.cause = err
		if errors.Is(err, fsroot.ErrExists) {
			t.outcome = "exists"
			s.c.exists.Add(1)
			return errExists
		}
		t.outcome = "denied"
		s.c.denied.Add(1)
		return errAccess
	}
	n, err := wt.WriteTo(&stopWriter{w: up, s: s})
	t.bytes = n
	if err != nil {
		// pin/tftp has sent the error (or received one); drop the data.
		up.Abort()
		t.cause = err
		if errors.Is(err, fsroot.ErrTooLarge) || errors.Is(err, fsroot.ErrQuota) {
			t.outcome = "too_large"
			s.c.tooLarge.Add(1)
		}
		return nil
	}
	if err := up.Commit(); err != nil {
		t.cause = err
		if errors.Is(err, fsroot.ErrExists) {
			t.outcome = "exists"
			s.c.exists.Add(1)
			return errExists
		}
		t.outcome = "failed"
		return errInternal
	}
	return nil
}

// stopWriter fails writes once Close was called.
type stopWriter struct {
	w io.Writer
	s *Server
}

func (sw *stopWriter) Write(p []byte) (int, error) {
	if sw.s.closing.Load() {
		return 0, errStopping
	}
	return sw.w.Write(p)
}
