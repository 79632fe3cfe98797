package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/bootyard/bootyard/bench/tftpload"
)

// roundClock decides whether another round fits in a section's budget.
type roundClock struct {
	start, roundStart time.Time
	budget            time.Duration
}

func newRoundClock(budget time.Duration) *roundClock {
	now := time.Now()
	return &roundClock{start: now, roundStart: now, budget: budget}
}

// next is called before each round; it reports whether the round may run,
// assuming it takes as long as the one before.
func (c *roundClock) next(round int) bool {
	now := time.Now()
	last := now.Sub(c.roundStart)
	c.roundStart = now
	return round == 0 || now.Sub(c.start)+last <= c.budget
}

func fetchOnce(addr netip.AddrPort, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := tftpload.Get(ctx, tftpload.Options{Server: addr, Timeout: 500 * time.Millisecond, Retries: 3}, name)
	return err
}

var blockSizes = []int{512, 1468, 8192}

// Soft time budgets per section: a new round starts only when one more
// round as long as the last still fits (the first round always runs), so
// that a slow machine still reaches every section within the 15 minutes
// `make bench` may take. A section's budget also shrinks to leave the
// sections after it their reserve before the hard deadline. The TFTP
// single transfers always run every round (the first section; how long they
// take depends mostly on how idle the CPUs are: lock-step is all wake-ups).
const (
	budgetStorm       = 5*time.Minute + 30*time.Second
	budgetFTP         = 2*time.Minute + 15*time.Second
	budgetDHCP        = 3*time.Minute + 15*time.Second
	reserveAfterStorm = 4 * time.Minute // FTP's and DHCP's first rounds, with margin
	reserveAfterFTP   = 2*time.Minute + 30*time.Second
	reserveAfterDHCP  = 20 * time.Second
)

// sectionBudget is budget, or less when the hard deadline minus the
// reserve of the sections still to come is nearer.
func (e *env) sectionBudget(budget, reserve time.Duration) time.Duration {
	return max(0, min(budget, time.Until(e.Deadline)-reserve))
}

// tftpSingle is one (server, blksize) cell: MB/s per round.
type tftpSingle struct {
	mbps    []float64
	byRound map[int]float64
	errors  []string
}

// stormCell is one (server, clients) cell.
type stormCell struct {
	byRound        map[int]float64 // wall seconds
	wall, p50, p99 []time.Duration
	failures       []int
	retrans        []int
	cpu            []time.Duration
	peakKB         []int64
	errors         []string
}

type tftpResults struct {
	singleRounds, stormRounds int // rounds actually run
	servers                   []*server
	single                    map[string]map[int]*tftpSingle // server -> blksize
	storm                     map[string]map[int]*stormCell  // server -> clients
	skipped                   []string
}

// rotate returns s rotated left by k, so every server takes every position
// in turn across rounds.
func rotate[T any](s []T, k int) []T {
	if len(s) == 0 {
		return s
	}
	k %= len(s)
	return append(append([]T{}, s[k:]...), s[:k]...)
}

// benchTFTP runs the single-transfer and boot-storm benchmarks against the
// running servers.
func (e *env) benchTFTP(ctx context.Context, servers []*server) *tftpResults {
	r := &tftpResults{servers: servers, single: map[string]map[int]*tftpSingle{}, storm: map[string]map[int]*stormCell{}}
	for _, s := range servers {
		r.single[s.name] = map[int]*tftpSingle{}
		r.storm[s.name] = map[int]*stormCell{}
		for _, bs := range blockSizes {
			r.single[s.name][bs] = &tftpSingle{byRound: map[int]float64{}}
		}
		for _, n := range e.StormClients {
			r.storm[s.name][n] = &stormCell{byRound: map[int]float64{}}
		}
	}
	want64 := fileSum(filepath.Join(e.Work, "data", file64M))

	// Single transfers: every round visits every block size and server,
	// in a rotated order.
	// Every round runs (the brief asks for at least 5): only the hard
	// deadline stops them.
single:
	for round := range e.Rounds {
		r.singleRounds = round + 1
		for _, bs := range blockSizes {
			for _, s := range rotate(servers, round) {
				if ctx.Err() != nil {
					r.skipped = append(r.skipped, "TFTP single-transfer rounds cut short: the time budget ran out")
					break single
				}
				cell := r.single[s.name][bs]
				h := sha256.New()
				opt := tftpload.Options{Server: s.tftpAddr(), BlockSize: bs, TSize: true,
					Timeout: time.Second, Retries: 5}
				if round == 0 {
					opt.Hash = h // check the content once per server and size
				}
				res, err := tftpload.Get(ctx, opt, file64M)
				switch {
				case err != nil:
					cell.errors = append(cell.errors, err.Error())
				case res.Bytes != e.Size64:
					cell.errors = append(cell.errors, fmt.Sprintf("short transfer: %d bytes", res.Bytes))
				case round == 0 && !bytes.Equal(h.Sum(nil), want64):
					cell.errors = append(cell.errors, "content differs from the file served")
				case res.BlockSize != bs:
					cell.errors = append(cell.errors, fmt.Sprintf("asked blksize %d, got %d", bs, res.BlockSize))
				default:
					cell.mbps = append(cell.mbps, res.MBps())
					cell.byRound[round] = res.MBps()
				}
				logf("tftp single r%d bs=%d %-9s %.1f MB/s %v", round+1, bs, s.name, res.MBps(), errOr(err))
			}
		}
	}

	// Boot storms.
	budget := e.sectionBudget(budgetStorm, reserveAfterStorm)
	clock := newRoundClock(budget)
	for round := range e.StormRounds {
		if !clock.next(round) {
			r.skipped = append(r.skipped, fmt.Sprintf("TFTP boot storms: %d of %d rounds, the section's time budget (%v) ran out", round, e.StormRounds, budget.Round(time.Second)))
			break
		}
		r.stormRounds = round + 1
		for _, n := range e.StormClients {
			for _, s := range rotate(servers, round) {
				if ctx.Err() != nil {
					r.skipped = append(r.skipped, "TFTP boot-storm rounds cut short: the time budget ran out")
					return r
				}
				cell := r.storm[s.name][n]
				m := watch(s.p)
				res, err := tftpload.Storm(ctx, tftpload.StormOptions{
					Get: tftpload.Options{Server: s.tftpAddr(), BlockSize: 1468, TSize: true,
						Timeout: time.Second, Retries: 5},
					Name:        file8M,
					Clients:     n,
					SourceBase:  netip.MustParseAddr("127.1.0.1"),
					ExpectBytes: 8 << 20,
				})
				u := m.stop()
				if err != nil {
					cell.errors = append(cell.errors, err.Error())
					continue
				}
				cell.wall = append(cell.wall, res.Wall)
				if res.Failures == 0 {
					cell.byRound[round] = res.Wall.Seconds()
				}
				cell.p50 = append(cell.p50, res.Percentile(50))
				cell.p99 = append(cell.p99, res.Percentile(99))
				cell.failures = append(cell.failures, res.Failures)
				cell.retrans = append(cell.retrans, res.Retransmits)
				cell.cpu = append(cell.cpu, u.CPU)
				cell.peakKB = append(cell.peakKB, max(u.PeakTree, u.HWM))
				for _, m := range res.Errors {
					if len(cell.errors) < 3 {
						cell.errors = append(cell.errors, m)
					}
				}
				logf("tftp storm r%d n=%d %-9s wall %.2fs fail %d p50 %.2fs p99 %.2fs cpu %.2fs peak %d MiB",
					round+1, n, s.name, res.Wall.Seconds(), res.Failures, res.Percentile(50).Seconds(),
					res.Percentile(99).Seconds(), u.CPU.Seconds(), max(u.PeakTree, u.HWM)>>10)
			}
		}
	}
	return r
}

func fileSum(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return h.Sum(nil)
}

func errOr(err error) string {
	if err != nil {
		return "ERROR " + err.Error()
	}
	return ""
}
