package rendezvous

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// limiters are token buckets, one per kind of request and key: most are
// per peer (libp2p's own limits are per IP; these follow the authenticated
// peer id), and the invite bucket is per invite.
type limiters struct {
	clock func() time.Time
	mu    sync.Mutex
	m     map[limiterKey]*limiterEntry
}

type limiterKey struct {
	kind string
	key  string
}

type limiterEntry struct {
	l    *rate.Limiter
	used time.Time
}

func newLimiters(clock func() time.Time) *limiters {
	return &limiters{clock: clock, m: map[limiterKey]*limiterEntry{}}
}

// allow takes one token from p's bucket of kind.
func (ls *limiters) allow(kind string, p peer.ID, r Rate) bool {
	return ls.allowKey(kind, string(p), r)
}

// allowN takes n tokens from p's bucket of kind, or none.
func (ls *limiters) allowN(kind string, p peer.ID, n int, r Rate) bool {
	return ls.take(kind, string(p), n, r)
}

// allowKey takes one token from the bucket of kind and key.
func (ls *limiters) allowKey(kind, key string, r Rate) bool {
	return ls.take(kind, key, 1, r)
}

func (ls *limiters) take(kind, key string, n int, r Rate) bool {
	now := ls.clock()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	k := limiterKey{kind, key}
	e := ls.m[k]
	if e == nil {
		e = &limiterEntry{l: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
		ls.m[k] = e
	}
	e.used = now
	return e.l.AllowN(now, n)
}

// sweep forgets buckets unused for as long as they take to fill again
// (at least a minute): a forgotten bucket starts full.
func (ls *limiters) sweep() {
	now := ls.clock()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, e := range ls.m {
		refill := time.Minute
		if lim := float64(e.l.Limit()); lim > 0 {
			refill = max(refill, time.Duration(float64(e.l.Burst())/lim*float64(time.Second)))
		}
		if now.Sub(e.used) > refill {
			delete(ls.m, k)
		}
	}
}
