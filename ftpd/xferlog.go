package ftpd

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// xferLog writes the wu-ftpd/vsftpd xferlog format, one line per transfer,
// which existing analysers (xferstats, webalizer, awstats) read:
//
//	Mon Jan  2 15:04:05 2006 1 10.0.0.5 1048576 /incoming/node01.log b _ i a node01@lab ftp 0 * c
//
// current-time transfer-time(s) remote-host file-size file-name
// transfer-type(b) special-action(_) direction(o/i/d) access-mode(a/r)
// user-name(anonymous: the e-mail given) service-name(ftp) auth-method(0)
// auth-user-id(*) completion(c/i). Fields come from clients only after
// sanitising: no spaces or control characters can break a line.
type xferLog struct {
	mu sync.Mutex
	w  io.WriteCloser
}

type xferRecord struct {
	when      time.Time
	dur       time.Duration
	host      string
	size      int64
	name      string
	dir       byte // 'o', 'i', 'd'
	anonymous bool
	user      string
	complete  bool
}

func (r xferRecord) String() string {
	secs := int64((r.dur + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	mode, status := "r", "i"
	if r.anonymous {
		mode = "a"
	}
	if r.complete {
		status = "c"
	}
	return fmt.Sprintf("%s %d %s %d %s b _ %c %s %s ftp 0 * %s\n",
		r.when.Format("Mon Jan _2 15:04:05 2006"), secs, r.host, r.size,
		sanitize(r.name, 1024), r.dir, mode, sanitize(r.user, 64), status)
}

func (x *xferLog) write(r xferRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.w != nil {
		_, _ = io.WriteString(x.w, r.String())
	}
}

func (x *xferLog) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.w != nil {
		x.w.Close()
		x.w = nil
	}
}

// Close implements io.Closer.
func (x *xferLog) Close() error { x.close(); return nil }
