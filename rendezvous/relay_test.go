package rendezvous

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

func TestShareToOnlineTarget(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	inbox := c.bob.login(r)
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol, c.dave})

	// Bob's node acknowledges whatever arrives, as a node does once stored.
	got := make(chan *pb.InboxItem, 1)
	go func() {
		it, err := inbox.Next()
		if err == nil {
			inbox.Ack(it.Seq)
			got <- it
		}
	}()
	resp, err := c.alice.share(r, s.Raw)
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	if d := delivery(resp, c.bob.id); d != pb.Delivery_DELIVERED {
		t.Fatalf("bob: %v, want DELIVERED", d)
	}
	it := <-got
	if it.Kind != pb.ItemKind_SHARE || !bytes.Equal(it.Payload, s.Raw) || peer.ID(it.From) != c.alice.id {
		t.Fatalf("item kind %v from %s, payload equal %v", it.Kind, peer.ID(it.From), bytes.Equal(it.Payload, s.Raw))
	}
	// The target verifies the exact bytes end to end.
	u, err := protocols.DecodeShare(it.Payload, protocols.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protocols.VerifyShare(identity.NewVerifier(), u, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "mailbox drained", func() bool { return r.Waiting(c.bob.id) == 0 })
}

func TestShareStoredThenDeliveredAtLogin(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	var shares []*protocols.UnverifiedShare
	for range 3 {
		s := c.buildShare(t, []*tuser{c.bob, c.erin}, []*tuser{c.carol, c.dave, c.frank})
		resp, err := c.alice.share(r, s.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if d := delivery(resp, c.bob.id); d != pb.Delivery_STORED {
			t.Fatalf("offline bob: %v, want STORED", d)
		}
		shares = append(shares, s)
	}
	inbox := c.bob.login(r)
	if inbox.Result.Waiting != 3 {
		t.Fatalf("login says %d waiting, want 3", inbox.Result.Waiting)
	}
	var seqs []uint64
	for i, s := range shares {
		it := next(t, inbox)
		if !bytes.Equal(it.Id, s.ID[:]) {
			t.Fatalf("item %d is share %x, want %s (in order)", i, it.Id, s.ID)
		}
		seqs = append(seqs, it.Seq)
	}
	// Not acknowledged: everything comes again at the next login.
	inbox.Close()
	waitFor(t, "bob offline", func() bool { return !r.Online(c.bob.id) })
	inbox = c.bob.login(r)
	for i := range shares {
		if it := next(t, inbox); it.Seq != seqs[i] {
			t.Fatalf("redelivery %d: seq %d, want %d", i, it.Seq, seqs[i])
		}
	}
	if err := inbox.Ack(seqs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "acks applied", func() bool { return r.Waiting(c.bob.id) == 0 })
	inbox.Close()
	waitFor(t, "bob offline", func() bool { return !r.Online(c.bob.id) })
	inbox = c.bob.login(r)
	if inbox.Result.Waiting != 0 {
		t.Fatalf("%d waiting after acks", inbox.Result.Waiting)
	}
	quiet(t, inbox, 200*time.Millisecond)
	// Erin, the other target, still has all three.
	if n := r.Waiting(c.erin.id); n != 3 {
		t.Fatalf("erin has %d waiting, want 3", n)
	}
}

func TestShareRetryIsIdempotent(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	for i := range 3 {
		resp, err := c.alice.share(r, s.Raw)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if d := delivery(resp, c.bob.id); d != pb.Delivery_STORED {
			t.Fatalf("attempt %d: %v", i, d)
		}
	}
	if n := r.Waiting(c.bob.id); n != 1 {
		t.Fatalf("a retried share is stored %d times", n)
	}
}

func TestCombinedAddFanOutAndAnswer(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol, c.dave})
	if _, err := c.alice.share(r, s.Raw); err != nil {
		t.Fatal(err)
	}
	carolInbox := c.carol.login(r) // Carol is online, Dave is not
	bobInbox := c.bob.login(r)
	it := next(t, bobInbox)
	bobInbox.Ack(it.Seq)

	var reqs []*pb.AddRequest
	for _, to := range []*tuser{c.carol, c.dave} {
		offer, _ := identity.MakeOffer(c.bob.key, to.id, time.Now(), 0)
		intro, err := s.Introduction(c.bob.id, to.id)
		if err != nil {
			t.Fatal(err)
		}
		req, err := protocols.BuildAddRequest(c.bob.key, protocols.AddRequestSpec{
			ID: protocols.NewRequestID(), To: to.id, Offer: offer, Introduction: intro, FromName: "Bob", CreatedAt: time.Now(), ToKey: to.enc.Public(),
		})
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	go func() {
		if it, err := carolInbox.Next(); err == nil {
			carolInbox.Ack(it.Seq)
			// Carol accepts: countersign Bob's offer and answer through the relay.
			u, _ := protocols.DecodeAddRequest(mustAddRequest(it.Payload))
			att, err := identity.NewVerifier().Countersign(c.carol.key, u.Offer, time.Now())
			if err != nil {
				return
			}
			client.Add(context.Background(), c.carol.h, r.h.ID(), &pb.AddMessage{Msg: &pb.AddMessage_Answer{
				Answer: &pb.AddAnswer{RequestId: u.ID[:], Attestation: att.Raw}}})
		}
	}()
	resp, err := client.Add(context.Background(), c.bob.h, r.h.ID(), &pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: &pb.CombinedAdd{Requests: reqs}}})
	if err != nil {
		t.Fatalf("combined add: %v", err)
	}
	want := map[peer.ID]pb.Delivery{c.carol.id: pb.Delivery_DELIVERED, c.dave.id: pb.Delivery_STORED}
	for _, res := range resp.Results {
		if res.Delivery != want[peer.ID(res.To)] {
			t.Fatalf("result for %s: %v (%s), want %v", peer.ID(res.To), res.Delivery, res.Detail, want[peer.ID(res.To)])
		}
	}
	// Carol's acceptance reaches Bob.
	ans := next(t, bobInbox)
	if ans.Kind != pb.ItemKind_ADD_ANSWER {
		t.Fatalf("bob got %v, want an answer", ans.Kind)
	}
	var a pb.AddAnswer
	proto.Unmarshal(ans.Payload, &a)
	if _, err := identity.NewVerifier().Friendship(a.Attestation, c.bob.id, c.carol.id, time.Now()); err != nil {
		t.Fatalf("answer's attestation: %v", err)
	}
	// Dave gets his request when he logs in.
	daveInbox := c.dave.login(r)
	if got := next(t, daveInbox); got.Kind != pb.ItemKind_ADD_REQUEST || peer.ID(got.From) != c.bob.id {
		t.Fatalf("dave got %v from %s", got.Kind, peer.ID(got.From))
	}
}

func mustAddRequest(b []byte) *pb.AddRequest {
	var m pb.AddRequest
	proto.Unmarshal(b, &m)
	return &m
}

func TestPresenceOnlyForFriendsAndIntroduced(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	c.carol.login(r)
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	intro, _ := s.Introduction(c.bob.id, c.carol.id)
	ask := func(u *tuser, a *pb.PresenceAsk) *pb.PresenceEntry {
		t.Helper()
		u.meet(r)
		resp, err := client.Presence(context.Background(), u.h, r.h.ID(), &pb.PresenceQuery{Asks: []*pb.PresenceAsk{a}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Entries[0]
	}
	if e := ask(c.alice, &pb.PresenceAsk{Peer: []byte(c.carol.id), Attestation: c.att[c.carol.id]}); !e.Online || len(e.Addrs) == 0 {
		t.Fatalf("friend asking: %+v", e)
	}
	if e := ask(c.bob, &pb.PresenceAsk{Peer: []byte(c.carol.id), Introduction: intro}); !e.Online {
		t.Fatalf("introduced asking: %+v", e)
	}
	if e := ask(c.mallory, &pb.PresenceAsk{Peer: []byte(c.carol.id)}); e.Online || e.Refused != pb.Reason_MISSING || len(e.Addrs) != 0 {
		t.Fatalf("stranger asking: %+v", e)
	}
	if e := ask(c.mallory, &pb.PresenceAsk{Peer: []byte(c.carol.id), Introduction: intro}); e.Online || e.Refused != pb.Reason_WRONG_PAIR {
		t.Fatalf("stranger with someone else's introduction: %+v", e)
	}
	if e := ask(c.mallory, &pb.PresenceAsk{Peer: []byte(c.carol.id), Attestation: c.att[c.carol.id]}); e.Online || e.Refused != pb.Reason_WRONG_PAIR {
		t.Fatalf("stranger with someone else's friendship: %+v", e)
	}
	if e := ask(c.alice, &pb.PresenceAsk{Peer: []byte(c.dave.id), Attestation: c.att[c.dave.id]}); e.Online {
		t.Fatalf("offline friend reported online: %+v", e)
	}
}

func TestRevocationWithdrawsAndGossips(t *testing.T) {
	cfg := DefaultConfig()
	keys := federation(&cfg, 2)
	r1 := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	cfg.Peers = []string{r1.h.Addrs()[0].String() + "/p2p/" + r1.h.ID().String()}
	r2 := startRelayWithKey(t, keys[1], nil, WithConfig(cfg))
	c := newCast(t)
	waitFor(t, "relays connected", func() bool { return len(r2.h.Network().ConnsToPeer(r1.h.ID())) > 0 })
	// Two stored shares for Bob: one resting on Alice<->Carol, one not.
	s1 := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	s2 := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.dave})
	for _, s := range []*protocols.UnverifiedShare{s1, s2} {
		if _, err := c.alice.share(r1, s.Raw); err != nil {
			t.Fatal(err)
		}
	}
	// Erin has already received a share of Carol.
	s3 := c.buildShare(t, []*tuser{c.erin}, []*tuser{c.carol})
	erinInbox := c.erin.login(r1)
	go func() {
		if it, err := erinInbox.Next(); err == nil {
			erinInbox.Ack(it.Seq)
		}
	}()
	if resp, err := c.alice.share(r1, s3.Raw); err != nil || delivery(resp, c.erin.id) != pb.Delivery_DELIVERED {
		t.Fatalf("share to erin: %v %v", resp, err)
	}

	// Carol unfriends Alice.
	att, _ := identity.NewVerifier().Attestation(c.att[c.carol.id], time.Now())
	rev, _ := identity.Revoke(c.carol.key, att, time.Now())
	time.Sleep(500 * time.Millisecond) // let the gossip mesh form
	c.carol.meet(r1)
	if _, err := client.Revoke(context.Background(), c.carol.h, r1.h.ID(), [][]byte{rev}); err != nil {
		t.Fatal(err)
	}
	// Bob logs in: only the share that does not rest on it is there.
	inbox := c.bob.login(r1)
	it := next(t, inbox)
	if !bytes.Equal(it.Id, s2.ID[:]) {
		t.Fatalf("bob got share %x, want %s only", it.Id, s2.ID)
	}
	quiet(t, inbox, 200*time.Millisecond)
	// Erin is told the share she saw is withdrawn.
	w := next(t, erinInbox)
	if w.Kind != pb.ItemKind_WITHDRAWAL {
		t.Fatalf("erin got %v, want a withdrawal", w.Kind)
	}
	wd, err := protocols.DecodeWithdrawal(w.Payload)
	if err != nil || !bytes.Equal(wd.ItemId, s3.ID[:]) {
		t.Fatalf("withdrawal %+v %v", wd, err)
	}
	// The other relay heard it by gossip and refuses the revoked friendship.
	waitFor(t, "gossip", func() bool { return r2.store.revoked.Revoked(att.ID) })
	s4 := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	resp, err := c.alice.share(r2, s4.Raw)
	if err == nil || resp.Status != pb.Status_REFUSED || resp.Failures[0].Reason != pb.Reason_REVOKED {
		t.Fatalf("share on a revoked friendship at the other relay: %v %v", resp, err)
	}
}

// TestRestartKeepsMailboxes closes a relay on its on-disk datastore and
// opens a new one on the same directory: what was stored is delivered, in
// order, and ids stay idempotent.
func TestRestartKeepsMailboxes(t *testing.T) {
	dir := t.TempDir()
	key, _ := identity.GenerateKey()
	c := newCast(t)
	d1, err := OpenDatastore(dir)
	if err != nil {
		t.Fatal(err)
	}
	r1 := startRelayWithKey(t, key, d1)
	var ids [][]byte
	var first *protocols.UnverifiedShare
	for i := range 5 {
		s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
		if i == 0 {
			first = s
		}
		if _, err := c.alice.share(r1, s.Raw); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID[:])
	}
	r1.Close()
	r1.h.Close()
	d1.Close()

	d2, err := OpenDatastore(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	r2 := startRelayWithKey(t, key, d2)
	// A retry of a share sent before the restart is not stored again.
	if resp, err := c.alice.share(r2, first.Raw); err != nil || delivery(resp, c.bob.id) != pb.Delivery_STORED {
		t.Fatalf("retry after restart: %v %v", resp, err)
	}
	inbox := c.bob.login(r2)
	if inbox.Result.Waiting != 5 {
		t.Fatalf("%d waiting after restart, want 5", inbox.Result.Waiting)
	}
	for i := range ids {
		if it := next(t, inbox); !bytes.Equal(it.Id, ids[i]) {
			t.Fatalf("item %d out of order after restart", i)
		}
	}
}

// TestConcurrentSharesAllPushedInOneSession: many shares stored while the
// target is online all reach it in the same session. (A pushed-ahead bug
// once skipped items whose batch was in the model but not yet on disk, and
// they waited for the next login.)
func TestConcurrentSharesAllPushedInOneSession(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ShareRate = Rate{PerSecond: 1e6, Burst: 1e6}
	cfg.DeliverWait = 0
	r := startRelay(t, nil, WithConfig(cfg))
	c := newCast(t)
	inbox := c.bob.login(r)
	const n = 300
	got := make(chan *pb.InboxItem, n)
	ackAll(inbox, got)
	errs := make(chan error, n)
	var shares []*protocols.UnverifiedShare
	for range n {
		shares = append(shares, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}))
	}
	for w := range 10 {
		go func() {
			for i := w; i < n; i += 10 {
				_, err := c.alice.share(r, shares[i].Raw)
				errs <- err
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for len(seen) < n {
		select {
		case it := <-got:
			seen[string(it.Id)] = true
		case <-deadline:
			t.Fatalf("%d of %d shares reached the online target in its session (%d still waiting at the relay)", len(seen), n, r.Waiting(c.bob.id))
		}
	}
}

// TestManySharesOneStream: a sharer keeps one stream and sends share
// after share on it; each is answered in turn.
func TestManySharesOneStream(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	c.alice.meet(r)
	sh := client.NewSharer(c.alice.h, r.h.ID())
	defer sh.Close()
	for i := range 20 {
		resp, err := sh.Share(context.Background(), c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
		if err != nil || delivery(resp, c.bob.id) != pb.Delivery_STORED {
			t.Fatalf("share %d: %v %v", i, resp, err)
		}
	}
	if n := r.Waiting(c.bob.id); n != 20 {
		t.Fatalf("%d stored, want 20", n)
	}
	streams := 0
	for _, conn := range c.alice.h.Network().ConnsToPeer(r.h.ID()) {
		for _, s := range conn.GetStreams() {
			if s.Protocol() == protocols.ShareProtocol {
				streams++
			}
		}
	}
	if streams != 1 {
		t.Fatalf("%d share streams open, want 1", streams)
	}
}

// TestMovedAnswers: once a user's newest profile names other home relays
// (their node logged in here with it), what is sent to them is answered
// MOVED with that profile, and nothing is stored here for them.
func TestMovedAnswers(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	elsewhere := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWKJwHLdAyNbUmLTjDdBGoJDW7khYpi3XTUvoBPzDELGfE"
	moved, err := identity.NewProfile(c.bob.key, identity.ProfileInfo{Name: "Bob", Seq: 2, Relays: []ma.Multiaddr{ma.StringCast(elsewhere)}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.bob.profile = moved
	c.bob.login(r).Close()

	resp, _ := c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
	if len(resp.GetFailures()) != 1 || resp.Failures[0].Reason != pb.Reason_MOVED || !bytes.Equal(resp.Failures[0].Profile, moved) {
		t.Fatalf("a share to Bob, who moved: %v", resp)
	}
	req := addRequest(t, c.carol.key, c.bob.id, nil, func() []byte {
		inv, _, _ := identity.NewInvite(c.bob.key, "Bob", nil, time.Now(), time.Hour)
		return inv
	}())
	ar := sendAdd(t, c.carol, r, protocols.AddProtocol, combinedFrame(req))
	if len(ar.Results) != 1 || ar.Results[0].Reason != pb.Reason_MOVED || !bytes.Equal(ar.Results[0].Profile, moved) {
		t.Fatalf("a request to Bob, who moved: %v", ar)
	}
	if n := r.Waiting(c.bob.id); n != 0 {
		t.Fatalf("%d items stored for a user who moved", n)
	}
}
