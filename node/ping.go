package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/protocols/pb"
)

// PingView is one try of `kith ping`: how the node reached a friend's
// node on a fresh connection.
type PingView struct {
	Try int `json:"try"`
	// Path is "direct" (a direct connection: dialled, or made direct by
	// hole punching) or "circuit" (relayed by a rendezvous node), or ""
	// when the friend's node could not be reached.
	Path string `json:"path"`
	// Punched says the connection began relayed and hole punching
	// (DCUtR) turned it direct, DirectAfterMS how long after connecting.
	Punched       bool    `json:"punched"`
	DirectAfterMS float64 `json:"direct_after_ms,omitempty"`
	RTTMS         float64 `json:"rtt_ms,omitempty"`
	Error         string  `json:"error,omitempty"`
}

// punchWait is how long a try waits for hole punching to make a relayed
// connection direct. libp2p starts no hole punch with a peer while one
// is running, so the next try waits for the last one to end on both
// sides, or it would measure that one again: punchQuiet after a try that
// stayed relayed (three attempts, up to 10 s each), punchSettle after one
// that was punched (the other side's own dial of the simultaneous open
// may still run, up to 10 s, when the first side's has won).
const (
	punchWait   = 8 * time.Second
	punchQuiet  = 25 * time.Second
	punchSettle = 11 * time.Second
)

// Ping reaches a friend's node count times, each time on a fresh
// connection: where their rendezvous node says they are (their direct
// and circuit addresses), waiting up to punchWait for hole punching to
// turn a relayed connection direct, then measuring the round trip.
func (n *Node) Ping(ctx context.Context, who string, count int) ([]PingView, error) {
	if count < 1 || count > 100 {
		return nil, book.Kindf(book.ErrBadArgument, "ping %d times? between 1 and 100", count)
	}
	n.mu.Lock()
	p, err := n.book.ResolvePeer(who, nil)
	var f *book.Friend
	if err == nil {
		f = n.book.Friend(p)
	}
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if f == nil {
		return nil, book.Kindf(book.ErrNotFriend, "%s is not your friend: only friends' nodes answer where they are", who)
	}
	// A relayed connection open now (the one an add came over) may have
	// a hole punch running on the other side: let it end first.
	if conns := n.h.Network().ConnsToPeer(f.ID); len(conns) > 0 && !hasDirect(conns) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(punchQuiet):
		}
	}
	out := make([]PingView, 0, count)
	for i := 1; i <= count; i++ {
		v := n.pingOnce(ctx, i, f)
		out = append(out, v)
		if quiet := settleAfter(v); quiet > 0 && i < count {
			select {
			case <-ctx.Done():
			case <-time.After(quiet):
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	return out, nil
}

// settleAfter is how long to wait after try v before the next one.
func settleAfter(v PingView) time.Duration {
	switch {
	case v.Path == "circuit":
		return punchQuiet
	case v.Punched:
		return punchSettle
	}
	return 0
}

func (n *Node) pingOnce(ctx context.Context, try int, f *book.Friend) PingView {
	v := PingView{Try: try}
	p := f.ID
	n.h.Network().ClosePeer(p)
	for _, relay := range n.relaysOf(p) {
		found := n.directAddrs(ctx, relay, []*pb.PresenceAsk{{Peer: []byte(p), Attestation: f.Attestation}})
		if a := found[p]; len(a) > 0 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.h.Connect(network.WithAllowLimitedConn(cctx, "kith"), peer.AddrInfo{ID: p, Addrs: a})
			cancel()
			if err != nil {
				v.Error = fmt.Sprintf("cannot connect: %v", err)
				continue
			}
			v.Error = ""
			break
		}
		v.Error = "their rendezvous node says they are offline"
	}
	if v.Error != "" {
		return v
	}
	start := time.Now()
	direct := func() bool { return hasDirect(n.h.Network().ConnsToPeer(p)) }
	if direct() {
		v.Path = "direct"
	} else {
		v.Path = "circuit"
		deadline := time.NewTimer(punchWait)
		tick := time.NewTicker(20 * time.Millisecond)
	wait:
		for {
			select {
			case <-ctx.Done():
				break wait
			case <-deadline.C:
				break wait
			case <-tick.C:
				if direct() {
					v.Path, v.Punched = "direct", true
					v.DirectAfterMS = float64(time.Since(start).Microseconds()) / 1000
					break wait
				}
			}
		}
		deadline.Stop()
		tick.Stop()
	}
	pctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "kith"), 5*time.Second)
	defer cancel()
	if res := <-ping.Ping(pctx, n.h, p); res.Error != nil {
		v.Error = fmt.Sprintf("no answer to ping: %v", res.Error)
	} else {
		v.RTTMS = float64(res.RTT.Microseconds()) / 1000
	}
	return v
}

// hasDirect reports whether any of conns is direct (not relayed).
func hasDirect(conns []network.Conn) bool {
	for _, c := range conns {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}
