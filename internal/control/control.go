// Package control is the daemon's local control channel: a unix socket in
// the state directory (mode 0600, so only the daemon's user and root can
// use it) that answers one JSON request per connection with one JSON
// response. `bootyard status` and `bootyard leases` use it to ask a running
// daemon instead of opening its files, which the daemon holds locked.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// SocketName is the socket's file name inside the state directory.
const SocketName = "control.sock"

// ErrNoDaemon means nothing listens on the socket.
var ErrNoDaemon = errors.New("control: no daemon is running")

// Handler answers one command.
type Handler func(ctx context.Context) (any, error)

type request struct {
	Cmd string `json:"cmd"`
}

type response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Server serves commands on a unix socket.
type Server struct {
	ln       net.Listener
	path     string
	log      *slog.Logger
	mu       sync.RWMutex
	handlers map[string]Handler
}

// Listen creates the socket at path, replacing a stale one left by a
// crashed daemon but refusing to take over a live one.
func Listen(path string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control: %s: another bootyard is running with this state directory", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control: remove stale socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control: chmod %s: %w", path, err)
	}
	return &Server{ln: ln, path: path, log: log, handlers: map[string]Handler{}}, nil
}

// Path returns the socket path.
func (s *Server) Path() string { return s.path }

// Handle registers h for cmd.
func (s *Server) Handle(cmd string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[cmd] = h
}

// Serve answers connections until ctx ends, then removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				os.Remove(s.path)
				return nil
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		go s.serveConn(ctx, c)
	}
}

// Close stops the server and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	os.Remove(s.path)
	return err
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var req request
	if err := json.NewDecoder(io.LimitReader(c, 4096)).Decode(&req); err != nil {
		json.NewEncoder(c).Encode(response{Error: "bad request"})
		return
	}
	s.mu.RLock()
	h, ok := s.handlers[req.Cmd]
	s.mu.RUnlock()
	if !ok {
		json.NewEncoder(c).Encode(response{Error: fmt.Sprintf("unknown command %q", req.Cmd)})
		return
	}
	res, err := h(ctx)
	if err != nil {
		json.NewEncoder(c).Encode(response{Error: err.Error()})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		json.NewEncoder(c).Encode(response{Error: "encode: " + err.Error()})
		return
	}
	json.NewEncoder(c).Encode(response{OK: true, Result: b})
}

// Call sends cmd to the daemon listening on path and decodes its result
// into out. It returns ErrNoDaemon when nothing listens there.
func Call(ctx context.Context, path, cmd string, out any) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errConnRefused) {
			return ErrNoDaemon
		}
		return fmt.Errorf("control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(request{Cmd: cmd}); err != nil {
		return fmt.Errorf("control: send: %w", err)
	}
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("control: read reply: %w", err)
	}
	if !resp.OK {
		return fmt.Errorf("control: %s", resp.Error)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Result, out); err != nil {
			return fmt.Errorf("control: decode reply: %w", err)
		}
	}
	return nil
}
