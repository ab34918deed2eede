package node_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// TestSockPuppetIntroductionAtTheNode sends a node, directly and through
// its relay, friend requests on introductions an attacker made: by a key
// made for the purpose, and by a real friend of the attacker who is not
// the victim's. The node refuses each with the introduction's reason
// (direct) or never sees it (the relay refused it), and shows nothing.
func TestSockPuppetIntroductionAtTheNode(t *testing.T) {
	w := newWorld(t)
	carol := w.up("Carol")
	w.up("Alice")
	w.befriend("Alice", "Carol")

	mk, _ := identity.GenerateKey()
	mallory, _ := peer.IDFromPrivateKey(mk)
	mh := loopback(t, mk)
	puppet, _ := identity.GenerateKey()
	ivan, _ := identity.GenerateKey() // Mallory's real friend, not Carol's

	sealed := func(sealer crypto.PrivKey, recipientAtt, subjectAtt []byte) *pb.AddRequest {
		sh, err := protocols.BuildShare(sealer, protocols.ShareSpec{CreatedAt: time.Now(),
			Targets: []protocols.ShareTarget{{Peer: mallory, Attestation: recipientAtt}},
			Items:   []protocols.ShareItem{{Peer: carol.n.ID(), Attestation: subjectAtt}}})
		if err != nil {
			t.Fatal(err)
		}
		intro, _ := sh.Introduction(mallory, carol.n.ID())
		offer, _ := identity.MakeOffer(mk, carol.n.ID(), time.Now(), 0)
		req, err := protocols.BuildAddRequest(mk, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: carol.n.ID(),
			Offer: offer, Introduction: intro, CreatedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	between := func(a, b crypto.PrivKey) []byte {
		bid, _ := peer.IDFromPrivateKey(b)
		o, _ := identity.MakeOffer(a, bid, time.Now(), 0)
		att, err := identity.NewVerifier().Countersign(b, o, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return att.Raw
	}
	tests := []struct {
		name   string
		req    *pb.AddRequest
		reason pb.Reason
	}{
		{"a sock puppet's introduction", sealed(puppet, between(puppet, mk), nil), pb.Reason_MISSING},
		{"a sock puppet showing its friendship with Mallory as one with Carol", sealed(puppet, between(puppet, mk), between(puppet, mk)), pb.Reason_WRONG_PAIR},
		{"Ivan, a friend of Mallory's only", sealed(ivan, between(ivan, mk), nil), pb.Reason_MISSING},
	}
	ctx := context.Background()
	mh.Peerstore().AddAddrs(carol.n.ID(), carol.n.Host().Addrs(), peerstore.PermanentAddrTTL)
	mh.Peerstore().AddAddrs(w.rinfo.ID, w.rinfo.Addrs, peerstore.PermanentAddrTTL)
	for _, tt := range tests {
		t.Run(tt.name+", directly", func(t *testing.T) {
			resp, err := client.Add(ctx, mh, carol.n.ID(), &pb.AddMessage{Msg: &pb.AddMessage_Request{Request: tt.req}})
			if resp == nil || resp.Status != pb.Status_REFUSED || len(resp.Results) != 1 || resp.Results[0].Reason != tt.reason {
				t.Fatalf("answer %v (%v), want REFUSED with %v", resp, err, tt.reason)
			}
		})
		t.Run(tt.name+", through the relay", func(t *testing.T) {
			resp, _ := client.Add(ctx, mh, w.rinfo.ID, &pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: []*pb.AddRequest{tt.req}}}})
			if resp == nil || resp.Status != pb.Status_REFUSED || resp.Results[0].Reason != tt.reason {
				t.Fatalf("answer %v, want REFUSED with %v", resp, tt.reason)
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	for _, r := range carol.n.Requests() {
		if r.Direction == "in" {
			t.Fatalf("carol was shown a request: %+v", r)
		}
	}
}

// TestDirectShareAttacks: what a node takes directly (when its relays are
// down) is checked as what its relay pushes: a share resting on a
// friendship that does not hold, or sent by someone other than its
// sharer, is refused, and nothing is shown.
func TestDirectShareAttacks(t *testing.T) {
	w := newWorld(t)
	carol := w.up("Carol")
	w.up("Alice")
	w.up("Dave")
	w.befriend("Alice", "Carol")
	w.befriend("Alice", "Dave")
	mk, _ := identity.GenerateKey()
	mh := loopback(t, mk)
	mh.Peerstore().AddAddrs(carol.n.ID(), carol.n.Host().Addrs(), peerstore.PermanentAddrTTL)
	ctx := context.Background()

	// Mallory seals a share to Carol, with whom she has no friendship.
	puppet, _ := identity.GenerateKey()
	puppetID, _ := peer.IDFromPrivateKey(puppet)
	offer, _ := identity.MakeOffer(mk, carol.n.ID(), time.Now(), 0)
	own, err := protocols.BuildShare(mk, protocols.ShareSpec{CreatedAt: time.Now(),
		Targets: []protocols.ShareTarget{{Peer: carol.n.ID(), Attestation: offer}},
		Items:   []protocols.ShareItem{{Peer: puppetID}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := client.DirectShare(ctx, mh, carol.n.ID(), own.Raw); resp == nil || resp.Status != pb.Status_REFUSED {
		t.Fatalf("a share on no friendship: %v", resp)
	}
	// A real share of Alice's, handed over by Mallory.
	alice, dave := w.nodes["Alice"], w.nodes["Dave"]
	real, err := protocols.BuildShare(alice.key, protocols.ShareSpec{CreatedAt: time.Now(),
		Targets: []protocols.ShareTarget{{Peer: carol.n.ID(), Attestation: alice.n.FriendAttestation(carol.n.ID())}},
		Items:   []protocols.ShareItem{{Peer: dave.n.ID(), Attestation: alice.n.FriendAttestation(dave.n.ID())}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := client.DirectShare(ctx, mh, carol.n.ID(), real.Raw); resp == nil || resp.Status != pb.Status_UNAUTHORIZED {
		t.Fatalf("Alice's share handed over by Mallory: %v", resp)
	}
	if len(carol.n.Shares()) != 0 {
		t.Fatalf("carol was shown %d shares", len(carol.n.Shares()))
	}
}

// TestCancelAttacks: only a request's sender can cancel it. Mallory sends
// Carol's node, directly, a cancel that does not decode, one that is not
// a revocation, a revocation of her own offer (harmless: it cancels
// nothing of anyone else's), and Bob's genuine cancel replayed from her
// own host: each is refused or changes nothing, and Bob's request to
// Carol stays pending. A relay refuses a cancel on the add protocol.
func TestCancelAttacks(t *testing.T) {
	w := newWorld(t)
	carol := w.up("Carol")
	bob := w.up("Bob")
	ctx := context.Background()
	id, _ := carol.n.IDView()
	if _, err := bob.n.AddInvite(ctx, id.Invite, ""); err != nil {
		t.Fatal(err)
	}
	var reqID string
	waitFor(t, "Bob's request at Carol's", func() bool {
		for _, r := range carol.n.Requests() {
			if r.Direction == "in" && r.State == "pending" {
				reqID = r.ID
			}
		}
		return reqID != ""
	})
	// Bob's genuine cancel, as Mallory might have copied it off the wire
	// (a revocation of the offer in his request).
	var bobsOffer []byte
	for _, r := range bob.n.Requests() {
		if r.Direction == "out" {
			bobsOffer = offerOf(t, bob, r.ID)
		}
	}
	att, err := identity.NewVerifier().Offer(bobsOffer, carol.n.ID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bobsCancel, err := identity.Revoke(bob.key, att, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mk, _ := identity.GenerateKey()
	mh := loopback(t, mk)
	mh.Peerstore().AddAddrs(carol.n.ID(), carol.n.Host().Addrs(), peerstore.PermanentAddrTTL)
	mh.Peerstore().AddAddrs(w.rinfo.ID, w.rinfo.Addrs, peerstore.PermanentAddrTTL)
	malOffer, _ := identity.MakeOffer(mk, carol.n.ID(), time.Now(), 0)
	malAtt, _ := identity.NewVerifier().Offer(malOffer, carol.n.ID(), time.Now())
	malCancel, _ := identity.Revoke(mk, malAtt, time.Now())
	cancel := func(raw []byte) *pb.AddMessage { return &pb.AddMessage{Msg: &pb.AddMessage_Cancel{Cancel: raw}} }
	for _, tt := range []struct {
		name string
		raw  []byte
		want pb.Status
	}{
		{"garbage", []byte{1, 2, 3}, pb.Status_REFUSED},
		{"an attestation, not a revocation", bobsOffer, pb.Status_REFUSED},
		{"Bob's cancel replayed by Mallory", bobsCancel, pb.Status_UNAUTHORIZED},
		{"Mallory's cancel of her own offer", malCancel, pb.Status_OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Add(ctx, mh, carol.n.ID(), cancel(tt.raw))
			if resp == nil || resp.Status != tt.want {
				t.Fatalf("answer %v (%v), want %v", resp, err, tt.want)
			}
		})
	}
	if resp, _ := client.Add(ctx, mh, w.rinfo.ID, cancel(bobsCancel)); resp == nil || resp.Status != pb.Status_BAD_REQUEST {
		t.Errorf("a relay answers a cancel on the add protocol with %v", resp)
	}
	for _, r := range carol.n.Requests() {
		if r.ID == reqID && r.State != "pending" {
			t.Fatalf("after Mallory's cancels Bob's request is %s", r.State)
		}
	}
	// Mallory's cancel of an offer to no one is not kept.
	if has, _ := carol.d.Has(ctx, ds.NewKey("/kith/node/revoked/"+malAtt.ID.String())); has {
		t.Error("Carol's node stored a cancel that cancelled nothing")
	}
	// Bob's own cancel, from Bob, withdraws it.
	bh := bob.n.Host()
	bh.Peerstore().AddAddrs(carol.n.ID(), carol.n.Host().Addrs(), peerstore.PermanentAddrTTL)
	if resp, err := client.Add(ctx, bh, carol.n.ID(), cancel(bobsCancel)); resp == nil || resp.Status != pb.Status_OK {
		t.Fatalf("Bob's cancel: %v (%v)", resp, err)
	}
	for _, r := range carol.n.Requests() {
		if r.ID == reqID && r.State != "withdrawn" {
			t.Fatalf("after Bob's cancel his request is %s", r.State)
		}
	}
}

// offerOf is the offer in m's outgoing request id, read from m's store.
func offerOf(t *testing.T, m *member, id string) []byte {
	t.Helper()
	v, err := m.d.Get(context.Background(), ds.NewKey("/kith/node/requests/"+id))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Wire []byte }
	var wire pb.AddRequest
	if err := json.Unmarshal(v, &rec); err != nil || proto.Unmarshal(rec.Wire, &wire) != nil {
		t.Fatalf("request %s in the store: %v", id, err)
	}
	u, err := protocols.DecodeAddRequest(&wire)
	if err != nil {
		t.Fatal(err)
	}
	return u.Offer
}
