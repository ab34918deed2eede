package simnet

import (
	"crypto/rand"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	identitypb "github.com/kithnet/kith/identity/pb"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// An adversary is a user with real friends who also attacks, in turn:
//
//   - forged-share: shares a stranger with a friendship only it signed;
//   - replayed-share: sends other contents under the id of a share it made;
//   - claimed-introduction: asks a stranger to be friends, claiming one of
//     the stranger's friends introduced it (a seal it signed in their name),
//     through the relay and directly to the stranger's node;
//   - mailbox-flood: fires a burst of shares at one friend;
//   - sock-puppet-flood: 64 requests to a stranger, each resting on an
//     introduction sealed by one of 8 keys made for the purpose (each
//     "friends" with the adversary: two keys of one person), through the
//     stranger's relay and one straight to the stranger's node;
//   - invite-flood: 64 requests to a stranger on the stranger's own invite
//     (as if it had been posted publicly): valid, so they fill the
//     stranger's strangers' room, which must stop them there while the
//     stranger's friends' items keep arriving.
//
// Every forged or replayed item is recorded; if any is accepted by a relay
// or reaches a user, the run reports it in forged_accepted.
func (s *sim) adversary(u *user, stop time.Time) {
	kinds := []string{"forged-share", "replayed-share", "claimed-introduction", "mailbox-flood", "sock-puppet-flood", "invite-flood"}
	rng := mrand.New(mrand.NewPCG(s.cfg.Seed, uint64(u.idx)+2<<32))
	for i := 0; time.Now().Before(stop); i++ {
		wake := time.Now().Add(between(rng, 20*time.Second, 60*time.Second))
		if wake.After(stop) {
			return // the drain waits for this goroutine
		}
		time.Sleep(time.Until(wake))
		n := u.node()
		if n == nil {
			continue
		}
		kind := kinds[i%len(kinds)]
		s.mu.Lock()
		s.attacks[kind]++
		s.mu.Unlock()
		switch kind {
		case "forged-share":
			s.forgedShare(rng, u, n)
		case "replayed-share":
			s.replayedShare(rng, u, n)
		case "claimed-introduction":
			s.claimedIntroduction(rng, u, n)
		case "mailbox-flood":
			s.flood(rng, u, n)
		case "sock-puppet-flood":
			s.sockPuppetFlood(rng, u, n)
		case "invite-flood":
			s.inviteFlood(rng, u, n)
		}
	}
}

func (s *sim) stranger(rng *mrand.Rand, u *user, n *node.Node) *user {
	for range 50 {
		v := s.w.users[rng.IntN(len(s.w.users))]
		if v != u && !v.adversary && !n.IsFriend(v.id) {
			return v
		}
	}
	return nil
}

func (s *sim) aFriend(rng *mrand.Rand, n *node.Node) *user {
	fs := n.FriendIDs()
	if len(fs) == 0 {
		return nil
	}
	return s.byID[fs[rng.IntN(len(fs))]]
}

func (s *sim) relayOf(u *user) peer.ID { return s.w.relays[u.home].addrInfo().ID }

func (s *sim) forgedShare(rng *mrand.Rand, u *user, n *node.Node) {
	victim, target := s.stranger(rng, u, n), s.aFriend(rng, n)
	if victim == nil || target == nil {
		return
	}
	forged, _ := identity.MakeOffer(u.key, victim.id, time.Now(), 0) // never countersigned
	sh, err := protocols.BuildShare(u.key, protocols.ShareSpec{
		CreatedAt: time.Now(),
		Targets:   []protocols.ShareTarget{{Peer: target.id, Attestation: n.FriendAttestation(target.id)}},
		Items:     []protocols.ShareItem{{Peer: victim.id, Attestation: forged}},
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.forged[sh.ID.String()] = true
	s.mu.Unlock()
	resp, err := client.Share(s.ctx, n.Host(), s.relayOf(target), sh.Raw)
	if err == nil && resp.Status == pb.Status_OK {
		s.mu.Lock()
		s.forgedOK++
		s.mu.Unlock()
	}
}

func (s *sim) replayedShare(rng *mrand.Rand, u *user, n *node.Node) {
	target, item := s.aFriend(rng, n), s.aFriend(rng, n)
	if target == nil || item == nil || target == item {
		return
	}
	// A legitimate share first: it is expected to arrive.
	at := time.Now()
	res, err := n.Share(s.ctx, node.ShareArgs{To: []string{target.id.String()}, Friends: []string{item.id.String()}})
	if err != nil || res == nil || len(res.Targets) == 0 || res.Targets[0].Share == "" {
		return
	}
	t := res.Targets[0]
	s.mu.Lock()
	s.attempted++
	if t.Status == "delivered" || t.Status == "stored" {
		s.shares[t.Share] = &shareRec{sharer: u.id, sentAt: at, targets: map[peer.ID]bool{target.id: false}}
	}
	s.mu.Unlock()
	id, err := identity.ParseShareID(t.Share)
	if err != nil {
		return
	}
	// Then other contents under the same id.
	other := s.aFriend(rng, n)
	if other == nil || other == target {
		return
	}
	sh, err := protocols.BuildShare(u.key, protocols.ShareSpec{
		ID: id, CreatedAt: time.Now(),
		Targets: []protocols.ShareTarget{{Peer: target.id, Attestation: n.FriendAttestation(target.id)}},
		Items:   []protocols.ShareItem{{Peer: other.id, Attestation: n.FriendAttestation(other.id)}},
	})
	if err != nil {
		return
	}
	resp, err := client.Share(s.ctx, n.Host(), s.relayOf(target), sh.Raw)
	if err == nil && resp.Status == pb.Status_OK {
		s.mu.Lock()
		s.forgedOK++
		s.mu.Unlock()
	}
}

func (s *sim) claimedIntroduction(rng *mrand.Rand, u *user, n *node.Node) {
	victim := s.stranger(rng, u, n)
	if victim == nil {
		return
	}
	vn := victim.node()
	var introducer peer.ID
	if vn != nil {
		if fs := vn.FriendIDs(); len(fs) > 0 {
			introducer = fs[rng.IntN(len(fs))]
		}
	}
	if introducer == "" {
		return
	}
	intro := forgeIntroduction(u, introducer, victim.id)
	offer, _ := identity.MakeOffer(u.key, victim.id, time.Now(), 0)
	var rid protocols.RequestID
	rand.Read(rid[:])
	req, err := protocols.BuildAddRequest(u.key, protocols.AddRequestSpec{
		ID: rid, To: victim.id, Offer: offer, Introduction: intro, CreatedAt: time.Now(),
	})
	if err != nil {
		return
	}
	s.mu.Lock()
	s.forged[rid.String()] = true
	s.mu.Unlock()
	m := &pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: []*pb.AddRequest{req}}}}
	resp, err := client.Add(s.ctx, n.Host(), s.relayOf(victim), m)
	if err == nil && len(resp.Results) == 1 && (resp.Results[0].Delivery == pb.Delivery_DELIVERED || resp.Results[0].Delivery == pb.Delivery_STORED) {
		s.mu.Lock()
		s.forgedOK++
		s.mu.Unlock()
	}
	// And straight to the victim's node; a node that accepted it would
	// show it to the user, which onEvent counts.
	if vn != nil {
		n.Host().Peerstore().AddAddrs(victim.id, vn.Host().Addrs(), time.Minute)
		client.Add(s.ctx, n.Host(), victim.id, &pb.AddMessage{Msg: &pb.AddMessage_Request{Request: req}})
	}
}

// forgeIntroduction makes an introduction that claims `introducer` sealed
// a share introducing u to subject, signed by u's own key.
func forgeIntroduction(u *user, introducer, subject peer.ID) []byte {
	id := identity.NewShareID()
	root := make([]byte, 32)
	rand.Read(root)
	body, _ := proto.Marshal(&identitypb.SealBody{Sharer: []byte(introducer), ShareId: id[:], Root: root, Leaves: 2,
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(time.Hour).Unix()})
	sig, _ := identity.SignBody(u.key, identity.DomainSeal, body)
	seal, _ := proto.Marshal(&identitypb.SignedRecord{Body: body, Signature: sig})
	salt := identity.NewSalt()
	sibling := make([]byte, 32)
	rand.Read(sibling)
	raw, _ := proto.Marshal(&identitypb.Introduction{Seal: seal, Recipient: []byte(u.id), Subject: []byte(subject),
		Salt: salt[:], Index: 1, Path: [][]byte{sibling}})
	return raw
}

func (s *sim) flood(rng *mrand.Rand, u *user, n *node.Node) {
	victim, item := s.aFriend(rng, n), s.aFriend(rng, n)
	if victim == nil || item == nil || victim == item {
		return
	}
	// 60 shares, 12 at a time: past the relay's per-peer rate limit, and
	// towards the victim's mailbox quota if the victim is offline.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for range 60 {
		sem <- struct{}{}
		// A few milliseconds apart, each at its own instant: shares started
		// at one instant would be packed into QUIC packets in whatever
		// order their goroutines ran.
		time.Sleep(between(rng, 2*time.Millisecond, 8*time.Millisecond))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := time.Now()
			res, _ := n.Share(s.ctx, node.ShareArgs{To: []string{victim.id.String()}, Friends: []string{item.id.String()}})
			s.mu.Lock()
			defer s.mu.Unlock()
			s.attempted++
			if res != nil && len(res.Targets) == 1 && res.Targets[0].Share != "" &&
				(res.Targets[0].Status == "delivered" || res.Targets[0].Status == "stored") {
				s.shares[res.Targets[0].Share] = &shareRec{sharer: u.id, sentAt: at, targets: map[peer.ID]bool{victim.id: false}}
			}
		}()
	}
	wg.Wait()
}

// floodSize is how many requests one flood sends: one combined request.
const floodSize = protocols.MaxRequestsPerAdd

func (s *sim) sockPuppetFlood(rng *mrand.Rand, u *user, n *node.Node) {
	victim := s.stranger(rng, u, n)
	if victim == nil {
		return
	}
	var reqs []*pb.AddRequest
	for range 8 {
		puppet, err := identity.GenerateKey()
		if err != nil {
			return
		}
		offer, _ := identity.MakeOffer(puppet, u.id, time.Now(), 0)
		withU, err := identity.NewVerifier().Countersign(u.key, offer, time.Now())
		if err != nil {
			return
		}
		for range floodSize / 8 {
			sh, err := protocols.BuildShare(puppet, protocols.ShareSpec{CreatedAt: time.Now(),
				Targets: []protocols.ShareTarget{{Peer: u.id, Attestation: withU.Raw}},
				Items:   []protocols.ShareItem{{Peer: victim.id}}})
			if err != nil {
				return
			}
			intro, _ := sh.Introduction(u.id, victim.id)
			if req := s.floodRequest(u, victim.id, intro, nil); req != nil {
				reqs = append(reqs, req)
			}
		}
	}
	resp := s.sendFlood(n, victim, reqs, s.forged, &s.strangers.PuppetRequests)
	stored := 0
	for _, res := range resp.GetResults() {
		if res.Delivery == pb.Delivery_DELIVERED || res.Delivery == pb.Delivery_STORED {
			stored++
		}
	}
	s.mu.Lock()
	s.strangers.PuppetStored += stored
	s.forgedOK += stored
	s.mu.Unlock()
	if vn := victim.node(); vn != nil && len(reqs) > 0 {
		n.Host().Peerstore().AddAddrs(victim.id, vn.Host().Addrs(), time.Minute)
		client.Add(s.ctx, n.Host(), victim.id, &pb.AddMessage{Msg: &pb.AddMessage_Request{Request: reqs[0]}})
	}
}

func (s *sim) inviteFlood(rng *mrand.Rand, u *user, n *node.Node) {
	// The worst case is a victim offline, whose mailbox keeps what
	// arrives: flood one whose invite is known and who is offline now, if
	// there is one; else a stranger online.
	victim := s.offlineInvitee(u, n)
	if victim == nil {
		victim = s.stranger(rng, u, n)
	}
	// And harvest a few more invites, as an attacker collects the links
	// people post.
	for range 8 {
		if v := s.stranger(rng, u, n); v != nil {
			s.inviteOf(v)
		}
	}
	if victim == nil {
		return
	}
	invite := s.inviteOf(victim)
	if invite == nil {
		return
	}
	var reqs []*pb.AddRequest
	for range floodSize {
		if req := s.floodRequest(u, victim.id, nil, invite); req != nil {
			reqs = append(reqs, req)
		}
	}
	resp := s.sendFlood(n, victim, reqs, s.flooded, &s.strangers.InviteRequests)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, res := range resp.GetResults() {
		switch {
		case res.Delivery == pb.Delivery_DELIVERED || res.Delivery == pb.Delivery_STORED:
			s.strangers.InviteStored++
		case res.Reason == pb.Reason_MAILBOX_FULL:
			s.strangers.RoomFull++
		case res.Reason == pb.Reason_THROTTLED:
			s.strangers.Throttled++
		}
	}
	if rn := s.w.relays[victim.home]; rn != nil {
		rn.mu.Lock()
		if rn.r != nil {
			s.strangers.Peak = max(s.strangers.Peak, rn.r.WaitingFromStrangers(victim.id))
		}
		rn.mu.Unlock()
	}
}

// offlineInvitee returns a user offline now, not u's friend, whose
// invite is known, in a fixed order; or nil.
func (s *sim) offlineInvitee(u *user, n *node.Node) *user {
	s.mu.Lock()
	var known []*user
	for id := range s.invites {
		if v := s.byID[id]; v != nil && v != u && !v.adversary {
			known = append(known, v)
		}
	}
	s.mu.Unlock()
	sort.Slice(known, func(i, j int) bool { return known[i].idx < known[j].idx })
	for _, v := range known {
		if v.node() == nil && !n.IsFriend(v.id) {
			return v
		}
	}
	return nil
}

// inviteOf returns victim's invite, asked of its node once and kept (an
// invite link is handed out, and anyone who has it may use it).
func (s *sim) inviteOf(victim *user) []byte {
	s.mu.Lock()
	inv, ok := s.invites[victim.id]
	s.mu.Unlock()
	if ok {
		return inv
	}
	vn := victim.node()
	if vn == nil {
		return nil
	}
	id, err := vn.IDView()
	if err != nil {
		return nil
	}
	raw, _, err := identity.ParseInviteLink(id.Invite)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	s.invites[victim.id] = raw
	s.mu.Unlock()
	return raw
}

// sendFlood notes reqs' ids in mark and their number in sent, then sends
// them to victim's relay as one combined request.
func (s *sim) sendFlood(n *node.Node, victim *user, reqs []*pb.AddRequest, mark map[string]bool, sent *int) *pb.AddResponse {
	s.mu.Lock()
	for _, r := range reqs {
		mark[requestIDOf(r)] = true
	}
	*sent += len(reqs)
	s.mu.Unlock()
	resp, _ := client.Add(s.ctx, n.Host(), s.relayOf(victim), &pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: reqs}}})
	return resp
}

// floodRequest is u's request to `to`, on intro or invite, with a fresh id.
func (s *sim) floodRequest(u *user, to peer.ID, intro, invite []byte) *pb.AddRequest {
	offer, err := identity.MakeOffer(u.key, to, time.Now(), 0)
	if err != nil {
		return nil
	}
	var rid protocols.RequestID
	rand.Read(rid[:])
	req, err := protocols.BuildAddRequest(u.key, protocols.AddRequestSpec{
		ID: rid, To: to, Offer: offer, Introduction: intro, Invite: invite, CreatedAt: time.Now(),
	})
	if err != nil {
		return nil
	}
	return req
}

// requestIDOf returns the hex id of a request built here.
func requestIDOf(r *pb.AddRequest) string {
	u, err := protocols.DecodeAddRequest(r)
	if err != nil {
		return ""
	}
	return u.ID.String()
}
