package tftpload

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// StormOptions configures a boot storm: Clients transfers started at the
// same instant, each from its own source address.
type StormOptions struct {
	// Get is the per-transfer template; its Local is replaced per client.
	Get Options
	// Name is the file every client fetches.
	Name string
	// Clients is the number of concurrent transfers.
	Clients int
	// SourceBase is the first source address; client i uses SourceBase+i.
	// Zero: the kernel chooses (every client shares one address).
	SourceBase netip.Addr
	// ExpectBytes, when > 0, turns a short transfer into a failure.
	ExpectBytes int64
}

// StormResult is what a storm measured.
type StormResult struct {
	// Wall runs from the start signal until the last transfer ended.
	Wall time.Duration
	// Durations holds the time of every successful transfer, sorted.
	Durations []time.Duration
	// Failures counts transfers that ended in an error or came up short.
	Failures int
	// Errors holds up to five distinct failure messages.
	Errors []string
	// Retransmits counts the client's timeouts over all transfers.
	Retransmits int
	// Bytes counts payload bytes over all transfers.
	Bytes int64
}

// Percentile returns the p-th percentile (0 < p <= 100, nearest rank) of
// the successful transfers' durations, or 0 when there were none.
func (r StormResult) Percentile(p float64) time.Duration {
	if len(r.Durations) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(r.Durations))+0.999999) - 1
	rank = max(0, min(rank, len(r.Durations)-1))
	return r.Durations[rank]
}

// Storm runs the storm and waits for every transfer to end.
func Storm(ctx context.Context, opt StormOptions) (StormResult, error) {
	var res StormResult
	if opt.Clients <= 0 {
		return res, fmt.Errorf("tftpload: storm needs at least one client")
	}
	srcs := make([]netip.Addr, opt.Clients)
	a := opt.SourceBase
	for i := range srcs {
		srcs[i] = a
		if a.IsValid() {
			a = a.Next()
		}
	}
	type outcome struct {
		r   Result
		err error
	}
	out := make([]outcome, opt.Clients)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range opt.Clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			o := opt.Get
			o.Local = srcs[i]
			ready.Done()
			<-start
			r, err := Get(ctx, o, opt.Name)
			if err == nil && opt.ExpectBytes > 0 && r.Bytes != opt.ExpectBytes {
				err = fmt.Errorf("tftpload: got %d bytes, want %d", r.Bytes, opt.ExpectBytes)
			}
			out[i] = outcome{r, err}
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	res.Wall = time.Since(t0)
	seen := map[string]bool{}
	for _, o := range out {
		res.Retransmits += o.r.Retransmits
		res.Bytes += o.r.Bytes
		if o.err != nil {
			res.Failures++
			if msg := o.err.Error(); !seen[msg] && len(res.Errors) < 5 {
				seen[msg] = true
				res.Errors = append(res.Errors, msg)
			}
			continue
		}
		res.Durations = append(res.Durations, o.r.Duration)
	}
	sort.Slice(res.Durations, func(i, j int) bool { return res.Durations[i] < res.Durations[j] })
	return res, nil
}
