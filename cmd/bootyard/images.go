package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/bootyard/bootyard/images"
	"github.com/bootyard/bootyard/internal/config"
)

const imagesUsage = `Usage: bootyard images <command> [flags]

Commands:
  add [--config F] [--replace] [--description D] NAME PATH...
                   copy files or directories into a new image and publish it
  ls               list images (name, files, size, added)
  show NAME        print an image's manifest
  verify [NAME...] re-hash images; exit 1 naming every bad file
  rm [--force] NAME
                   remove an image (refused while a profile uses it)

Every command takes --config FILE (default ` + config.DefaultPath + `).
`

// progressThreshold is the input size from which `images add` shows
// progress.
const progressThreshold = 16 << 20

func cmdImages(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, imagesUsage)
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "add":
		return imagesAdd(ctx, rest, e)
	case "ls", "list":
		return imagesList(rest, e)
	case "show":
		return imagesShow(rest, e)
	case "verify":
		return imagesVerify(ctx, rest, e)
	case "rm", "remove":
		return imagesRemove(rest, e)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(e.stdout, imagesUsage)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "bootyard images: unknown command %q\n\n%s", sub, imagesUsage)
	return exitUsage
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments ("images add NAME PATH --replace").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, int) {
	var pos []string
	for {
		if c := parseFlags(fs, args); c >= 0 {
			return nil, c
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		args = fs.Args()
		if args[0] == "--" || (len(pos) > 0 && pos[len(pos)-1] == "--") {
			return append(pos, args...), -1
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openStore loads the configuration and opens its image store.
func openStore(e *env, path string) (*config.Config, *images.Store, int) {
	cfg, code := loadConfig(e, path)
	if code >= 0 {
		return nil, nil, code
	}
	st, err := images.Open(cfg.Images.Dir)
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return nil, nil, exitFailure
	}
	return cfg, st, -1
}

func imagesAdd(ctx context.Context, args []string, e *env) int {
	fs := newFlags("images add", "images add [--config FILE] [--replace] [--description TEXT] NAME PATH...", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	replace := fs.Bool("replace", false, "replace an existing image of that name (atomically)")
	desc := fs.String("description", "", "free text stored in the manifest")
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) < 2 {
		fmt.Fprintln(e.stderr, "bootyard images add: want NAME and at least one PATH")
		fs.Usage()
		return exitUsage
	}
	name, sources := pos[0], pos[1:]
	if err := images.ValidName(name); err != nil {
		fmt.Fprintln(e.stderr, "bootyard images add:", err)
		return exitUsage
	}
	_, st, code := openStore(e, *path)
	if code >= 0 {
		return code
	}
	defer st.Close()
	// Ctrl-C aborts cleanly: nothing is published, staging is removed.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	pr := newAddProgress(e, name)
	start := time.Now()
	im, err := st.Add(ctx, name, sources, images.AddOptions{
		Replace:     *replace,
		Description: *desc,
		Progress:    pr.update,
		Warn:        func(msg string) { fmt.Fprintln(e.stderr, "bootyard images add: warning:", msg) },
	})
	pr.finish()
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	verb := "added"
	if *replace {
		verb = "published"
	}
	fmt.Fprintf(e.stdout, "%s %s: %d files, %s in %s\n", verb, im.Name, len(im.Files), humanBytes(im.Size()), time.Since(start).Round(time.Millisecond))
	return exitOK
}

// progress reports copying: a progress bar on a terminal, a line per 10%
// otherwise, nothing for small inputs.
type addProgress struct {
	e    *env
	name string
	bar  *progressbar.ProgressBar
	last int64 // last tenth printed (plain mode)
	off  bool
}

func newAddProgress(e *env, name string) *addProgress {
	return &addProgress{e: e, name: name, last: -1}
}

func (p *addProgress) update(done, total int64) {
	if p.off || total < progressThreshold {
		p.off = true
		return
	}
	if p.e.stdoutTTY {
		if p.bar == nil {
			p.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(p.e.stdout),
				progressbar.OptionSetDescription("copying "+p.name),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionShowCount(),
				progressbar.OptionClearOnFinish(),
			)
		}
		_ = p.bar.Set64(done)
		return
	}
	if tenth := done * 10 / total; tenth > p.last {
		p.last = tenth
		fmt.Fprintf(p.e.stdout, "copying %s: %d%% (%s of %s)\n", p.name, tenth*10, humanBytes(done), humanBytes(total))
	}
}

func (p *addProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// human formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func imagesList(args []string, e *env) int {
	fs := newFlags("images ls", "images ls [--config FILE]", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	if c := parseFlags(fs, args); c >= 0 {
		return c
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return exitUsage
	}
	_, st, code := openStore(e, *path)
	if code >= 0 {
		return code
	}
	defer st.Close()
	list, err := st.List()
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFILES\tSIZE\tADDED\tDESCRIPTION")
	for _, im := range list {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", im.Name, len(im.Files), humanBytes(im.Size()), im.Added.Format(time.RFC3339), im.Description)
	}
	tw.Flush()
	return exitOK
}

func imagesShow(args []string, e *env) int {
	fs := newFlags("images show", "images show [--config FILE] NAME", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, st, code := openStore(e, *path)
	if code >= 0 {
		return code
	}
	defer st.Close()
	im, err := st.Get(pos[0])
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "name:        %s\n", im.Name)
	if im.Description != "" {
		fmt.Fprintf(e.stdout, "description: %s\n", im.Description)
	}
	fmt.Fprintf(e.stdout, "added:       %s\n", im.Added.Format(time.RFC3339))
	fmt.Fprintf(e.stdout, "size:        %s in %d files\n", humanBytes(im.Size()), len(im.Files))
	fmt.Fprintf(e.stdout, "served as:   images/%s/<path> (TFTP and FTP)\n", im.Name)
	if users := imageUsers(cfg, im.Name); len(users) > 0 {
		fmt.Fprintf(e.stdout, "used by:     %s\n", strings.Join(users, ", "))
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nPATH\tROLE\tSIZE\tSHA256")
	for _, f := range im.Files {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", f.Path, f.Role, f.Size, f.SHA256)
	}
	tw.Flush()
	return exitOK
}

func imagesVerify(ctx context.Context, args []string, e *env) int {
	fs := newFlags("images verify", "images verify [--config FILE] [NAME...]", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	names, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	_, st, code := openStore(e, *path)
	if code >= 0 {
		return code
	}
	defer st.Close()
	if len(names) == 0 {
		list, err := st.List()
		if err != nil {
			fmt.Fprintln(e.stderr, "bootyard:", err)
			return exitFailure
		}
		if len(list) == 0 {
			// Still run: directories without a manifest are problems.
			fmt.Fprintln(e.stdout, "no images")
		}
	}
	probs, err := st.Verify(ctx, names...)
	for _, p := range probs {
		fmt.Fprintln(e.stdout, "BAD", p.String())
	}
	if err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	if len(probs) > 0 {
		fmt.Fprintf(e.stderr, "bootyard images verify: %d problem(s)\n", len(probs))
		return exitFailure
	}
	if len(names) == 0 {
		list, _ := st.List()
		for _, im := range list {
			names = append(names, im.Name)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(e.stdout, "ok %s\n", n)
	}
	return exitOK
}

// imageUsers names the profiles that use image name.
func imageUsers(cfg *config.Config, name string) []string {
	var out []string
	for i, p := range cfg.Profiles {
		if p.Image == name {
			out = append(out, fmt.Sprintf("profile %q (profile[%d])", p.Name, i))
		}
	}
	return out
}

func imagesRemove(args []string, e *env) int {
	fs := newFlags("images rm", "images rm [--config FILE] [--force] NAME", e)
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+")")
	force := fs.Bool("force", false, "remove even while a profile uses the image")
	pos, code := parseInterspersed(fs, args)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, st, code := openStore(e, *path)
	if code >= 0 {
		return code
	}
	defer st.Close()
	name := pos[0]
	if users := imageUsers(cfg, name); len(users) > 0 && !*force {
		fmt.Fprintf(e.stderr, "bootyard images rm: %s is used by %s; change those profiles first or use --force\n", name, strings.Join(users, ", "))
		return exitFailure
	}
	if err := st.Remove(name); err != nil {
		fmt.Fprintln(e.stderr, "bootyard:", err)
		return exitFailure
	}
	fmt.Fprintf(e.stdout, "removed %s\n", name)
	return exitOK
}
