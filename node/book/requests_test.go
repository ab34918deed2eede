package book

import (
	"errors"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/protocols"
)

// TestRequestsExpire: a request waits RequestLifetime for its answer;
// past it the sender stops sending it, the recipient cannot accept it,
// and both see it expired. A cancelled request is final.
func TestRequestsExpire(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	rs := share(t, alice, bob, []*person{carol})
	results, muts, err := bob.Pick(rs, []peer.ID{carol.me}, false, "", t0)
	if err != nil || results[0].Request == nil {
		t.Fatalf("pick: %+v %v", results, err)
	}
	bob.apply(t, muts)
	out := results[0].Request
	if len(out.RestsOn) != 2 {
		t.Errorf("the request rests on %d friendships, want Alice's with Bob and Carol", len(out.RestsOn))
	}
	late := t0.Add(RequestLifetime + time.Minute)
	if reqs, _ := bob.Unsent(t0); len(reqs) != 1 {
		t.Fatalf("unsent now: %d", len(reqs))
	}
	if reqs, _ := bob.Unsent(late); len(reqs) != 0 || out.StateAt(late) != Expired {
		t.Fatalf("past its lifetime: %d unsent, state %s", len(reqs), out.StateAt(late))
	}
	if _, _, err := bob.CancelRequest(out.ID, late); !errors.Is(err, ErrAlreadyFinal) {
		t.Errorf("cancelling an expired request: %v", err)
	}

	u := requestVia(t, bob, mustInvite(t, carol), t0)
	in, muts, err := carol.ReceiveDecoded(u, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if _, _, _, err := carol.Accept(in.ID, late); !errors.Is(err, ErrAlreadyFinal) {
		t.Errorf("accepting an expired request: %v", err)
	}
	if _, err := carol.Decline(in.ID, late); !errors.Is(err, ErrAlreadyFinal) {
		t.Errorf("declining an expired request: %v", err)
	}
	// A request received after its lifetime is dropped.
	dave := newPerson(t, "Dave")
	long, muts, err := dave.MakeInvite(InviteSpec{Validity: 3 * RequestLifetime}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	dave.apply(t, muts)
	if _, _, err := dave.ReceiveDecoded(requestVia(t, alice, dave.InviteLinkOf(long.Invite), t0), late); !errors.Is(err, ErrDropped) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a request received too late: %v", err)
	}

	// Cancelled: final, and the revocation withdraws Carol's copy.
	raw, muts, err := bob.CancelRequest(u.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	if bob.Request(u.ID).State != Cancelled {
		t.Fatalf("after cancel: %s", bob.Request(u.ID).State)
	}
	muts, err = carol.ApplyRevocation(raw)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if carol.Request(in.ID).State != Withdrawn {
		t.Errorf("Carol's copy of a cancelled request: %s", carol.Request(in.ID).State)
	}
}

func mustInvite(t *testing.T, p *person) string {
	t.Helper()
	link, muts, err := p.Invite(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(t, muts)
	return link
}

// TestMergedIntroductions: Bob picks Carol from Alice's share, then from
// Dave's: the second pick replaces the pending request by one that
// carries both introductions and the same offer. Carol keeps one pending
// request, whichever copy arrives first, and her accept answers both.
func TestMergedIntroductions(t *testing.T) {
	alice, bob, carol, dave := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave")
	for _, pair := range [][2]*person{{alice, bob}, {alice, carol}, {dave, bob}, {dave, carol}} {
		befriend(t, pair[0], pair[1])
	}
	fromAlice := share(t, alice, bob, []*person{carol})
	fromDave := share(t, dave, bob, []*person{carol})
	pick := func(s *ReceivedShare) PickResult {
		t.Helper()
		res, muts, err := bob.Pick(s, []peer.ID{carol.me}, false, "", t0)
		if err != nil || len(res) != 1 {
			t.Fatalf("pick: %+v %v", res, err)
		}
		bob.apply(t, muts)
		return res[0]
	}
	r1 := pick(fromAlice).Request
	p2 := pick(fromDave)
	if !p2.Merged || p2.Request == nil || r1.State != Merged || p2.Request.OfferID != r1.OfferID || len(p2.Request.Introducers) != 2 {
		t.Fatalf("the second pick: %+v; the first request is %s", p2, r1.State)
	}
	if again := pick(fromDave); again.Request != nil {
		t.Fatalf("picking from Dave's share again: %+v", again)
	}
	decode := func(r *Request) *protocols.UnverifiedAddRequest {
		u, err := protocols.DecodeAddRequest(wireOf(t, r))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, order := range [][]*Request{{r1, p2.Request}, {p2.Request, r1}} {
		c := &person{Book: carol.reload(t), d: ds.NewMapDatastore()} // Carol before either arrived
		var last *Request
		for _, r := range order {
			got, muts, err := c.ReceiveDecoded(decode(r), t0)
			if err != nil {
				t.Fatal(err)
			}
			c.apply(t, muts)
			last = got
		}
		pending := 0
		for _, r := range c.Requests() {
			if r.State == Pending {
				pending++
				if r.ID != p2.Request.ID || len(r.Introducers) != 2 {
					t.Errorf("order %v: the pending request is %s with %d introducers", order[0].ID, r.ID, len(r.Introducers))
				}
			}
		}
		if pending != 1 || last == nil {
			t.Errorf("order %v: %d pending", order[0].ID, pending)
		}
	}
	_, ans, muts, err := carol.Accept(mustReceive(t, carol, decode(p2.Request)).ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if _, muts, err := bob.ReceiveAnswer(ans, t0); err != nil {
		t.Fatal(err)
	} else {
		bob.apply(t, muts)
	}
	if bob.Request(r1.ID).State != Accepted || bob.Request(p2.Request.ID).State != Accepted {
		t.Errorf("after the answer: %s, %s", bob.Request(r1.ID).State, bob.Request(p2.Request.ID).State)
	}
}

func mustReceive(t *testing.T, p *person, u *protocols.UnverifiedAddRequest) *Request {
	t.Helper()
	r, muts, err := p.ReceiveDecoded(u, t0)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(t, muts)
	return r
}
