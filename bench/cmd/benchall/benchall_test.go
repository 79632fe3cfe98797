package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// perfdhcp 2.2.0's report for a run with drops (trimmed to what is parsed).
const perfdhcpOut = `Running: perfdhcp -4 -r 2000 -R 10000 -p 2 -W 500000 198.18.0.1
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 1578.79 4-way exchanges/second, expected rate: 2000

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 3999
received packets: 3965
drops: 34
drops ratio: 0.850213 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.037 ms
avg delay: 4.043 ms
max delay: 65.294 ms
std deviation: 9.900 ms
collected packets: 25

***Statistics for: REQUEST-ACK***
sent packets: 3965
received packets: 3948
drops: 17
drops ratio: 0.429 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.095 ms
avg delay: 0.283 ms
max delay: 5.124 ms
std deviation: 0.368 ms
collected packets: 0
`

func TestParsePerfdhcp(t *testing.T) {
	r, err := parsePerfdhcp(perfdhcpOut)
	if err != nil {
		t.Fatal(err)
	}
	want := pdResult{
		Rate: 1578.79,
		DO:   pdStats{Sent: 3999, Received: 3965, Drops: 34, AvgMs: 4.043, MaxMs: 65.294},
		RA:   pdStats{Sent: 3965, Received: 3948, Drops: 17, AvgMs: 0.283, MaxMs: 5.124},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
	if r.zeroDrop() {
		t.Error("a run with drops counted as zero-drop")
	}
	clean := strings.NewReplacer("drops: 34", "drops: 0", "drops: 17", "drops: 0").Replace(perfdhcpOut)
	r, err = parsePerfdhcp(clean)
	if err != nil || !r.zeroDrop() {
		t.Errorf("zero-drop run: %+v, %v", r, err)
	}
	if _, err := parsePerfdhcp("perfdhcp: error: bad interface\n"); err == nil {
		t.Error("an error message parsed as a report")
	}
	// No answer at all is not zero-drop, whatever the counters say.
	if (pdResult{DO: pdStats{Sent: 10}}).zeroDrop() {
		t.Error("a run without replies counted as zero-drop")
	}
}

func TestLibDepends(t *testing.T) {
	field := "adduser, libpam-runtime, netbase, libacl1 (>= 2.2.23), libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, " +
		"libhiredis0.14 (>= 0.14.0), libssl3 (>= 3.0.0), kea-common (= 2.2.0-6), libstdc++6 (>= 12)"
	got := libDepends(field)
	want := []string{"libacl1", "libc6", "libhiredis0.14", "libssl3", "kea-common", "libstdc++6"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := libDepends(""); len(got) != 0 {
		t.Errorf("empty field: %v", got)
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		xs   []float64
		med  float64
		cell string
	}{
		{nil, 0, "—"},
		{[]float64{3}, 3, "3.0"},
		{[]float64{5, 1, 3}, 3, "3.0 (1.0–5.0)"},
		{[]float64{4, 1, 3, 2}, 2.5, "2.5 (1.0–4.0)"},
	}
	for _, tt := range tests {
		if m := median(tt.xs); m != tt.med {
			t.Errorf("median(%v) = %v, want %v", tt.xs, m, tt.med)
		}
		if c := cell(tt.xs, 1); c != tt.cell {
			t.Errorf("cell(%v) = %q, want %q", tt.xs, c, tt.cell)
		}
	}
	if r := ratio(0.5); r != "**0.50×**" {
		t.Errorf("ratio(0.5) = %q", r)
	}
	if r := ratio(1.25); r != "1.25×" {
		t.Errorf("ratio(1.25) = %q", r)
	}
	var b belowOne
	b.add("a", 0.9)
	b.add("b", 1.1)
	b.add("c", 0)
	if len(b.items) != 1 || !strings.HasPrefix(b.items[0], "a:") {
		t.Errorf("below one: %v", b.items)
	}
}

func TestRotate(t *testing.T) {
	s := []string{"a", "b", "c"}
	for k, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := rotate(s, k); !reflect.DeepEqual(got, want) {
			t.Errorf("rotate(%d) = %v, want %v", k, got, want)
		}
	}
	if !reflect.DeepEqual(s, []string{"a", "b", "c"}) {
		t.Error("rotate changed its input")
	}
}

func TestCPUTicksAndStatus(t *testing.T) {
	pid := os.Getpid()
	if _, err := cpuTicks(pid); err != nil {
		t.Fatal(err)
	}
	if kb := statusKB(pid, "VmRSS"); kb <= 0 {
		t.Errorf("VmRSS of this process = %d", kb)
	}
	if _, err := cpuTicks(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

func TestPairedRatio(t *testing.T) {
	by := map[int]float64{0: 10, 1: 20, 2: 30}
	peers := []map[int]float64{{0: 5, 1: 40}, {0: 8}} // round 2: no peer, skipped
	if got := pairedRatio(by, peers, true); got != (1.25+0.5)/2 {
		t.Errorf("higher is better: got %v, want %v", got, (1.25+0.5)/2)
	}
	// Times: the best peer is the fastest; 5/10 and 40/20.
	if got := pairedRatio(by, peers, false); got != (0.5+2)/2 {
		t.Errorf("lower is better: got %v, want %v", got, (0.5+2)/2)
	}
	if got := pairedRatio(map[int]float64{}, peers, true); got != 0 {
		t.Errorf("no bootyard rounds: got %v", got)
	}
}

func TestRoundClock(t *testing.T) {
	c := newRoundClock(time.Hour)
	for round := range 3 {
		if !c.next(round) {
			t.Fatalf("round %d refused within an hour's budget", round)
		}
	}
	c = newRoundClock(50 * time.Millisecond)
	if !c.next(0) {
		t.Fatal("the first round must always run")
	}
	time.Sleep(30 * time.Millisecond)
	// 30 ms gone plus another 30 ms round would exceed 50 ms.
	if c.next(1) {
		t.Error("a round that cannot fit was allowed")
	}
}
