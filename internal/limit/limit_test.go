package limit

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRate[string](2, 3, time.Minute, 2)
	r.now = func() time.Time { return now }
	for i := range 3 {
		if !r.Allow("a") {
			t.Fatalf("burst event %d refused", i)
		}
	}
	if r.Allow("a") {
		t.Fatal("event past the burst allowed")
	}
	if !r.Allow("b") {
		t.Fatal("other key limited")
	}
	if r.Allow("c") {
		t.Fatal("key beyond maxKeys allowed")
	}
	now = now.Add(500 * time.Millisecond) // one token back at 2/s
	if !r.Allow("a") || r.Allow("a") {
		t.Fatal("refill wrong")
	}
	now = now.Add(2 * time.Minute)
	if !r.Allow("c") || r.Len() != 1 {
		t.Fatalf("idle keys not expired: %d", r.Len())
	}
	r.SetLimit(0, 1)
	for range 100 {
		if !r.Allow("c") {
			t.Fatal("unlimited refused")
		}
	}
}

func TestConc(t *testing.T) {
	c := NewConc[string](3, 2)
	r1, err := c.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := c.Acquire("a")
	if _, err := c.Acquire("a"); !errors.Is(err, ErrPerKey) || !errors.Is(c.Check("a"), ErrPerKey) {
		t.Fatalf("third for a: %v", err)
	}
	r3, _ := c.Acquire("b")
	if _, err := c.Acquire("c"); !errors.Is(err, ErrGlobal) {
		t.Fatalf("global cap: %v", err)
	}
	r1()
	r1() // second call does nothing
	if c.Active() != 2 || c.ActiveFor("a") != 1 {
		t.Fatalf("active %d, a %d", c.Active(), c.ActiveFor("a"))
	}
	c.SetLimits(0, 0)
	for range 10 {
		if _, err := c.Acquire("a"); err != nil {
			t.Fatal(err)
		}
	}
	r2()
	r3()
	var zero Conc[int]
	if rel, err := zero.Acquire(1); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	lg := NewLogger(slog.New(slog.NewTextHandler(&buf, nil)), time.Second, 2)
	now := time.Unix(0, 0)
	lg.now = func() time.Time { return now }
	for range 10 {
		lg.Warn("flood", "dropped")
	}
	lg.Warn("other", "x")
	if n := strings.Count(buf.String(), "kind=flood"); n != 2 {
		t.Fatalf("%d flood lines, want 2:\n%s", n, buf.String())
	}
	now = now.Add(time.Second)
	lg.Warn("flood", "dropped")
	if !strings.Contains(buf.String(), "suppressed=8") {
		t.Fatalf("suppressed count missing:\n%s", buf.String())
	}
	NewLogger(nil, 0, 0).Warn("k", "to nowhere")
}
