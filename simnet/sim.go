package simnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/protocols"
)

// sim drives a world: it makes friendships, shares, picks and answers,
// churns nodes, restarts a relay, partitions and heals, lets adversaries
// attack, and records what was expected and what arrived.
type sim struct {
	w      *world
	cfg    Config
	rng    *rand.Rand
	wg     sync.WaitGroup
	active atomic.Int64 // goroutines of goDo still running
	ctx    context.Context

	mu           sync.Mutex
	shares       map[string]*shareRec   // share id -> targets the relay accepted it for
	requests     map[string]*requestRec // request id -> sent request
	answers      map[string]*answerRec  // request id -> acceptance
	seen         map[string]int         // "node|type|id" -> user-visible events
	redeliveries int
	forged       map[string]bool // ids of adversarial items that must never be accepted
	forgedOK     int
	flooded      map[string]bool // ids of valid requests an invite flood sent: nobody answers them
	invites      map[peer.ID][]byte
	strangers    StrangerRooms
	attacks      map[string]int
	declined     int
	depth        []DepthSample
	churnEvents  int
	offline      []offlineChange // nodes going down (+1) and up (-1), in order
	revocations  []*revocationRec
	moves        int
	restarts     int
	heals        int
	attempted    int
	start        time.Time
	workStart    time.Time
	byID         map[peer.ID]*user
	answering    atomic.Bool          // the workload answers requests; the friends phase accepts its own
	arrived      map[string]time.Time // "node|type|id" -> first arrival
}

type offlineChange struct {
	at    time.Time
	delta int
}

type shareRec struct {
	sharer  peer.ID
	sentAt  time.Time
	targets map[peer.ID]bool // -> seen
	excused bool             // rested on a friendship that ended before it arrived
}

type requestRec struct {
	from, to   peer.ID
	introducer peer.ID // whose share it was picked from
	at         time.Time
	seen       bool
	excused    bool // rested on a friendship that ended before it arrived
	merged     bool // replaced by a newer request to the same person before it arrived
}

type answerRec struct {
	from, to peer.ID // from: the accepter; to: the requester
	at       time.Time
	seen     bool
	excused  bool // the friendship it made ended before it arrived
}

func newSim(w *world) *sim {
	s := &sim{w: w, cfg: w.cfg, rng: rand.New(rand.NewPCG(w.cfg.Seed, 0x6b697468)),
		shares: map[string]*shareRec{}, requests: map[string]*requestRec{}, answers: map[string]*answerRec{},
		seen: map[string]int{}, forged: map[string]bool{}, attacks: map[string]int{}, byID: map[peer.ID]*user{},
		flooded: map[string]bool{}, invites: map[peer.ID][]byte{}, strangers: StrangerRooms{Limit: StrangerRoom},
		arrived: map[string]time.Time{}}
	return s
}

// chance returns a deterministic pseudo-random number in [0,1) for a
// decision named by parts, so that a run's choices do not depend on the
// order in which goroutines happen to run.
func (s *sim) chance(parts ...any) float64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], s.cfg.Seed)
	h.Write(b[:])
	for _, p := range parts {
		fmt.Fprint(h, p, "|")
	}
	return float64(mix(h.Sum64())>>11) / (1 << 53)
}

// mix is splitmix64's finalizer: FNV-1a alone leaves the high bits of
// hashes of inputs that differ only at their end nearly alike (with seed 9
// no user of 40 came out churny).
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (s *sim) progress(phase string, done float64) {
	if s.cfg.Progress != nil {
		s.cfg.Progress(Progress{Phase: phase, Done: done, Virtual: time.Since(s.start)})
	}
}

// go runs f in the background, tracked so the run waits for it.
func (s *sim) goDo(f func()) {
	s.wg.Add(1)
	s.active.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.active.Add(-1)
		f()
	}()
}

// ---- events

func (s *sim) onEvent(u *user, e node.Event) {
	now := time.Now()
	switch e.Type {
	case "share", "request", "answer":
		key := u.id.String() + "|" + e.Type + "|" + e.ID
		s.mu.Lock()
		s.seen[key]++
		if _, ok := s.arrived[key]; !ok {
			s.arrived[key] = now
		}
		if s.forged[e.ID] {
			s.forgedOK++
		}
		s.mu.Unlock()
		switch e.Type {
		case "share":
			s.goDo(func() { time.Sleep(s.think(u, e)); s.pick(u, e.ID) })
		case "request":
			s.mu.Lock()
			spam := s.flooded[e.ID]
			s.mu.Unlock()
			if s.answering.Load() && !spam {
				s.goDo(func() { time.Sleep(s.think(u, e)); s.answer(u, e.ID, e.Peer) })
			}
		}
	case "duplicate":
		s.mu.Lock()
		if !s.flooded[e.ID] { // a flood's further requests collapse into its first
			s.redeliveries++
		}
		s.mu.Unlock()
	}
}

// think is how long u takes to act on e: from half a second to 20 s,
// chosen by the seed, who u is and who e is from. People do not act in
// the instant a share arrives, and a simulated user who did would race
// the node's own work on the same arrival (its login, its profile
// refresh), which the scheduler orders as it likes.
func (s *sim) think(u *user, e node.Event) time.Duration {
	return 500*time.Millisecond + time.Duration(s.chance("think", u.id, e.Type, e.Peer)*float64(19500*time.Millisecond))
}

// pick: the target ticks some or all of the shared friends. The choices
// are keyed on what was shared (sharer and items), never on the share's
// id, which is random: the same seed then makes the same picks.
func (s *sim) pick(u *user, shareID string) {
	n := u.node()
	if n == nil || u.adversary {
		return
	}
	sv, err := n.ShareView(shareID)
	if err != nil {
		return
	}
	key := []any{u.id, sv.From}
	for _, it := range sv.Items {
		key = append(key, it.ID)
	}
	if s.chance(append(key, "pick?")...) < 0.1 {
		return // some people never pick
	}
	args := node.PickArgs{Share: shareID, All: true}
	if s.chance(append(key, "pick-all")...) < 0.4 {
		args.All = false
		for _, it := range sv.Items {
			if s.chance(append(key, "pick-item", it.ID)...) < 0.5 {
				args.Peers = append(args.Peers, it.ID)
			}
		}
		if len(args.Peers) == 0 {
			return
		}
	}
	at := time.Now()
	res, err := n.Pick(s.ctx, args)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range res {
		if p.Request == "" || p.Sent == string(book.Skipped) {
			continue
		}
		to, _ := peer.Decode(p.Peer)
		intro, _ := peer.Decode(sv.From)
		if p.Merged {
			// It replaces the pending request to the same person (it carries
			// every introduction now): the old one need not arrive.
			for _, old := range s.requests {
				if old.from == u.id && old.to == to && !old.seen {
					old.merged = true
				}
			}
		}
		s.requests[p.Request] = &requestRec{from: u.id, to: to, introducer: intro, at: at}
	}
}

// answer: most people accept; some decline, which is never sent.
func (s *sim) answer(u *user, reqID, from string) {
	n := u.node()
	if n == nil {
		return
	}
	if s.chance("accept", u.id, from) < 0.2 || u.adversary {
		if n.Decline(reqID) == nil {
			s.mu.Lock()
			s.declined++
			s.mu.Unlock()
		}
		return
	}
	at := time.Now()
	if _, err := n.Accept(s.ctx, reqID); err != nil {
		return
	}
	to, _ := peer.Decode(from)
	s.mu.Lock()
	s.answers[reqID] = &answerRec{from: u.id, to: to, at: at}
	s.mu.Unlock()
}

// ---- phases

// befriend makes the friend graph through the real invite flow: clusters
// (workplaces) where each pair is friends with probability 0.6, plus a few
// friendships across clusters.
func (s *sim) befriend() error {
	type pair struct{ a, b *user }
	var pairs []pair
	us := s.w.users
	for i := range us {
		for j := i + 1; j < len(us) && us[j].cluster == us[i].cluster; j++ {
			if s.rng.Float64() < 0.6 {
				pairs = append(pairs, pair{us[i], us[j]})
			}
		}
		if s.rng.Float64() < 0.3 {
			j := s.rng.IntN(len(us))
			if us[j].cluster != us[i].cluster {
				pairs = append(pairs, pair{us[i], us[j]})
			}
		}
	}
	// Each inviter accepts its invitees' requests as they come; a node
	// handles a few at a time, so stagger them.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i, p := range pairs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := s.befriendPair(p.a, p.b); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
		if i%100 == 0 {
			s.progress("friends", float64(i)/float64(len(pairs)))
		}
	}
	wg.Wait()
	return firstErr
}

func (s *sim) befriendPair(a, b *user) error {
	na, nb := a.node(), b.node()
	id, err := na.IDView()
	if err != nil {
		return err
	}
	v, err := nb.AddInvite(s.ctx, id.Invite, "")
	if err != nil {
		return fmt.Errorf("%s befriends %s: %w", b.name, a.name, err)
	}
	rid, _ := protocols.ParseRequestID(v.ID)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, st, ok := na.RequestState(rid); ok {
			if st == book.Pending {
				if _, err := na.Accept(s.ctx, v.ID); err != nil {
					return err
				}
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s never saw %s's request", a.name, b.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for !nb.IsFriend(a.id) {
		if time.Now().After(deadline) {
			var sa, sb []node.RequestView
			for _, r := range na.Requests() {
				if r.ID == v.ID {
					sa = append(sa, r)
				}
			}
			for _, r := range nb.Requests() {
				if r.ID == v.ID {
					sb = append(sb, r)
				}
			}
			return fmt.Errorf("%s never heard %s accept: %+v / %+v; %+v", b.name, a.name, sa, sb, na.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// groups: everyone puts the friends of their cluster in a group "team".
func (s *sim) groups() {
	for _, u := range s.w.users {
		n := u.node()
		var team []string
		for _, f := range n.FriendIDs() {
			if fu := s.byID[f]; fu != nil && fu.cluster == u.cluster {
				team = append(team, f.String())
			}
		}
		if len(team) > 0 && n.CreateGroup("team") == nil {
			n.AddToGroup("team", team)
		}
	}
}

// testHookSharerChosen, in tests, runs once share has chosen its sharer
// and before it uses them: churn taking them offline right then is what
// crashed share once.
var testHookSharerChosen func(w *world, u *user)

// share makes share number i. Its choices come from its own generator,
// seeded by the run's seed and i, so they do not depend on scheduling.
func (s *sim) share(i int) {
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(i)+1<<32))
	// The node is taken once: churn may take the user offline at any
	// moment, and a closed node answers with errors, where asking the
	// user again would give nil.
	var n *node.Node
	var friends []peer.ID
	var sharer *user
	for try := 0; try < 20 && n == nil; try++ {
		c := s.w.users[rng.IntN(len(s.w.users))]
		if cn := c.node(); cn != nil && !c.adversary {
			if fs := cn.FriendIDs(); len(fs) >= 2 {
				n, friends, sharer = cn, fs, c
			}
		}
	}
	if n == nil {
		return
	}
	if testHookSharerChosen != nil {
		testHookSharerChosen(s.w, sharer)
	}
	rng.Shuffle(len(friends), func(a, b int) { friends[a], friends[b] = friends[b], friends[a] })
	nt := 1 + rng.IntN(3)
	if nt > len(friends)-1 {
		nt = len(friends) - 1
	}
	args := node.ShareArgs{}
	for _, t := range friends[:nt] {
		args.To = append(args.To, t.String())
	}
	rest := friends[nt:]
	if rng.Float64() < 0.4 && len(n.Groups()) > 0 {
		args.Groups = []string{"team"}
	} else {
		k := 1 + rng.IntN(4)
		if k > len(rest) {
			k = len(rest)
		}
		for _, f := range rest[:k] {
			args.Friends = append(args.Friends, f.String())
		}
	}
	s.mu.Lock()
	s.attempted++
	s.mu.Unlock()
	at := time.Now()
	res, err := n.Share(s.ctx, args)
	if res == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range res.Targets {
		if t.Share == "" || (t.Status != "delivered" && t.Status != "stored") {
			continue
		}
		rec := s.shares[t.Share]
		if rec == nil {
			rec = &shareRec{sharer: sharer.id, sentAt: at, targets: map[peer.ID]bool{}}
			s.shares[t.Share] = rec
		}
		p, _ := peer.Decode(t.Peer)
		if _, ok := rec.targets[p]; !ok {
			rec.targets[p] = false
		}
	}
	_ = err // a refusal (e.g. a group that is now empty) is not a delivery failure
}

// offBeat shifts the simulation's own observations (mailbox samples,
// revocation checks, drain polls) off the whole seconds on which relays'
// and nodes' tickers fire: an observation at the instant something
// changes would see it or not as the scheduler ordered them.
const offBeat = 1234567 * time.Nanosecond

// between returns a duration in [lo, hi), to the nanosecond: events
// scheduled on whole seconds would meet others at the same virtual
// instant, where the scheduler orders them as it likes.
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

// churn takes a churny user offline and back, on a schedule, until stop.
func (s *sim) churn(u *user, stop time.Time) {
	r := rand.New(rand.NewPCG(s.cfg.Seed, uint64(u.idx)))
	time.Sleep(between(r, 0, 120*time.Second))
	for time.Now().Before(stop) {
		s.w.down(u)
		s.mu.Lock()
		s.churnEvents++
		s.offline = append(s.offline, offlineChange{at: time.Now(), delta: 1})
		s.mu.Unlock()
		time.Sleep(min(between(r, 30*time.Second, 120*time.Second), time.Until(stop)))
		if err := s.w.up(s.ctx, u, s.onEvent); err != nil {
			s.w.log.Warn("churn: restart failed", "user", u.name, "err", err)
		} else {
			s.mu.Lock()
			s.offline = append(s.offline, offlineChange{at: time.Now(), delta: -1})
			s.mu.Unlock()
		}
		// Never past the workload's end: the drain waits for this goroutine.
		time.Sleep(min(between(r, 60*time.Second, 180*time.Second), time.Until(stop)))
	}
}

// restartRelay takes relay 0 down for a while and brings it back on the
// same key and datastore.
func (s *sim) restartRelay() {
	rn := s.w.relays[0]
	s.w.stopRelay(rn)
	time.Sleep(10 * time.Second)
	if err := s.w.startRelay(s.ctx, rn); err != nil {
		s.w.log.Error("relay restart failed", "err", err)
		return
	}
	s.mu.Lock()
	s.restarts++
	rn.restarts++
	s.mu.Unlock()
}

// partition cuts cluster 0 off every relay for a minute, then heals.
func (s *sim) partition() {
	var ids []peer.ID
	for _, u := range s.w.users {
		if u.cluster == 0 {
			ids = append(ids, u.id)
		}
	}
	s.w.gate.set(ids, true)
	for _, rn := range s.w.relays {
		rn.mu.Lock()
		for _, id := range ids {
			rn.host.Network().ClosePeer(id)
		}
		rn.mu.Unlock()
	}
	time.Sleep(time.Minute)
	s.w.gate.set(ids, false)
	s.mu.Lock()
	s.heals++
	s.mu.Unlock()
}

// sample records the mailbox depth every 10 virtual seconds until stop.
func (s *sim) sample(stop <-chan struct{}) {
	time.Sleep(offBeat)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		total := 0
		per := make([]int, len(s.w.relays))
		for i, rn := range s.w.relays {
			per[i] = rn.mailbox()
			total += per[i]
		}
		s.mu.Lock()
		s.depth = append(s.depth, DepthSample{AtSeconds: time.Since(s.start).Seconds(), Items: total, PerRelay: per})
		s.mu.Unlock()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// outstanding counts expected items not yet at their recipients, by
// looking at the recipients' books.
func (s *sim) outstanding() (shares, requests, answers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, rec := range s.shares {
		sid, err := identity.ParseShareID(id)
		for p, seen := range rec.targets {
			if seen {
				continue
			}
			if u := s.byID[p]; err == nil && u != nil {
				if n := u.node(); n != nil && n.HasShare(sid) {
					rec.targets[p] = true
					continue
				}
			}
			if !rec.excused { // withdrawn, unless it arrives anyway (counted then)
				shares++
			}
		}
	}
	for id, rec := range s.requests {
		if rec.seen {
			continue
		}
		rid, err := protocols.ParseRequestID(id)
		if u := s.byID[rec.to]; err == nil && u != nil {
			if n := u.node(); n != nil {
				if _, _, ok := n.RequestState(rid); ok || n.IsFriend(rec.from) {
					rec.seen = true
					continue
				}
			}
		}
		if !rec.excused && !rec.merged {
			requests++
		}
	}
	for id, rec := range s.answers {
		if rec.seen {
			continue
		}
		rid, err := protocols.ParseRequestID(id)
		if u := s.byID[rec.to]; err == nil && u != nil {
			if n := u.node(); n != nil {
				if _, st, ok := n.RequestState(rid); (ok && st == book.Accepted) || n.IsFriend(rec.from) {
					rec.seen = true
					continue
				}
			}
		}
		if !rec.excused {
			answers++
		}
	}
	return
}
