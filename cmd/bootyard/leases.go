package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/bootyard/bootyard/dhcp"
	"github.com/bootyard/bootyard/internal/control"
)

// leaseLockWait is how long `leases` waits for the lease store's lock: a
// running serve holds it for its whole life, so never wait long.
const leaseLockWait = 200 * time.Millisecond

// cmdLeases lists the DHCP server-mode leases: MAC, IP, hostname, expiry,
// state. It asks the running daemon over its control socket; with no daemon
// running it reads the bbolt store read-only, with a short lock timeout so
// it never blocks.
func cmdLeases(ctx context.Context, args []string, e *env) int {
	fset := newFlags("leases", "leases [--config FILE] [--leases FILE]", e)
	path := fset.String("config", "", "configuration file (default /etc/bootyard/bootyard.toml)")
	file := fset.String("leases", "", "lease store to read (default <server.state_dir>/leases.db)")
	if c := parseFlags(fset, args); c >= 0 {
		return c
	}
	if fset.NArg() > 0 {
		fset.Usage()
		return exitUsage
	}
	db := *file
	var leases []dhcp.Lease
	var err error
	if db == "" {
		cfg, code := loadConfig(e, *path)
		if code >= 0 {
			return code
		}
		db = filepath.Join(cfg.Server.StateDir, "leases.db")
		err = control.Call(ctx, filepath.Join(cfg.Server.StateDir, control.SocketName), "leases", &leases)
		if errors.Is(err, control.ErrNoDaemon) {
			leases, err = dhcp.ReadLeases(db, leaseLockWait)
		}
	} else {
		leases, err = dhcp.ReadLeases(db, leaseLockWait)
	}
	switch {
	case errors.Is(err, dhcp.ErrLocked):
		fmt.Fprintf(e.stderr, "bootyard leases: %s is locked by a running bootyard whose control socket "+
			"does not answer (another state directory?)\n", db)
		return exitFailure
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stdout, "no leases: %s does not exist (DHCP server mode has not run)\n", db)
		return exitOK
	case err != nil:
		fmt.Fprintln(e.stderr, "bootyard leases:", err)
		return exitFailure
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAC\tIP\tHOSTNAME\tEXPIRES\tSTATE")
	for _, l := range leases {
		host := l.Hostname
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.MAC, l.IP, host, l.Expiry.Local().Format(time.RFC3339), l.State)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(e.stderr, "bootyard leases:", err)
		return exitFailure
	}
	return exitOK
}
