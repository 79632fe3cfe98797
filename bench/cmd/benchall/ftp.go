package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ftpTest is one FTP measurement kind.
type ftpTest struct {
	key    string
	title  string
	tls    bool
	upload bool
	conc   int // concurrent transfers; 1 = single
}

var ftpTests = []ftpTest{
	{"dl", "download 1 GiB, plain", false, false, 1},
	{"dl-tls", "download 1 GiB, explicit FTPS", true, false, 1},
	{"ul", "upload 256 MiB, plain", false, true, 1},
	{"ul-tls", "upload 256 MiB, explicit FTPS", true, true, 1},
	{"dl32", "32 concurrent downloads of 64 MiB, plain", false, false, 32},
	{"dl32-tls", "32 concurrent downloads of 64 MiB, FTPS", true, false, 32},
}

type ftpCell struct {
	byRound  map[int]float64
	mbps     []float64
	cpu      []time.Duration
	cpuPerGB []float64 // server CPU seconds per GB moved
	peakKB   []int64
	failures []int
	errors   []string
}

type ftpResults struct {
	rounds  int // rounds actually run
	servers []*server
	cells   map[string]map[string]*ftpCell // test -> server
	skipped []string
}

// curlFTP runs one curl transfer and returns bytes moved and seconds.
func curlFTP(ctx context.Context, url string, tls bool, uploadFrom string) (int64, float64, error) {
	args := []string{"-sS", "--fail", "--max-time", "300", "-w", "%{size_download} %{size_upload} %{time_total}"}
	if tls {
		args = append(args, "--ssl-reqd", "-k")
	}
	if uploadFrom != "" {
		args = append(args, "--ftp-method", "nocwd", "-T", uploadFrom)
	} else {
		args = append(args, "-o", "/dev/null")
	}
	args = append(args, url)
	out, err := exec.CommandContext(ctx, "curl", args...).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("curl %s: %v: %s", url, err, strings.TrimSpace(string(out)))
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0, 0, fmt.Errorf("curl %s: unexpected output %q", url, out)
	}
	dl, _ := strconv.ParseInt(f[len(f)-3], 10, 64)
	ul, _ := strconv.ParseInt(f[len(f)-2], 10, 64)
	secs, _ := strconv.ParseFloat(f[len(f)-1], 64)
	return dl + ul, secs, nil
}

func (e *env) benchFTP(ctx context.Context, servers []*server) *ftpResults {
	r := &ftpResults{servers: servers, cells: map[string]map[string]*ftpCell{}}
	for _, t := range ftpTests {
		r.cells[t.key] = map[string]*ftpCell{}
		for _, s := range servers {
			r.cells[t.key][s.name] = &ftpCell{byRound: map[int]float64{}}
		}
	}
	upSrc := filepath.Join(e.Work, "data", fileUp)
	seq := 0
	budget := e.sectionBudget(budgetFTP, reserveAfterFTP)
	clock := newRoundClock(budget)
	for round := range e.FTPRounds {
		if !clock.next(round) {
			r.skipped = append(r.skipped, fmt.Sprintf("FTP: %d of %d rounds, the section's time budget (%v) ran out", round, e.FTPRounds, budget.Round(time.Second)))
			break
		}
		r.rounds = round + 1
		for _, t := range ftpTests {
			if t.conc > 1 && round >= e.FTPConcRounds {
				continue
			}
			for _, s := range rotate(servers, round) {
				if ctx.Err() != nil {
					r.skipped = append(r.skipped, "FTP rounds cut short: the time budget ran out")
					return r
				}
				cell := r.cells[t.key][s.name]
				base := "ftp://" + s.ip + "/"
				m := watch(s.p)
				t0 := time.Now()
				var moved int64
				var secs float64
				var fails int
				var firstErr error
				switch {
				case t.upload:
					seq++
					url := fmt.Sprintf("%sincoming/up-%d-%d.bin", base, round, seq)
					moved, secs, firstErr = curlFTP(ctx, url, t.tls, upSrc)
					if firstErr == nil && moved != e.SizeUp {
						firstErr = fmt.Errorf("uploaded %d bytes, want %d", moved, e.SizeUp)
					}
				case t.conc == 1:
					moved, secs, firstErr = curlFTP(ctx, base+file1G, t.tls, "")
					if firstErr == nil && moved != e.Size1G {
						firstErr = fmt.Errorf("downloaded %d bytes, want %d", moved, e.Size1G)
					}
				default:
					var mu sync.Mutex
					var wg sync.WaitGroup
					for range t.conc {
						wg.Add(1)
						go func() {
							defer wg.Done()
							n, _, err := curlFTP(ctx, base+file64M, t.tls, "")
							mu.Lock()
							defer mu.Unlock()
							if err == nil && n != e.Size64 {
								err = fmt.Errorf("downloaded %d bytes, want %d", n, e.Size64)
							}
							if err != nil {
								fails++
								if firstErr == nil {
									firstErr = err
								}
								return
							}
							moved += n
						}()
					}
					wg.Wait()
					secs = time.Since(t0).Seconds()
				}
				u := m.stop()
				if s.upDir != "" {
					cleanDir(s.upDir)
				}
				if firstErr != nil {
					cell.errors = append(cell.errors, firstErr.Error())
					if t.conc == 1 {
						fails = 1
					}
				}
				cell.failures = append(cell.failures, fails)
				if moved > 0 && secs > 0 && (t.conc > 1 || firstErr == nil) {
					mbps := float64(moved) / secs / 1e6
					cell.mbps = append(cell.mbps, mbps)
					if fails == 0 {
						cell.byRound[round] = mbps
					}
					cell.cpu = append(cell.cpu, u.CPU)
					cell.cpuPerGB = append(cell.cpuPerGB, u.CPU.Seconds()/(float64(moved)/1e9))
					cell.peakKB = append(cell.peakKB, max(u.PeakTree, u.HWM))
				}
				logf("ftp r%d %-8s %-9s %.0f MB/s cpu %.2fs peak %d MiB fails %d %s", round+1, t.key, s.name,
					float64(moved)/max(secs, 1e-9)/1e6, u.CPU.Seconds(), max(u.PeakTree, u.HWM)>>10, fails, errOr(firstErr))
			}
		}
	}
	return r
}

// cleanDir removes the files in dir (uploads from the last test).
func cleanDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		_ = os.RemoveAll(filepath.Join(dir, en.Name()))
	}
}
