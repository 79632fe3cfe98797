// Package appliance is the composition root: the one place where the
// services meet. It builds the image store and the profile set once, hands
// them to the DHCP, TFTP and FTP services through the small interfaces each
// service declares, binds every socket, drops privileges, runs the services
// under one context, drains them on shutdown and swaps profiles and limits
// on reload.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bootyard/bootyard/dhcp"
	"github.com/bootyard/bootyard/ftpd"
	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/config"
	"github.com/bootyard/bootyard/internal/control"
	"github.com/bootyard/bootyard/internal/privdrop"
	"github.com/bootyard/bootyard/internal/units"
	"github.com/bootyard/bootyard/profiles"
	"github.com/bootyard/bootyard/tftpd"
)

// service is what every protocol server offers the appliance.
type service interface {
	Listen() error
	Addr() net.Addr
	Serve(ctx context.Context) error
	Close() error
}

type named struct {
	name string
	svc  service
}

// Appliance is one running bootyard: its services and the shared state they
// read. Build it, then Listen, DropPrivileges, Serve.
type Appliance struct {
	log   *slog.Logger
	store *images.Store
	set   atomic.Pointer[profiles.Set]

	mu  sync.Mutex // guards cfg during Reload
	cfg *config.Config

	tftp    *tftpd.Server
	ftp     *ftpd.Server
	dhcp    *dhcp.Server
	svcs    []named
	ctl     *control.Server
	started time.Time
}

// Status is what the control socket's "status" command returns.
type Status struct {
	Started  time.Time       `json:"started"`
	Config   string          `json:"config"`
	Services []ServiceStatus `json:"services"`
	Profiles int             `json:"profiles"`
	Machines int             `json:"machines"`
	Rules    int             `json:"rules"`
}

// ServiceStatus is one service's address and counters.
type ServiceStatus struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Stats any    `json:"stats"`
}

// Build opens the image store, compiles the profiles and constructs every
// enabled service. It binds nothing yet.
func Build(cfg *config.Config, log *slog.Logger) (*Appliance, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Appliance{log: log, cfg: cfg}
	if err := os.MkdirAll(cfg.Server.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("appliance: state directory: %w", err)
	}
	store, err := images.Open(cfg.Images.Dir)
	if err != nil {
		return nil, fmt.Errorf("appliance: images: %w", err)
	}
	a.store = store
	set, problems, warnings := profiles.Compile(profiles.Input{
		Profiles: cfg.Profiles, Machines: cfg.Machines, Rules: cfg.Rules,
		BaseDir: configDir(cfg), Images: store,
	})
	if len(problems) > 0 {
		return nil, fmt.Errorf("appliance: profiles: %w", problems)
	}
	for _, w := range warnings {
		log.Warn("profiles: " + w)
	}
	a.set.Store(set)

	if cfg.TFTP.Enabled {
		s, err := tftpd.New(cfg.TFTP, tftpd.Deps{
			Logger:   log,
			Renderer: tftpRenderer{a},
			Images:   store.FS(),
		})
		if err != nil {
			return nil, fmt.Errorf("appliance: tftp: %w", err)
		}
		a.tftp = s
		a.svcs = append(a.svcs, named{"tftp", s})
	}
	if cfg.FTP.Enabled {
		s, err := ftpd.New(cfg.FTP, ftpd.Deps{
			Logger:   log,
			StateDir: cfg.Server.StateDir,
			Images:   store.FS(),
			Renderer: ftpRenderer{a},
		})
		if err != nil {
			return nil, fmt.Errorf("appliance: ftp: %w", err)
		}
		a.ftp = s
		a.svcs = append(a.svcs, named{"ftp", s})
	}
	if cfg.DHCP.Mode != dhcp.ModeOff {
		s, err := dhcp.New(cfg.DHCP, dhcp.Deps{
			Logger:    log,
			Planner:   planner{a},
			LeasePath: filepath.Join(cfg.Server.StateDir, "leases.db"),
		})
		if err != nil {
			return nil, fmt.Errorf("appliance: dhcp: %w", err)
		}
		a.dhcp = s
		a.svcs = append(a.svcs, named{"dhcp", s})
	}
	return a, nil
}

func configDir(cfg *config.Config) string {
	if cfg.File == "" {
		return cfg.Server.StateDir
	}
	abs, err := filepath.Abs(cfg.File)
	if err != nil {
		return filepath.Dir(cfg.File)
	}
	return filepath.Dir(abs)
}

// Listen opens the control socket, then binds every service's sockets and
// opens its files. On the first failure it closes what it opened and
// returns an error naming the service.
func (a *Appliance) Listen() error {
	ctl, err := control.Listen(filepath.Join(a.cfg.Server.StateDir, control.SocketName), a.log)
	if err != nil {
		return err
	}
	a.ctl = ctl
	ctl.Handle("status", func(context.Context) (any, error) { return a.Status(), nil })
	ctl.Handle("leases", func(context.Context) (any, error) {
		if a.dhcp == nil {
			return []dhcp.Lease{}, nil
		}
		return a.dhcp.Leases(), nil
	})
	for i, n := range a.svcs {
		if err := n.svc.Listen(); err != nil {
			for _, m := range a.svcs[:i] {
				m.svc.Close()
			}
			ctl.Close()
			return fmt.Errorf("%s: %w", n.name, err)
		}
		// Each service logs one "listening" line per socket it bound.
	}
	return nil
}

// Addrs returns the bound address of each service, by name.
func (a *Appliance) Addrs() map[string]net.Addr {
	m := map[string]net.Addr{}
	for _, n := range a.svcs {
		m[n.name] = n.svc.Addr()
	}
	return m
}

// DropPrivileges switches to server.user when running as root, after
// handing the directories the daemon writes to that user. With allow_root
// (and user = "") it keeps root and says so.
func (a *Appliance) DropPrivileges() error {
	s := a.cfg.Server
	if !privdrop.IsRoot() {
		return nil
	}
	if s.User == "" {
		if !s.AllowRoot {
			return errors.New("privileges: running as root with no server.user: set allow_root = true to keep root")
		}
		a.log.Warn("keeping root privileges (server.allow_root = true): a bug in any service is a root compromise")
		return nil
	}
	acct, fellBack, err := privdrop.Lookup(s.User, s.User == "bootyard")
	if err != nil {
		return fmt.Errorf("privileges: %w", err)
	}
	if fellBack {
		a.log.Info("user not found, falling back", "user", s.User, "fallback", acct.Name)
	}
	for _, d := range a.writableDirs() {
		if err := privdrop.Chown(d, acct); err != nil {
			return fmt.Errorf("privileges: %w", err)
		}
	}
	if err := privdrop.Drop(acct); err != nil {
		return fmt.Errorf("privileges: %w", err)
	}
	a.log.Info("dropped privileges", "user", acct.Name, "uid", acct.UID, "gid", acct.GID)
	return nil
}

// writableDirs are the directories the services write after the drop.
func (a *Appliance) writableDirs() []string {
	c := a.cfg
	dirs := []string{c.Server.StateDir}
	if c.TFTP.Enabled && c.TFTP.Uploads.Enabled {
		dirs = append(dirs, filepath.Join(c.TFTP.Root, c.TFTP.Uploads.Dir))
	}
	if c.FTP.Enabled && c.FTP.Anonymous.Enabled {
		dirs = append(dirs, filepath.Join(c.FTP.Root, c.FTP.Anonymous.Incoming))
	}
	for _, ln := range c.FTP.Listeners {
		if !c.FTP.Enabled || ln.Anonymous == nil || !ln.Anonymous.Enabled {
			continue
		}
		root := ln.Root
		if root == "" {
			root = c.FTP.Root
		}
		dirs = append(dirs, filepath.Join(root, ln.Anonymous.Incoming))
	}
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// Serve runs every service until ctx ends, then gives them
// server.shutdown_timeout to drain before closing them. The first service
// that fails stops the others, and its error is returned.
func (a *Appliance) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	a.started = time.Now()
	var wg sync.WaitGroup
	errc := make(chan error, len(a.svcs))
	if a.ctl != nil {
		go func() {
			if err := a.ctl.Serve(ctx); err != nil {
				a.log.Warn("control socket stopped", "err", err)
			}
		}()
	}
	for _, n := range a.svcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.svc.Serve(ctx); err != nil {
				err = fmt.Errorf("%s: %w", n.name, err)
				errc <- err
				cancel(err)
			}
		}()
	}
	a.log.Info("ready", "services", len(a.svcs))
	<-ctx.Done()
	a.log.Info("shutting down", "drain_timeout", a.cfg.Server.ShutdownTimeout.String())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(a.cfg.Server.ShutdownTimeout.D()):
		a.log.Warn("drain timeout reached, closing running transfers")
		a.Close()
		<-done
	}
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close stops every service at once.
func (a *Appliance) Close() {
	for _, n := range a.svcs {
		n.svc.Close()
	}
	if a.ctl != nil {
		a.ctl.Close()
	}
}

// Status reports the services, their addresses and counters.
func (a *Appliance) Status() Status {
	a.mu.Lock()
	cfg := a.cfg
	a.mu.Unlock()
	st := Status{Started: a.started, Config: cfg.File, Profiles: len(cfg.Profiles), Machines: len(cfg.Machines), Rules: len(cfg.Rules)}
	for _, n := range a.svcs {
		ss := ServiceStatus{Name: n.name, Addr: n.svc.Addr().String()}
		switch n.name {
		case "tftp":
			ss.Stats = a.tftp.Stats()
		case "ftp":
			ss.Stats = a.ftp.Stats()
		case "dhcp":
			ss.Stats = a.dhcp.Stats()
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// Reload applies a new configuration without a restart: profiles, machines
// and rules are swapped atomically; service limits and policies are handed
// to each service's Reload. Settings that need a restart (listen addresses,
// modes) are logged and left as they are. On error the old configuration
// stays in force.
func (a *Appliance) Reload(cfg *config.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	set, problems, warnings := profiles.Compile(profiles.Input{
		Profiles: cfg.Profiles, Machines: cfg.Machines, Rules: cfg.Rules,
		BaseDir: configDir(cfg), Images: a.store,
	})
	if len(problems) > 0 {
		return fmt.Errorf("profiles: %w", problems)
	}
	for _, w := range warnings {
		a.log.Warn("profiles: " + w)
	}
	old := a.cfg
	var errs []error
	if a.tftp != nil {
		if err := a.tftp.Reload(cfg.TFTP); err != nil {
			errs = append(errs, fmt.Errorf("tftp: %w", err))
		}
	}
	if a.ftp != nil {
		if err := a.ftp.Reload(cfg.FTP); err != nil {
			errs = append(errs, fmt.Errorf("ftp: %w", err))
		}
	}
	if a.dhcp != nil {
		if err := a.dhcp.Reload(cfg.DHCP); err != nil {
			errs = append(errs, fmt.Errorf("dhcp: %w", err))
		}
	}
	if cfg.TFTP.Enabled != old.TFTP.Enabled || cfg.FTP.Enabled != old.FTP.Enabled || cfg.DHCP.Mode != old.DHCP.Mode {
		a.log.Warn("reload: turning a service on or off needs a restart")
	}
	if cfg.Images.Dir != old.Images.Dir || cfg.Server.StateDir != old.Server.StateDir {
		a.log.Warn("reload: images.dir and server.state_dir need a restart")
	}
	a.set.Store(set)
	a.cfg = cfg
	return errors.Join(errs...)
}

// Profiles returns the profile set in force.
func (a *Appliance) Profiles() *profiles.Set { return a.set.Load() }

// Adapters from the shared state to each service's own interfaces. They read
// the current profile set on every call, so a reload takes effect at once.

type tftpRenderer struct{ a *Appliance }

func (r tftpRenderer) Render(ctx context.Context, req tftpd.RenderRequest) ([]byte, bool, error) {
	return r.a.set.Load().RenderFile(ctx, req.Name, req.Client, req.Server)
}

type ftpRenderer struct{ a *Appliance }

func (r ftpRenderer) Render(ctx context.Context, req ftpd.RenderRequest) ([]byte, bool, error) {
	return r.a.set.Load().RenderFile(ctx, req.Name, req.Client, req.Server)
}

type planner struct{ a *Appliance }

func (p planner) Plan(ctx context.Context, f profiles.Facts) (profiles.Plan, error) {
	return p.a.set.Load().Match(f)
}

func (p planner) Reservations() map[units.MAC]netip.Addr {
	return p.a.set.Load().Reservations()
}
