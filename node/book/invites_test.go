package book

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// wireOf is the wire form of an outgoing request.
func wireOf(t *testing.T, r *Request) *pb.AddRequest {
	t.Helper()
	var w pb.AddRequest
	if err := proto.Unmarshal(r.Wire, &w); err != nil {
		t.Fatal(err)
	}
	return &w
}

// requestVia is p's request to the invite's owner through link.
func requestVia(t *testing.T, p *person, link string, now time.Time) *protocols.UnverifiedAddRequest {
	t.Helper()
	r, _, muts, err := p.AddByInvite(link, "", now)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(t, muts)
	u, err := protocols.DecodeAddRequest(wireOf(t, r))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestInviteUsesRevocationAndProfile(t *testing.T) {
	alice := newPerson(t, "Alice")
	bob, carol, dave := newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave")

	for _, bad := range []InviteSpec{{MaxUses: -1}, {MaxUses: MaxInviteUses + 1}, {Validity: time.Second}, {Validity: 2 * MaxInviteValidity}, {Label: "a\x00b"}} {
		if _, _, err := alice.MakeInvite(bad, nil, t0); !errors.Is(err, ErrBadArgument) {
			t.Errorf("MakeInvite(%+v): %v, want a bad argument", bad, err)
		}
	}
	one, muts, err := alice.MakeInvite(InviteSpec{Label: "party", MaxUses: 1, Validity: 48 * time.Hour}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	if _, _, err := alice.MakeInvite(InviteSpec{Label: "Party"}, nil, t0); !errors.Is(err, ErrBadArgument) {
		t.Errorf("a second active invite labelled party: %v", err)
	}
	link := alice.InviteLinkOf(one.Invite)
	// kith id never hands out a made invite.
	if general, _, _ := alice.Invite(nil, t0); general == link {
		t.Fatal("the general invite is the one made for the party")
	}

	seq := alice.Settings.Seq
	fromBob := requestVia(t, bob, link, t0)
	if _, muts, err := alice.ReceiveDecoded(fromBob, t0); err != nil {
		t.Fatalf("Bob, the first: %v", err)
	} else {
		alice.apply(t, muts)
	}
	if st := one.State(t0); st != "used up" || !alice.TakeProfileStale() || alice.Settings.Seq != seq+1 {
		t.Fatalf("after its one use: %s, seq %d (was %d)", st, alice.Settings.Seq, seq)
	}
	// Bob's retry is the same request; Carol is one too many.
	if _, _, err := alice.ReceiveDecoded(fromBob, t0); err != nil {
		t.Errorf("Bob's retry: %v", err)
	}
	_, _, err = alice.ReceiveDecoded(requestVia(t, carol, link, t0), t0)
	if !errors.Is(err, ErrDropped) || identity.ReasonOf(err) != identity.ReasonRevoked {
		t.Errorf("Carol through a used invite: %v", err)
	}

	// Revoked: refused, and listed in the profile until it expires.
	work, muts, _ := alice.MakeInvite(InviteSpec{Label: "work"}, nil, t0)
	alice.apply(t, muts)
	if _, muts, err = alice.RevokeInvite("work", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	} else {
		alice.apply(t, muts)
	}
	_, _, err = alice.ReceiveDecoded(requestVia(t, dave, alice.InviteLinkOf(work.Invite), t0), t0)
	if identity.ReasonOf(err) != identity.ReasonRevoked {
		t.Errorf("Dave through a revoked invite: %v", err)
	}
	listed := func(now time.Time) map[string]bool {
		out := map[string]bool{}
		for _, tok := range alice.ProfileInfo(now).RevokedInvites {
			out[peer.ID(tok[:]).String()] = true
		}
		return out
	}
	tokOf := func(e InviteEntry) string {
		in, _ := identity.NewVerifier().Invite(e.Raw, t0)
		return peer.ID(in.Token[:]).String()
	}
	if l := listed(t0); len(l) != 2 || !l[tokOf(one)] || !l[tokOf(work)] {
		t.Errorf("the profile lists %v", l)
	}
	if l := listed(t0.Add(72 * time.Hour)); len(l) != 1 || !l[tokOf(work)] {
		t.Errorf("after the party invite expired, the profile lists %v", l)
	}
	// The list survives a restart.
	again := alice.reload(t)
	if e, err := again.FindInvite("party"); err != nil || e.State(t0) != "used up" || len(e.UsedBy) != 1 {
		t.Errorf("reloaded: %+v %v", e, err)
	}
}

func TestBefriendAgainThroughTheSameInvite(t *testing.T) {
	alice, bob := newPerson(t, "Alice"), newPerson(t, "Bob")
	link, muts, _ := alice.Invite(nil, t0)
	alice.apply(t, muts)
	first := requestVia(t, bob, link, t0)
	if again := requestVia(t, bob, link, t0); again.ID != first.ID {
		t.Fatal("adding twice made two requests")
	}
	r, muts, err := alice.ReceiveDecoded(first, t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	_, ans, muts, err := alice.Accept(r.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	if _, muts, err := bob.ReceiveAnswer(ans, t0); err != nil {
		t.Fatal(err)
	} else {
		bob.apply(t, muts)
	}
	if _, muts, err := bob.Unfriend(alice.me, t0); err != nil {
		t.Fatal(err)
	} else {
		bob.apply(t, muts)
	}
	second := requestVia(t, bob, link, t0.Add(time.Hour))
	if second.ID == first.ID {
		t.Fatal("after the unfriend, the old request is sent again")
	}
	if bytes.Equal(second.Offer, first.Offer) {
		t.Fatal("after the unfriend, the old offer is sent again")
	}
}
