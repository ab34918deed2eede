package simnet

import (
	"math/rand/v2"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// revocationRec is one friendship a user ended, followed until every relay
// knows it.
type revocationRec struct {
	id         identity.AttestationID
	at         time.Time
	everywhere time.Time // when every relay that was up knew it; zero: not yet
}

// unfriend: u ends one friendship (chosen by the seed) at a moment of the
// workload, and the revocation is followed to every relay. What rested on
// the friendship and had not arrived yet (shares between the two or naming
// one to the other, requests introduced through it) is withdrawn by the
// relays, as it must be: it is excused from the delivery ratios.
func (s *sim) unfriend(u *user, workStart time.Time) {
	r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(u.idx)+3<<32))
	time.Sleep(time.Until(workStart.Add(between(r, s.cfg.Workload/10, s.cfg.Workload*9/10))))
	n := u.node()
	if n == nil {
		return // offline then: they will not
	}
	fs := n.FriendIDs()
	if len(fs) == 0 {
		return
	}
	f := fs[r.IntN(len(fs))]
	att, err := identity.NewVerifier().Attestation(n.FriendAttestation(f), time.Now())
	if err != nil {
		return
	}
	if err := n.Unfriend(s.ctx, f.String()); err != nil {
		s.w.log.Warn("unfriend failed", "user", u.name, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revocations = append(s.revocations, &revocationRec{id: att.ID, at: time.Now()})
	s.excuse(u.id, f)
}

// excuse marks what rests on the friendship of a and b and has not
// arrived as withdrawn. Called with s.mu held.
func (s *sim) excuse(a, b peer.ID) {
	pair := func(x, y peer.ID) bool { return (x == a && y == b) || (x == b && y == a) }
	for _, rec := range s.shares {
		if rec.sharer == a || rec.sharer == b {
			rec.excused = true // its target or one of its items may be the other
		}
	}
	for _, rec := range s.requests {
		if !rec.seen && (pair(rec.from, rec.to) || rec.introducer == a || rec.introducer == b) {
			rec.excused = true
		}
	}
	for _, rec := range s.answers {
		if !rec.seen && pair(rec.from, rec.to) {
			rec.excused = true
		}
	}
}

// move: u moves to another home relay at a moment of the workload (the
// node restarts with its new relays; its profile tells friends where it
// is now).
func (s *sim) move(u *user, workStart time.Time) {
	r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(u.idx)+4<<32))
	time.Sleep(time.Until(workStart.Add(between(r, s.cfg.Workload/10, s.cfg.Workload*9/10))))
	if u.node() == nil {
		return
	}
	s.w.down(u)
	u.mu.Lock()
	u.home = (u.home + 1 + r.IntN(s.cfg.Relays-1)) % s.cfg.Relays
	u.mu.Unlock()
	if err := s.w.up(s.ctx, u, s.onEvent); err != nil {
		s.w.log.Warn("move: restart failed", "user", u.name, "err", err)
		return
	}
	s.mu.Lock()
	s.moves++
	s.mu.Unlock()
}

// relayDown stops the last relay for cfg.RelayDown and starts it again
// on the same data.
func (s *sim) relayDown() {
	rn := s.w.relays[len(s.w.relays)-1]
	s.w.stopRelay(rn)
	time.Sleep(s.cfg.RelayDown)
	if err := s.w.startRelay(s.ctx, rn); err != nil {
		s.w.log.Error("relay start failed", "err", err)
		return
	}
	s.mu.Lock()
	rn.restarts++
	s.restarts++
	s.mu.Unlock()
}

// followRevocations checks every second which revocations every running
// relay knows, until stop.
func (s *sim) followRevocations(stop <-chan struct{}) {
	time.Sleep(offBeat)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		var open []*revocationRec
		for _, rv := range s.revocations {
			if rv.everywhere.IsZero() {
				open = append(open, rv)
			}
		}
		s.mu.Unlock()
		for _, rv := range open {
			if s.knownEverywhere(rv.id) {
				s.mu.Lock()
				rv.everywhere = time.Now()
				s.mu.Unlock()
			}
		}
	}
}

// knownEverywhere reports whether every relay knows revocation id (a relay
// that is down does not).
func (s *sim) knownEverywhere(id identity.AttestationID) bool {
	for _, rn := range s.w.relays {
		if !rn.knows(id) {
			return false
		}
	}
	return true
}

func (rn *relayNode) knows(id identity.AttestationID) bool {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return rn.downAt.IsZero() && rn.r.KnowsRevocation(id)
}

func (rn *relayNode) relayPeers() int {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if !rn.downAt.IsZero() {
		return 0
	}
	return rn.r.RelayPeers()
}

// lateRevocation is how long a revocation may take to reach every relay
// before the report calls it late: gossip takes milliseconds, a relay
// that was down learns it by reconciliation when it is back.
const lateRevocation = 30 * time.Second

// revocationReport sums up the revocations. Called with s.mu held.
func (s *sim) revocationReport() Revocations {
	rep := Revocations{Made: len(s.revocations), LateAfterSeconds: lateRevocation.Seconds()}
	var took []time.Duration
	for _, rv := range s.revocations {
		if rv.everywhere.IsZero() {
			rep.Missing++
			continue
		}
		d := rv.everywhere.Sub(rv.at)
		took = append(took, d)
		if d > lateRevocation {
			rep.Late++
		}
	}
	rep.Everywhere = len(took)
	if len(took) > 0 {
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		rep.P50Seconds = took[len(took)/2].Seconds()
		rep.MaxSeconds = took[len(took)-1].Seconds()
	}
	return rep
}

// revocationsOpen counts the revocations some relay does not know yet.
func (s *sim) revocationsOpen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, rv := range s.revocations {
		if rv.everywhere.IsZero() {
			n++
		}
	}
	return n
}
