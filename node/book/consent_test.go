package book

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
)

// askFirst makes p ask to be asked first, and the others learn it.
func askFirst(t *testing.T, p *person, others ...*person) {
	t.Helper()
	muts, err := p.SetPolicy(identity.ShareAskFirst)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(t, muts)
	p.resign(t, t0)
	for _, o := range others {
		o.apply(t, o.LearnProfile(p.Profile(), t0))
	}
}

func consentWire(t *testing.T, from *person, a *Ask) *protocols.ConsentMessage {
	t.Helper()
	m, err := from.ConsentMessage(a, t0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocols.DecodeConsentMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAskFirstFlow: Alice's share of Carol (who asks first) and Dave with
// Bob leaves Carol out and asks her; Carol approves; the share of Carol
// alone, with her consent, verifies for Bob; another share without it
// is refused before it is sent.
func TestAskFirstFlow(t *testing.T) {
	alice, bob, carol, dave := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave")
	for _, p := range []*person{bob, carol, dave} {
		befriend(t, alice, p)
	}
	askFirst(t, carol, alice)
	req := ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me, dave.me}}
	asks, muts := alice.AskFirst(&req, t0)
	alice.apply(t, muts)
	if len(asks) != 1 || asks[0].Friend != carol.me || len(req.Skip) != 1 || alice.ItemsLeft(req) != 1 {
		t.Fatalf("asks %+v, skip %v", asks, req.Skip)
	}
	if again, _ := alice.AskFirst(&ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me}}, t0); len(again) != 0 {
		t.Fatalf("asked twice: %+v", again)
	}
	s, failed, err := alice.BuildShare(req, t0)
	if err != nil || len(failed) != 0 || len(s.Items) != 1 || s.Items[0].Peer != dave.me {
		t.Fatalf("the share without Carol: %v %v %+v", err, failed, s)
	}

	in, muts, err := carol.ReceiveConsent(consentWire(t, alice, asks[0]), t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if in.Direction != Incoming || in.Target != bob.me || in.State != AskPending {
		t.Fatalf("Carol's ask: %+v", in)
	}
	answered, muts, err := carol.AnswerAsk(in.ID, true, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	out, muts, err := alice.ReceiveConsent(consentWire(t, carol, answered), t0)
	if err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	if out.State != AskApproved || len(out.Consent) == 0 {
		t.Fatalf("Alice's ask after the answer: %+v", out)
	}
	withCarol, failed, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me},
		Consents: map[peer.ID][]byte{carol.me: out.Consent}}, t0)
	if err != nil || len(failed) != 0 {
		t.Fatalf("the share of Carol with her consent: %v %+v", err, failed)
	}
	v, err := protocols.VerifyShare(identity.NewVerifier(), withCarol, t0, nil)
	if err != nil || len(v.Failures) != 0 {
		t.Fatalf("Bob's check of it: %v %+v", err, v)
	}
	if _, failed, _ := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me}}, t0); len(failed) != 1 {
		t.Fatalf("a share of Carol without consent: %+v", failed)
	}
}
