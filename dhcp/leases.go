package dhcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/bootyard/bootyard/internal/units"
)

// Lease states as stored and listed.
const (
	StateBound    = "bound"    // in use until Expiry
	StateReleased = "released" // the client gave it back; kept so it gets it again
	StateDeclined = "declined" // a client saw it in use: quarantined until Expiry
	StateExpired  = "expired"  // listed only: a bound lease whose Expiry has passed
)

// ErrLocked is returned by ReadLeases when another process (a running
// bootyard serve) holds the lease store.
var ErrLocked = errors.New("lease store is locked by a running bootyard")

// leaseBucket holds one JSON record per address, keyed by the 4 address bytes.
var leaseBucket = []byte("leases")

// Lease is one address record of the lease store.
type Lease struct {
	MAC      units.MAC  `json:"mac"`
	IP       netip.Addr `json:"ip"`
	Hostname string     `json:"hostname,omitempty"`
	Expiry   time.Time  `json:"expiry"`
	State    string     `json:"state"`
}

// offerHold is an address promised in an OFFER, held in memory only.
type offerHold struct {
	mac   units.MAC
	until time.Time
}

// LeaseStore keeps server-mode leases in a bbolt file. Every change is
// committed (fsync) before the caller answers the client; concurrent
// changes share one transaction (bbolt Batch). Reads come from an in-memory
// index loaded at open. OFFER holds live in memory only.
type LeaseStore struct {
	db  *bolt.DB
	now func() time.Time

	mu     sync.Mutex
	byIP   map[netip.Addr]*Lease
	byMAC  map[units.MAC]netip.Addr
	offers map[netip.Addr]offerHold
	cursor map[netip.Addr]netip.Addr // per pool (first address): next fresh address to try
}

// OpenLeaseStore opens (creating when missing) the lease database at path
// and loads it. It fails after a second when another process holds it.
func OpenLeaseStore(path string) (*LeaseStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("dhcp: lease store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("dhcp: open lease store %q: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("dhcp: open lease store %q: %w", path, err)
	}
	ls := &LeaseStore{
		db: db, now: time.Now,
		byIP:   map[netip.Addr]*Lease{},
		byMAC:  map[units.MAC]netip.Addr{},
		offers: map[netip.Addr]offerHold{},
		cursor: map[netip.Addr]netip.Addr{},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(leaseBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil || !l.IP.Is4() {
				return nil // skip a damaged record rather than refuse to start
			}
			ls.index(&l)
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("dhcp: load lease store %q: %w", path, err)
	}
	return ls, nil
}

// ReadLeases lists the leases of the store at path without changing it. It
// waits at most timeout for the file lock and returns ErrLocked when a
// running daemon holds it.
func ReadLeases(path string, timeout time.Duration) ([]Lease, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("dhcp: lease store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("dhcp: open lease store %q: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("dhcp: open lease store %q: %w", path, err)
	}
	defer db.Close()
	var out []Lease
	now := time.Now()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(leaseBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var l Lease
			if json.Unmarshal(v, &l) == nil {
				out = append(out, listed(l, now))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp: read lease store %q: %w", path, err)
	}
	return out, nil
}

// listed returns l with its state as a reader should see it.
func listed(l Lease, now time.Time) Lease {
	if l.State == StateBound && !l.Expiry.After(now) {
		l.State = StateExpired
	}
	return l
}

// Close closes the database.
func (ls *LeaseStore) Close() error {
	if err := ls.db.Close(); err != nil {
		return fmt.Errorf("dhcp: close lease store: %w", err)
	}
	return nil
}

// Leases returns every record, sorted by address, states as listed.
func (ls *LeaseStore) Leases() []Lease {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := ls.now()
	out := make([]Lease, 0, len(ls.byIP))
	for _, l := range ls.byIP {
		out = append(out, listed(*l, now))
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return out
}

// Bound returns the number of leases in use now.
func (ls *LeaseStore) Bound() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now, n := ls.now(), 0
	for _, l := range ls.byIP {
		if l.State == StateBound && l.Expiry.After(now) {
			n++
		}
	}
	return n
}

// index records l in memory; the caller holds mu (or owns ls alone).
func (ls *LeaseStore) index(l *Lease) {
	if old, ok := ls.byIP[l.IP]; ok && old.MAC != l.MAC && ls.byMAC[old.MAC] == l.IP {
		delete(ls.byMAC, old.MAC)
	}
	ls.byIP[l.IP] = l
	if l.State != StateDeclined {
		ls.byMAC[l.MAC] = l.IP
	}
}

// lookup returns the record of ip.
func (ls *LeaseStore) lookup(ip netip.Addr) (Lease, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l, ok := ls.byIP[ip]
	if !ok {
		return Lease{}, false
	}
	return *l, true
}

// addrOf returns the address last associated with mac.
func (ls *LeaseStore) addrOf(mac units.MAC) (netip.Addr, bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	a, ok := ls.byMAC[mac]
	return a, ok
}

// usableBy reports whether ip may go to mac now; the caller holds mu.
// reserved maps reserved addresses to their MAC.
func (ls *LeaseStore) usableBy(ip netip.Addr, mac units.MAC, now time.Time, reserved map[netip.Addr]units.MAC) bool {
	if r, ok := reserved[ip]; ok && r != mac {
		return false
	}
	if o, ok := ls.offers[ip]; ok && o.mac != mac && o.until.After(now) {
		return false
	}
	l, ok := ls.byIP[ip]
	if !ok {
		return true
	}
	if l.State == StateDeclined {
		return !l.Expiry.After(now)
	}
	if l.MAC == mac {
		return true
	}
	return l.State != StateBound || !l.Expiry.After(now)
}

// errPoolFull is returned when a pool has no address for a client.
var errPoolFull = errors.New("pool exhausted")

// allocate picks the address to offer mac from p and holds it for hold:
// the reservation, else the client's previous address, else the requested
// one, else a never-used address, else the longest-expired one.
func (ls *LeaseStore) allocate(mac units.MAC, p *pool, reservation, requested netip.Addr, reserved map[netip.Addr]units.MAC, hold time.Duration) (netip.Addr, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := ls.now()
	pick := func(ip netip.Addr) netip.Addr {
		ls.offers[ip] = offerHold{mac: mac, until: now.Add(hold)}
		return ip
	}
	if reservation.IsValid() {
		if !ls.usableBy(reservation, mac, now, reserved) {
			return netip.Addr{}, fmt.Errorf("reserved address %s is in use by another client", reservation)
		}
		return pick(reservation), nil
	}
	if prev, ok := ls.byMAC[mac]; ok && p.holds(prev) && ls.usableBy(prev, mac, now, reserved) {
		return pick(prev), nil
	}
	if requested.IsValid() && p.holds(requested) && ls.usableBy(requested, mac, now, reserved) {
		return pick(requested), nil
	}
	// Fresh addresses, round robin from a cursor so a scan is cheap.
	start, ok := ls.cursor[p.first]
	if !ok || !p.inRange(start) {
		start = p.first
	}
	ip := start
	for {
		if p.usable(ip) {
			if _, used := ls.byIP[ip]; !used && ls.usableBy(ip, mac, now, reserved) {
				next := ip.Next()
				if !p.inRange(next) {
					next = p.first
				}
				ls.cursor[p.first] = next
				return pick(ip), nil
			}
		}
		ip = ip.Next()
		if !p.inRange(ip) {
			ip = p.first
		}
		if ip == start {
			break
		}
	}
	// Reclaim: the record that expired longest ago.
	var best *Lease
	for a, l := range ls.byIP {
		if p.inRange(a) && p.usable(a) && l.MAC != mac && ls.usableBy(a, mac, now, reserved) {
			if best == nil || l.Expiry.Before(best.Expiry) {
				best = l
			}
		}
	}
	if best != nil {
		return pick(best.IP), nil
	}
	return netip.Addr{}, errPoolFull
}

// canBind reports whether mac may have ip bound now (REQUEST checks).
func (ls *LeaseStore) canBind(ip netip.Addr, mac units.MAC, reserved map[netip.Addr]units.MAC) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.usableBy(ip, mac, ls.now(), reserved)
}

// put commits l durably; the in-memory index changes only when the commit
// succeeded. Concurrent calls share one fsync'd transaction.
func (ls *LeaseStore) put(l Lease) error {
	v, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("dhcp: encode lease: %w", err)
	}
	k := l.IP.As4()
	err = ls.db.Batch(func(tx *bolt.Tx) error {
		return tx.Bucket(leaseBucket).Put(k[:], v)
	})
	if err != nil {
		return fmt.Errorf("dhcp: commit lease %s: %w", l.IP, err)
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if o, ok := ls.offers[l.IP]; ok && o.mac == l.MAC {
		delete(ls.offers, l.IP)
	}
	ls.index(&l)
	return nil
}

// Put commits a record as it is (for tools and tests; the server uses the
// protocol paths).
func (ls *LeaseStore) Put(l Lease) error {
	if !l.IP.Is4() {
		return fmt.Errorf("dhcp: lease address %v is not IPv4", l.IP)
	}
	return ls.put(l)
}

// bind commits a bound lease of ip to mac for d.
func (ls *LeaseStore) bind(mac units.MAC, ip netip.Addr, hostname string, d time.Duration) (Lease, error) {
	l := Lease{MAC: mac, IP: ip, Hostname: hostname, Expiry: ls.now().Add(d).Round(time.Second), State: StateBound}
	return l, ls.put(l)
}

// release marks ip released when it is bound to mac.
func (ls *LeaseStore) release(mac units.MAC, ip netip.Addr) (bool, error) {
	l, ok := ls.lookup(ip)
	if !ok || l.MAC != mac || l.State != StateBound {
		return false, nil
	}
	l.State, l.Expiry = StateReleased, ls.now().Round(time.Second)
	return true, ls.put(l)
}

// decline quarantines ip for hold when mac was offered or leased it.
func (ls *LeaseStore) decline(mac units.MAC, ip netip.Addr, hold time.Duration) (bool, error) {
	ls.mu.Lock()
	o, offered := ls.offers[ip]
	l, leased := ls.byIP[ip]
	ok := (offered && o.mac == mac) || (leased && l.MAC == mac)
	if offered && o.mac == mac {
		delete(ls.offers, ip)
	}
	ls.mu.Unlock()
	if !ok {
		return false, nil
	}
	err := ls.put(Lease{MAC: mac, IP: ip, Expiry: ls.now().Add(hold).Round(time.Second), State: StateDeclined})
	if err == nil {
		ls.mu.Lock()
		if ls.byMAC[mac] == ip {
			delete(ls.byMAC, mac)
		}
		ls.mu.Unlock()
	}
	return true, err
}

// dropOffer forgets the hold mac has (the client chose another server).
func (ls *LeaseStore) dropOffer(mac units.MAC) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for ip, o := range ls.offers {
		if o.mac == mac {
			delete(ls.offers, ip)
		}
	}
}

// sweep forgets expired offer holds; expired leases stay listed and are
// reclaimed by allocate when their pool runs out of fresh addresses.
func (ls *LeaseStore) sweep() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	now := ls.now()
	for ip, o := range ls.offers {
		if !o.until.After(now) {
			delete(ls.offers, ip)
		}
	}
}
