package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

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
