package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// dhcpRates are the DORA rates tried, in exchanges per second.
var dhcpRates = []int{100, 200, 400, 700, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000}

// pdStats is one perfdhcp exchange type (DISCOVER-OFFER or REQUEST-ACK).
type pdStats struct {
	Sent, Received, Drops int
	AvgMs, MaxMs          float64
}

// pdResult is what one perfdhcp run reported.
type pdResult struct {
	Target int
	Rate   float64 // achieved 4-way exchanges per second
	DO, RA pdStats
}

func (r pdResult) zeroDrop() bool {
	return r.DO.Sent > 0 && r.RA.Received > 0 && r.DO.Drops == 0 && r.RA.Drops == 0
}

// parsePerfdhcp reads perfdhcp's final report.
func parsePerfdhcp(out string) (pdResult, error) {
	var r pdResult
	var cur *pdStats
	seen := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "Rate:"):
			f := strings.Fields(line)
			if len(f) > 1 {
				r.Rate, _ = strconv.ParseFloat(f[1], 64)
			}
		case strings.Contains(line, "Statistics for: DISCOVER-OFFER"):
			cur = &r.DO
			seen++
		case strings.Contains(line, "Statistics for: REQUEST-ACK"):
			cur = &r.RA
			seen++
		case strings.HasPrefix(line, "***"):
			cur = nil
		case cur != nil:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "ms"))
			switch k {
			case "sent packets":
				cur.Sent, _ = strconv.Atoi(v)
			case "received packets":
				cur.Received, _ = strconv.Atoi(v)
			case "drops":
				cur.Drops, _ = strconv.Atoi(v)
			case "avg delay":
				cur.AvgMs, _ = strconv.ParseFloat(v, 64)
			case "max delay":
				cur.MaxMs, _ = strconv.ParseFloat(v, 64)
			}
		}
	}
	if seen == 0 {
		return r, errors.New("perfdhcp: no statistics in its output")
	}
	return r, nil
}

// perfdhcp runs one step from the client namespace, as a relay (perfdhcp
// sets giaddr to its own address and sends from port 67).
func perfdhcp(ctx context.Context, rate int, period time.Duration) (pdResult, string, error) {
	args := []string{"netns", "exec", nsDCli, "perfdhcp", "-4", "-r", strconv.Itoa(rate), "-R", "10000",
		"-p", strconv.FormatFloat(period.Seconds(), 'f', -1, 64), "-W", "300000", dhcpSrvAddr}
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	res, perr := parsePerfdhcp(string(out))
	res.Target = rate
	if perr != nil {
		if err != nil {
			return res, string(out), fmt.Errorf("perfdhcp: %v: %s", err, lastLines(string(out), 3))
		}
		return res, string(out), perr
	}
	// perfdhcp exits 3 when packets were dropped; the report says so.
	return res, string(out), nil
}

// dhcpPass is one stepped search against one server.
type dhcpPass struct {
	best   *pdResult // highest zero-drop step
	fail   *pdResult // the step that dropped (after a retry)
	steps  int
	cpu    time.Duration
	peakKB int64
	err    string
}

type dhcpResults struct {
	rounds   int // passes actually run
	servers  []string
	versions map[string]string
	passes   map[string][]*dhcpPass
	skipped  []string
}

func (e *env) benchDHCP(ctx context.Context, names []string) *dhcpResults {
	r := &dhcpResults{servers: names, versions: map[string]string{}, passes: map[string][]*dhcpPass{}}
	budget := e.sectionBudget(budgetDHCP, reserveAfterDHCP)
	clock := newRoundClock(budget)
	for round := range e.DHCPRounds {
		if !clock.next(round) {
			r.skipped = append(r.skipped, fmt.Sprintf("DHCP: %d of %d passes, the section's time budget (%v) ran out", round, e.DHCPRounds, budget.Round(time.Second)))
			break
		}
		r.rounds = round + 1
		for _, name := range rotate(names, round) {
			if ctx.Err() != nil {
				r.skipped = append(r.skipped, "DHCP passes cut short: the time budget ran out")
				return r
			}
			pass := &dhcpPass{}
			r.passes[name] = append(r.passes[name], pass)
			s, err := e.startDHCP(name)
			if err != nil {
				pass.err = err.Error()
				logf("dhcp %s: %v", name, err)
				continue
			}
			r.versions[name] = s.version
			m := watch(s.p)
			for _, rate := range dhcpRates {
				var res pdResult
				var err error
				ok := false
				for try := 0; try < 2 && !ok; try++ { // one retry: the machine is shared
					res, _, err = perfdhcp(ctx, rate, e.DHCPStep)
					pass.steps++
					ok = err == nil && res.zeroDrop()
					logf("dhcp r%d %-8s rate %5d achieved %7.0f drops %d/%d avg %.2f/%.2f ms %s", round+1, name, rate,
						res.Rate, res.DO.Drops, res.RA.Drops, res.DO.AvgMs, res.RA.AvgMs, errOr(err))
				}
				if err != nil {
					pass.err = err.Error()
					break
				}
				if !ok {
					res := res
					pass.fail = &res
					break
				}
				best := res
				pass.best = &best
				if s.p.exited() {
					pass.err = "server exited: " + s.p.logTail(5)
					break
				}
			}
			u := m.stop()
			pass.cpu, pass.peakKB = u.CPU, max(u.PeakTree, u.HWM)
			s.p.stop()
		}
	}
	return r
}
