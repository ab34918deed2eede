package book

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
