package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"syscall"

	"github.com/bootyard/bootyard/internal/appliance"
	"github.com/bootyard/bootyard/internal/config"
	"github.com/bootyard/bootyard/internal/demo"
)

func cmdServe(ctx context.Context, args []string, e *env) int {
	fs := newFlags("serve", "serve [--config FILE] [--log-level LEVEL]", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+"; without one, an embedded demo on loopback)")
	level := fs.String("log-level", "", "log level: debug, info, warn or error (overrides server.log_level)")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	if *level != "" {
		if _, err := parseLevel(*level); err != nil {
			fmt.Fprintln(e.stderr, "bootyard serve:", err)
			return exitUsage
		}
	}

	var cfg *config.Config
	var d *demo.Demo
	if p := configPath(*path); p != "" {
		var code int
		if cfg, code = loadConfig(e, p); code >= 0 {
			return code
		}
	} else {
		var err error
		if d, err = demo.Setup(""); err != nil {
			fmt.Fprintln(e.stderr, "bootyard serve: demo:", err)
			return exitFailure
		}
		cfg = d.Config
	}
	if *level != "" {
		cfg.Server.LogLevel = *level
	}
	var lv slog.LevelVar
	lv.Set(mustLevel(cfg.Server.LogLevel))
	log := newLogger(e.stderr, cfg.Server.LogFormat, &lv)
	for _, w := range cfg.Warnings {
		log.Warn("config: " + w)
	}
	if d != nil {
		log.Info("no configuration file: running the embedded demo", "state_dir", cfg.Server.StateDir, "config", d.ConfigPath)
	}

	a, err := appliance.Build(cfg, log)
	if err != nil {
		log.Error("start-up failed", "err", err)
		return exitFailure
	}
	if err := a.Listen(); err != nil {
		log.Error("start-up failed", "err", err)
		return exitFailure
	}
	if err := a.DropPrivileges(); err != nil {
		a.Close()
		log.Error("start-up failed", "err", err)
		return exitFailure
	}
	if d != nil {
		d.PrintSummary(e.stdout, a.Addrs())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs, stop := notifySignals(e)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()

	stopping := false
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error("stopped on error", "err", err)
				return exitFailure
			}
			log.Info("stopped")
			return exitOK
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				reload(a, cfg, d, &lv, *level, log)
			case !stopping:
				stopping = true
				log.Info("signal received: stopping (send it again to stop at once)", "signal", sig.String())
				cancel()
			default:
				log.Warn("second signal: stopping at once", "signal", sig.String())
				a.Close()
				return exitFailure
			}
		}
	}
}

// reload re-reads the configuration file and applies it; on any problem the
// running configuration stays in force.
func reload(a *appliance.Appliance, cur *config.Config, d *demo.Demo, lv *slog.LevelVar, flagLevel string, log *slog.Logger) {
	path := cur.File
	if d != nil {
		path = d.ConfigPath
	}
	next, err := config.Load(path)
	if err != nil {
		attrs := []any{"config", path, "err", err}
		if errors.Is(err, fs.ErrPermission) {
			attrs = append(attrs, "hint", fmt.Sprintf("the configuration file must stay readable by the service user (uid %d)", os.Getuid()))
		}
		log.Error("reload failed: keeping the running configuration", attrs...)
		return
	}
	if flagLevel != "" {
		next.Server.LogLevel = flagLevel
	}
	if err := a.Reload(next); err != nil {
		log.Error("reload applied with errors", "err", err)
		return
	}
	lv.Set(mustLevel(next.Server.LogLevel))
	log.Info("reloaded", "config", path, "profiles", len(next.Profiles), "machines", len(next.Machines), "rules", len(next.Rules))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
	return l, nil
}

func mustLevel(s string) slog.Level {
	l, err := parseLevel(s)
	if err != nil {
		return slog.LevelInfo
	}
	return l
}

// newLogger builds the daemon's logger. Durations print as text ("1.5s")
// in both formats, so text and JSON logs read the same way.
func newLogger(w io.Writer, format string, lv *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			a.Value = slog.StringValue(a.Value.Duration().String())
		}
		return a
	}}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
