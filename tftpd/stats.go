package tftpd

import "sync/atomic"

// counter is one monotonically increasing count.
type counter = atomic.Uint64

// counters are the server's running totals.
type counters struct {
	requests, reads, writes, completed, failed counter
	unacknowledged                             counter
	bytesSent, bytesReceived                   counter
	malformed, notAllowed, rateLimited, busy   counter
	denied, notFound, exists, tooLarge         counter
	refused, renderErrors, panics, readErrors  counter
	rendered, images                           counter
}

// Stats is a snapshot of the server's counters, for metrics. Counts are
// totals since New, except Active.
type Stats struct {
	// Requests counts RRQ and WRQ packets received (before any check).
	Requests uint64
	// Reads and Writes count transfers that reached the handler.
	Reads, Writes uint64
	// Completed and Failed count finished transfers by outcome (refusals
	// by the handler, such as file not found, count as Failed too).
	Completed, Failed uint64
	// Unacknowledged counts reads whose every byte was sent but whose
	// final ACK never came: the client may well have the file (a lost last
	// ACK looks the same), so they count neither as Completed nor Failed.
	Unacknowledged uint64
	// Rendered and Images count reads served by the Renderer and from the
	// images store.
	Rendered, Images uint64
	// BytesSent and BytesReceived count file data (not headers).
	BytesSent, BytesReceived uint64
	// Active is the number of transfers running now.
	Active int

	// Malformed counts packets dropped or refused as malformed: short or
	// unterminated requests, unknown modes, and packets other than
	// requests on the listening port.
	Malformed uint64
	// NotAllowed counts packets dropped because the client is outside
	// tftp.allow.
	NotAllowed uint64
	// RateLimited counts requests dropped by tftp.rate_per_client.
	RateLimited uint64
	// Busy counts requests refused by max_transfers or max_per_client.
	Busy uint64
	// Denied counts requests refused by the name policy, the root (symlinks
	// out, special files) or the upload policy.
	Denied uint64
	// NotFound counts reads of names that do not exist.
	NotFound uint64
	// Exists and TooLarge count uploads refused or aborted for an existing
	// name and for the size caps.
	Exists, TooLarge uint64
	// ErrorReplies counts ERROR packets the gate sent for refused requests
	// (the transfer handlers' errors are sent by pin/tftp and not counted
	// here).
	ErrorReplies uint64
	// RenderErrors counts Renderer failures.
	RenderErrors uint64
	// Panics counts transfer handlers that panicked and were recovered.
	Panics uint64
	// ReadErrors counts socket read errors on the listening port.
	ReadErrors uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	c := &s.c
	return Stats{
		Requests:       c.requests.Load(),
		Reads:          c.reads.Load(),
		Writes:         c.writes.Load(),
		Completed:      c.completed.Load(),
		Failed:         c.failed.Load(),
		Unacknowledged: c.unacknowledged.Load(),
		Rendered:       c.rendered.Load(),
		Images:         c.images.Load(),
		BytesSent:      c.bytesSent.Load(),
		BytesReceived:  c.bytesReceived.Load(),
		Active:         s.conc.Active(),
		Malformed:      c.malformed.Load(),
		NotAllowed:     c.notAllowed.Load(),
		RateLimited:    c.rateLimited.Load(),
		Busy:           c.busy.Load(),
		Denied:         c.denied.Load(),
		NotFound:       c.notFound.Load(),
		Exists:         c.exists.Load(),
		TooLarge:       c.tooLarge.Load(),
		ErrorReplies:   c.refused.Load(),
		RenderErrors:   c.renderErrors.Load(),
		Panics:         c.panics.Load(),
		ReadErrors:     c.readErrors.Load(),
	}
}
