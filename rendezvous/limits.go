package rendezvous

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// limiters are per-peer token buckets, one per kind of request. libp2p's
// own limits are per IP; these follow the authenticated peer id.
type limiters struct {
	clock func() time.Time
	mu    sync.Mutex
	m     map[limiterKey]*limiterEntry
}

type limiterKey struct {
	kind string
	peer peer.ID
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
	now := ls.clock()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	k := limiterKey{kind, p}
	e := ls.m[k]
	if e == nil {
		e = &limiterEntry{l: rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)}
		ls.m[k] = e
	}
	e.used = now
	return e.l.AllowN(now, 1)
}

// sweep forgets buckets unused for a minute (they would be full again).
func (ls *limiters) sweep() {
	now := ls.clock()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, e := range ls.m {
		if now.Sub(e.used) > time.Minute {
			delete(ls.m, k)
		}
	}
}
