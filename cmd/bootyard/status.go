package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bootyard/bootyard/internal/appliance"
	"github.com/bootyard/bootyard/internal/control"
)

// cmdStatus asks the running daemon (over the control socket in its state
// directory) for its services, addresses and counters.
func cmdStatus(ctx context.Context, args []string, e *env) int {
	fs := newFlags("status", "status [--config FILE] [--json]", e)
	path := fs.String("config", "", "configuration file (default /etc/bootyard/bootyard.toml)")
	asJSON := fs.Bool("json", false, "print the raw JSON status")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	cfg, code := loadConfig(e, *path)
	if code >= 0 {
		return code
	}
	sock := filepath.Join(cfg.Server.StateDir, control.SocketName)
	var raw json.RawMessage
	if err := control.Call(ctx, sock, "status", &raw); err != nil {
		if errors.Is(err, control.ErrNoDaemon) {
			fmt.Fprintf(e.stderr, "bootyard status: no daemon is running (nothing listens on %s)\n", sock)
		} else {
			fmt.Fprintln(e.stderr, "bootyard status:", err)
		}
		return exitFailure
	}
	if *asJSON {
		fmt.Fprintln(e.stdout, string(raw))
		return exitOK
	}
	var st struct {
		appliance.Status
		Services []struct {
			Name  string         `json:"name"`
			Addr  string         `json:"addr"`
			Stats map[string]any `json:"stats"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintln(e.stderr, "bootyard status:", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "running since %s (%s), config %s\n", st.Started.Local().Format(time.RFC3339),
		time.Since(st.Started).Round(time.Second), st.Config)
	fmt.Fprintf(e.stdout, "%d profiles, %d machines, %d rules\n", st.Profiles, st.Machines, st.Rules)
	for _, s := range st.Services {
		keys := make([]string, 0, len(s.Stats))
		for k := range s.Stats {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s=%v", k, s.Stats[k]))
		}
		fmt.Fprintf(e.stdout, "%-5s %-22s %s\n", s.Name, s.Addr, strings.Join(parts, " "))
	}
	return exitOK
}
