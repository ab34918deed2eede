package book

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// The book is the node's pure core: these tests drive it with no network,
// time passed in, and check each decision and the state it leaves.

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type person struct {
	*Book
	d ds.Datastore // where the book's mutations go
}

func newPerson(t *testing.T, name string) *person {
	t.Helper()
	k, _ := identity.GenerateKey()
	b, err := NewBook(k, name)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{Book: b, d: ds.NewMapDatastore()}
	if name == "" {
		return p
	}
	muts, _, err := b.EnsureKeys(t0)
	if err != nil {
		t.Fatal(err)
	}
	p.apply(t, muts)
	p.resign(t, t0)
	return p
}

// resign signs the person's profile as it stands, as the node does at
// start.
func (p *person) resign(t *testing.T, now time.Time) {
	t.Helper()
	prof, err := identity.NewProfile(p.key, p.ProfileInfo(now), now)
	if err != nil {
		t.Fatal(err)
	}
	p.SetProfile(prof)
}

// reload returns the book that the person's datastore rebuilds.
func (p *person) reload(t *testing.T) *Book {
	t.Helper()
	again, _ := NewBook(p.key, "")
	res, err := p.d.Query(context.Background(), query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for r := range res.Next() {
		if err := again.Load(r.Key, r.Value); err != nil {
			t.Fatalf("load %s: %v", r.Key, err)
		}
	}
	return again
}

// apply writes mutations to the person's datastore, as the node does.
func (p *person) apply(t *testing.T, muts []Mutation) {
	t.Helper()
	for _, m := range muts {
		var err error
		if m.Del {
			err = p.d.Delete(context.Background(), m.Key)
		} else {
			err = p.d.Put(context.Background(), m.Key, m.Value)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// befriend makes a and b friends directly (a asked, b accepted).
func befriend(t *testing.T, a, b *person) { befriendAt(t, a, b, t0) }

// befriendAt makes a and b friends at now, each with the other's profile
// and profile key, as a request and its answer give them.
func befriendAt(t *testing.T, a, b *person, now time.Time) {
	t.Helper()
	offer, _ := identity.MakeOffer(a.key, b.me, now, 0)
	att, err := identity.NewVerifier().Countersign(b.key, offer, now)
	if err != nil {
		t.Fatal(err)
	}
	_, m1 := a.addFriend(att, b.Settings.Name, "", b.Profile(), b.profileKey[:], nil, now)
	_, m2 := b.addFriend(att, a.Settings.Name, "", a.Profile(), a.profileKey[:], nil, now)
	a.apply(t, m1)
	b.apply(t, m2)
}

// share makes a share from a to targets of items and delivers it.
func share(t *testing.T, from *person, to *person, items []*person, extra ...protocols.ShareItem) *ReceivedShare {
	t.Helper()
	var ids []peer.ID
	for _, it := range items {
		ids = append(ids, it.me)
	}
	s, failed, err := from.BuildShare(ShareRequest{To: []peer.ID{to.me}, Friends: ids}, t0)
	if err != nil || len(failed) > 0 {
		t.Fatalf("build share: %v %v", err, failed)
	}
	rs, muts, err := to.ReceiveShare(s.Raw, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	to.apply(t, muts)
	return rs
}

func TestBuildShareExpandsGroupsAtShareTime(t *testing.T) {
	alice, bob, carol, dave, mallory := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave"), newPerson(t, "Mallory")
	for _, f := range []*person{bob, carol, dave} {
		befriend(t, alice, f)
	}
	alice.CreateGroup("work")
	alice.CreateGroup("climbing")
	alice.AddToGroup("work", []peer.ID{carol.me, bob.me})
	alice.AddToGroup("climbing", []peer.ID{carol.me})
	if _, err := alice.AddToGroup("work", []peer.ID{mallory.me}); !errors.Is(err, ErrNotFriend) {
		t.Fatalf("a stranger in a group: %v", err)
	}
	// Dave joins work after the group was made: he is in the share.
	alice.AddToGroup("work", []peer.ID{dave.me})
	s, failed, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Groups: []string{"work", "climbing"}}, t0)
	if err != nil || len(failed) > 0 {
		t.Fatalf("%v %v", err, failed)
	}
	var got []string
	for _, it := range s.Items {
		got = append(got, it.Name+"/"+it.Group)
	}
	// Bob is the target, so not shared with himself; Carol appears once.
	if want := []string{"Carol/work", "Dave/work"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	// A stranger can be neither shared nor a target: refused with the reason.
	_, failed, err = alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me, mallory.me}}, t0)
	if err != nil || len(failed) != 1 || failed[0].Peer != mallory.me || failed[0].Reason != pb.Reason_MISSING {
		t.Fatalf("share of a stranger: %v %v", err, failed)
	}
	// In partial mode the friends still go, and the stranger is named.
	s, failed, _ = alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me, mallory.me}, Partial: true}, t0)
	if s == nil || len(s.Items) != 1 || len(failed) != 1 {
		t.Fatalf("partial: %v %v", s, failed)
	}
	if _, _, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}}, t0); !errors.Is(err, ErrBadArgument) {
		t.Fatalf("empty share: %v", err)
	}
}

func TestPickPlansOneRequestPerNewFriend(t *testing.T) {
	alice, bob, carol, dave, erin, frank := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave"), newPerson(t, "Erin"), newPerson(t, "Frank")
	for _, f := range []*person{bob, carol, dave, erin, frank} {
		befriend(t, alice, f)
	}
	befriend(t, bob, dave) // already Bob's friend
	bob.Block(erin.me)
	rs := share(t, alice, bob, []*person{carol, dave, erin, frank})

	states := map[string]ItemState{}
	for _, it := range rs.Items {
		states[it.Name] = bob.ItemState(rs, it.Peer)
	}
	want := map[string]ItemState{"Carol": ItemNew, "Dave": ItemFriend, "Erin": ItemBlocked, "Frank": ItemNew}
	if !reflect.DeepEqual(states, want) {
		t.Fatalf("item states %v, want %v", states, want)
	}

	results, muts, err := bob.Pick(rs, nil, true, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	got := map[string]string{}
	for _, r := range results {
		if r.Request != nil {
			got[r.Name] = "request"
			if r.Request.Introducer != alice.me || !r.Request.IntroducerVerified || r.Request.Sent != Queued {
				t.Fatalf("request %+v", r.Request)
			}
			if !strings.Contains(r.Request.Message, "Alice shared you with Bob") {
				t.Fatalf("default message %q", r.Request.Message)
			}
		} else {
			got[r.Name] = r.Reason
		}
	}
	wantPick := map[string]string{"Carol": "request", "Frank": "request", "Dave": "already your friend", "Erin": "you blocked them"}
	if !reflect.DeepEqual(got, wantPick) {
		t.Fatalf("pick %v, want %v", got, wantPick)
	}
	if s := bob.ItemState(rs, carol.me); s != ItemPending {
		t.Fatalf("carol after the pick: %v", s)
	}
	// Picking again (all, or one by one) asks nobody twice.
	again, muts, _ := bob.Pick(rs, []peer.ID{carol.me, frank.me}, false, "", t0)
	if len(muts) != 0 || again[0].Request != nil || again[1].Request != nil {
		t.Fatalf("second pick made requests: %+v", again)
	}
	// The request ids are derived from share and peer: stable across restarts.
	for _, r := range results {
		if r.Request != nil && r.Request.ID != bob.requestID(rs.ID, r.Peer) {
			t.Fatalf("request id of %s is not derived from the pick", r.Name)
		}
	}
	// Someone not in the share cannot be picked.
	res, _, _ := bob.Pick(rs, []peer.ID{alice.me}, false, "", t0)
	if res[0].Request != nil || !strings.Contains(res[0].Reason, "not in this share") {
		t.Fatalf("picking a non-item: %+v", res[0])
	}
}

func TestRequestsNeedAFriendsIntroductionOrAnInvite(t *testing.T) {
	alice, bob, carol, mallory := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Mallory")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	befriend(t, mallory, bob) // Mallory is Bob's friend, not Carol's
	rs := share(t, alice, bob, []*person{carol})
	results, _, _ := bob.Pick(rs, []peer.ID{carol.me}, false, "hi", t0)
	var good pb.AddRequest
	proto.Unmarshal(results[0].Request.Wire, &good)

	// Mallory shares Carol? She cannot: she has no friendship with Carol. So
	// she forges what she can: a request of her own reusing Bob's introduction.
	u, _ := protocols.DecodeAddRequest(&good)
	offer, _ := identity.MakeOffer(mallory.key, carol.me, t0, 0)
	stolen, _ := protocols.BuildAddRequest(mallory.key, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: carol.me, Offer: offer, Introduction: u.Introduction, CreatedAt: t0})
	carolInvite, _, _ := carol.Invite(nil, t0)
	bobInvite, _, _ := bob.Invite(nil, t0)
	viaInvite := func(inv string) *pb.AddRequest {
		raw, _, _ := identity.ParseInviteLink(inv)
		o, _ := identity.MakeOffer(mallory.key, carol.me, t0, 0)
		r, _ := protocols.BuildAddRequest(mallory.key, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: carol.me, Offer: o, Invite: raw, CreatedAt: t0})
		return r
	}

	// Or she introduces herself: a sock puppet's key seals "puppet
	// introduces Mallory to Carol" (the puppet is "friends" with Mallory,
	// two keys of one person), or Bob, her real friend but not Carol's,
	// does.
	introducedBy := func(sealer *person, recipientAtt, subjectAtt []byte) *pb.AddRequest {
		sh, err := protocols.BuildShare(sealer.key, protocols.ShareSpec{CreatedAt: t0,
			Targets: []protocols.ShareTarget{{Peer: mallory.me, Attestation: recipientAtt}},
			Items:   []protocols.ShareItem{{Peer: carol.me, Attestation: subjectAtt}}})
		if err != nil {
			t.Fatal(err)
		}
		intro, _ := sh.Introduction(mallory.me, carol.me)
		o, _ := identity.MakeOffer(mallory.key, carol.me, t0, 0)
		r, _ := protocols.BuildAddRequest(mallory.key, protocols.AddRequestSpec{ID: protocols.NewRequestID(), To: carol.me, Offer: o, Introduction: intro, CreatedAt: t0})
		return r
	}
	attBetween := func(a, b *person) []byte {
		o, _ := identity.MakeOffer(a.key, b.me, t0, 0)
		att, _ := identity.NewVerifier().Countersign(b.key, o, t0)
		return att.Raw
	}
	puppet := newPerson(t, "Puppet")
	aliceCarol := carol.friends[alice.me].Attestation

	tests := []struct {
		name   string
		req    *pb.AddRequest
		ok     bool
		reason identity.Reason // of a request that fails verification
	}{
		{"introduced by a friend", &good, true, 0},
		{"the same request again", &good, true, 0},
		{"someone else's introduction", stolen, false, identity.ReasonWrongPair},
		{"someone else's invite", viaInvite(bobInvite), false, 0},
		{"Carol's own invite", viaInvite(carolInvite), true, 0},
		{"a sock puppet's introduction", introducedBy(puppet, attBetween(puppet, mallory), nil), false, identity.ReasonMissing},
		{"a sock puppet showing Alice's friendship with Carol", introducedBy(puppet, attBetween(puppet, mallory), aliceCarol), false, identity.ReasonWrongPair},
		{"Bob, a friend of Mallory's only", introducedBy(bob, bob.friends[mallory.me].Attestation, nil), false, identity.ReasonMissing},
		{"Alice, a friend of Carol's only", introducedBy(alice, nil, aliceCarol), false, identity.ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, err := carol.ReceiveRequest(tt.req, t0)
			if tt.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v", tt.ok, err)
			}
			if err != nil && !errors.Is(err, ErrDropped) {
				t.Fatalf("a refused request must be dropped silently: %v", err)
			}
			if tt.reason != 0 && identity.ReasonOf(err) != tt.reason {
				t.Fatalf("reason %v (%v), want %v", identity.ReasonOf(err), err, tt.reason)
			}
			if err == nil && r.State != Pending {
				t.Fatalf("state %v", r.State)
			}
		})
	}
	in := 0
	for _, r := range carol.Requests() {
		if r.Direction == Incoming {
			in++
		}
	}
	if in != 2 {
		t.Fatalf("carol holds %d requests, want 2 (no duplicates)", in)
	}
	// Once blocked, Bob's requests are dropped and the pending one declined.
	carol.Block(bob.me)
	if r := carol.Request(u.ID); r.State != Declined {
		t.Fatalf("pending request of a blocked peer: %v", r.State)
	}
	if _, _, err := carol.ReceiveRequest(&good, t0); !errors.Is(err, ErrDropped) && err != nil {
		t.Fatalf("blocked: %v", err)
	}
}

func TestAcceptDeclineAndAnswer(t *testing.T) {
	alice, bob, carol, erin := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Erin")
	for _, f := range []*person{bob, carol, erin} {
		befriend(t, alice, f)
	}
	rs := share(t, alice, bob, []*person{carol, erin})
	results, muts, _ := bob.Pick(rs, nil, true, "", t0)
	bob.apply(t, muts)
	deliver := func(to *person, r *Request) *Request {
		var w pb.AddRequest
		proto.Unmarshal(r.Wire, &w)
		got, muts, err := to.ReceiveRequest(&w, t0)
		if err != nil {
			t.Fatal(err)
		}
		to.apply(t, muts)
		return got
	}
	toCarol, toErin := deliver(carol, results[0].Request), deliver(erin, results[1].Request)

	f, ans, muts, err := carol.Accept(toCarol.ID, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if f.ID != bob.me || f.IntroducedBy != alice.me || f.IntroducedByName != "Alice" {
		t.Fatalf("carol's new friend %+v", f)
	}
	if _, _, _, err := carol.Accept(toCarol.ID, t0); err != nil {
		t.Fatalf("accepting twice must return the same answer: %v", err)
	}
	if _, err := carol.Decline(toCarol.ID, t0); !errors.Is(err, ErrAlreadyFinal) {
		t.Fatalf("declining an accepted request: %v", err)
	}
	muts, err = erin.Decline(toErin.ID, t0)
	if err != nil || erin.Request(toErin.ID).State != Declined || len(muts) != 1 {
		t.Fatalf("decline: %v", err)
	}

	// Bob receives Carol's answer: friends, introduced by Alice.
	bf, muts, err := bob.ReceiveAnswer(ans, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	if bf.ID != carol.me || bf.IntroducedBy != alice.me || bob.Request(toCarol.ID).State != Accepted {
		t.Fatalf("bob's view %+v", bf)
	}
	// An answer carrying another attestation of the same pair is dropped.
	other, _ := identity.MakeOffer(bob.key, carol.me, t0, 0)
	att, _ := identity.NewVerifier().Countersign(carol.key, other, t0)
	if _, _, err := bob.ReceiveAnswer(&pb.AddAnswer{RequestId: ans.RequestId, Attestation: att.Raw}, t0); !errors.Is(err, ErrDropped) {
		t.Fatalf("a different attestation: %v", err)
	}
	// Bob never learns of Erin's decline: his request stays pending.
	if r := bob.Request(toErin.ID); r.State != Pending {
		t.Fatalf("bob's request to erin: %v", r.State)
	}
}

func TestUnfriendAndWithdrawal(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	alice.CreateGroup("work")
	alice.AddToGroup("work", []peer.ID{carol.me})
	rs := share(t, alice, bob, []*person{carol})

	raw, muts, err := alice.Unfriend(carol.me, t0)
	if err != nil || raw == nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	if alice.Friend(carol.me) != nil || len(alice.Group("work").Members) != 0 {
		t.Fatal("carol is still alice's friend or in her group")
	}
	// Bob hears the withdrawal: the share is withdrawn, nothing can be picked.
	muts, err = bob.Withdraw(&pb.Withdrawal{ItemId: rs.ID[:], ItemKind: pb.ItemKind_SHARE, Revocation: raw})
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	if s := bob.ItemState(bob.Share(rs.ID), carol.me); s != ItemWithdrawn {
		t.Fatalf("after withdrawal: %v", s)
	}
	res, _, _ := bob.Pick(bob.Share(rs.ID), nil, true, "", t0)
	if res[0].Request != nil {
		t.Fatal("picked from a withdrawn share")
	}
	// A forged revocation is refused.
	if _, err := bob.Withdraw(&pb.Withdrawal{ItemId: rs.ID[:], ItemKind: pb.ItemKind_SHARE, Revocation: []byte("forged")}); err == nil {
		t.Fatal("a forged revocation was applied")
	}
}

// TestBookSurvivesReload checks that what the mutations stored rebuilds
// the same book.
func TestBookSurvivesReload(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	rs := share(t, alice, bob, []*person{carol})
	_, muts, _ := bob.Pick(rs, nil, true, "", t0)
	bob.apply(t, muts)
	bob.apply(t, bob.SaveSettings())
	bob.apply(t, bob.Block(newPerson(t, "Mallory").me))
	m, _ := bob.CreateGroup("family")
	bob.apply(t, m)

	again := bob.reload(t)
	if !reflect.DeepEqual(again.Settings, bob.Settings) || len(again.friends) != len(bob.friends) || len(again.requests) != len(bob.requests) ||
		len(again.shares) != len(bob.shares) || len(again.blocked) != 1 || again.Group("family") == nil {
		t.Fatalf("reloaded book differs: %+v vs %+v", again.Settings, bob.Settings)
	}
	s := again.Share(rs.ID)
	if again.ItemState(s, carol.me) != ItemPending {
		t.Fatalf("item state after reload: %v", again.ItemState(s, carol.me))
	}
}

// TestNamesFromSharesSurviveReload: the name a share gives a friend of the
// sharer's (not picked, so known only from the share) is the same after a
// reload, not the peer id.
func TestNamesFromSharesSurviveReload(t *testing.T) {
	alice, bob, dave := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Dave")
	befriend(t, alice, bob)
	befriend(t, alice, dave)
	share(t, alice, bob, []*person{dave})
	if got := bob.Name(dave.me); got != "Dave" {
		t.Fatalf("name from the share: %q", got)
	}
	again := bob.reload(t)
	if got := again.Name(dave.me); got != "Dave" {
		t.Fatalf("name after reload: %q", got)
	}
}

// TestHomeRelaysAtTheBooksTime: which home relays a friend's profile names
// is read at the time the book is given, not the machine's: a profile
// issued two months from now is valid then (it was read at time.Now and
// refused as not yet valid).
func TestHomeRelaysAtTheBooksTime(t *testing.T) {
	alice, bob := newPerson(t, "Alice"), newPerson(t, "Bob")
	befriend(t, alice, bob)
	later := time.Now().Add(60 * 24 * time.Hour)
	relay := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWKJwHLdAyNbUmLTjDdBGoJDW7khYpi3XTUvoBPzDELGfE"
	raw, err := identity.NewProfile(alice.key, identity.ProfileInfo{Name: "Alice", Seq: 5, Relays: ParseAddrs([]string{relay})}, later)
	if err != nil {
		t.Fatal(err)
	}
	if m := bob.LearnProfile(raw, later); len(m) != 1 {
		t.Fatalf("learning the profile: %d mutations", len(m))
	}
	if got := bob.HomeRelays(alice.me, later); len(got) != 1 || got[0] != relay {
		t.Fatalf("home relays at the book's time: %v", got)
	}
}

// TestProfilesAndHomeRelays: which profiles the book keeps (a friend's or
// a requested peer's, newer only, verified), which peers it may ask about
// (with their proofs), and the new profile sequence a change of relays
// takes.
func TestProfilesAndHomeRelays(t *testing.T) {
	alice, bob, carol, frank, mallory := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Frank"), newPerson(t, "Mallory")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	befriend(t, alice, frank)
	rs := share(t, alice, bob, []*person{carol, frank})
	_, muts, err := bob.Pick(rs, nil, true, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)

	relay1 := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWKJwHLdAyNbUmLTjDdBGoJDW7khYpi3XTUvoBPzDELGfE"
	relay2 := "/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWKJwHLdAyNbUmLTjDdBGoJDW7khYpi3XTUvoBPzDELGfE"
	profile := func(p *person, seq uint64, relay string) []byte {
		t.Helper()
		raw, err := identity.NewProfile(p.key, identity.ProfileInfo{Name: p.Settings.Name, Seq: seq, Relays: ParseAddrs([]string{relay})}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	// Asks: a friend with the friendship, a requested peer with the
	// introduction, nobody else.
	asks := bob.ProfileAsks([]peer.ID{alice.me, carol.me, mallory.me})
	if len(asks) != 2 || peer.ID(asks[0].Peer) != alice.me || len(asks[0].Attestation) == 0 ||
		peer.ID(asks[1].Peer) != carol.me || len(asks[1].Introduction) == 0 {
		t.Fatalf("asks %+v", asks)
	}
	if _, err := identity.NewVerifier().Introduction(asks[1].Introduction, t0); err != nil {
		t.Fatalf("the introduction asked with: %v", err)
	}

	// Learning: newer wins, older and forged are ignored, strangers too.
	if m := bob.LearnProfile(profile(alice, 3, relay1), t0); len(m) != 1 {
		t.Fatalf("a friend's first profile: %d mutations", len(m))
	}
	if got := bob.HomeRelays(alice.me, t0); len(got) != 1 || got[0] != relay1 {
		t.Fatalf("home relays %v", got)
	}
	if m := bob.LearnProfile(profile(alice, 2, relay2), t0); len(m) != 0 {
		t.Fatal("an older profile replaced a newer one")
	}
	forged := profile(alice, 9, relay2)
	forged[len(forged)-1] ^= 1
	if m := bob.LearnProfile(forged, t0); len(m) != 0 {
		t.Fatal("a forged profile was kept")
	}
	if m := bob.LearnProfile(profile(mallory, 1, relay2), t0); len(m) != 0 {
		t.Fatal("a stranger's profile was kept")
	}
	if m := bob.LearnProfile(profile(alice, 4, relay2), t0); len(m) != 1 {
		t.Fatal("a newer profile was not kept")
	}
	if got := bob.HomeRelays(alice.me, t0); len(got) != 1 || got[0] != relay2 {
		t.Fatalf("home relays after the move %v", got)
	}
	if m := bob.LearnProfile(profile(carol, carol.Settings.Seq+1, relay2), t0); len(m) != 1 {
		t.Fatal("a requested peer's profile was not kept")
	}
	if got := bob.HomeRelays(carol.me, t0); len(got) != 1 || got[0] != relay2 {
		t.Fatalf("Carol's home relays %v", got)
	}

	// A change of relays takes a new sequence; the same relays do not.
	seq := alice.Settings.Seq
	if m := alice.SetHomeRelays([]string{relay1}, t0); len(m) != 1 || alice.Settings.Seq != seq+1 {
		t.Fatalf("first relays: seq %d -> %d", seq, alice.Settings.Seq)
	}
	if m := alice.SetHomeRelays([]string{relay1}, t0); len(m) != 0 || alice.Settings.Seq != seq+1 {
		t.Fatal("the same relays took a new sequence")
	}
	if m := alice.SetHomeRelays([]string{relay2}, t0); len(m) != 1 || alice.Settings.Seq != seq+2 {
		t.Fatal("a move did not take a new sequence")
	}
	// The same relay at another address is not a relay left behind.
	if l := alice.LeftRelays(); len(l) != 0 {
		t.Fatalf("left relays after a change of address %+v", l)
	}
	// Another relay's is: it is to be drained; named again, it is not.
	k, _ := identity.GenerateKey()
	other, _ := peer.IDFromPrivateKey(k)
	relay3 := "/ip4/127.0.0.1/tcp/4003/p2p/" + other.String()
	alice.SetHomeRelays([]string{relay1}, t0)
	alice.SetHomeRelays([]string{relay3}, t0)
	left, _ := relayPeer(relay1)
	if l := alice.LeftRelays(); len(l) != 1 || l[0].Peer != left || len(l[0].Addrs) != 1 || l[0].Addrs[0] != relay1 || !l[0].Since.Equal(t0) {
		t.Fatalf("left relays after the move %+v", l)
	}
	alice.SetHomeRelays([]string{relay3, relay1}, t0)
	if l := alice.LeftRelays(); len(l) != 0 {
		t.Fatalf("left relays after coming back %+v", l)
	}
	alice.SetHomeRelays([]string{relay3}, t0.Add(time.Hour))
	alice.SetHomeRelays(nil, t0.Add(2*time.Hour)) // both left; the first keeps its earlier date
	if l := alice.LeftRelays(); len(l) != 2 || l[0].Peer != left || l[1].Peer != other ||
		!l[0].Since.Equal(t0.Add(time.Hour)) || !l[1].Since.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("left relays after leaving both %+v", l)
	}
	raw, _ := json.Marshal(alice.Settings)
	var back Settings
	if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back.Left, alice.Settings.Left) {
		t.Fatalf("left relays do not survive the settings' encoding: %+v, %v", back.Left, err)
	}
	if m := alice.RelayDrained(left); len(m) != 1 || len(alice.LeftRelays()) != 1 {
		t.Fatal("a drained relay was not forgotten")
	}
	if m := alice.RelayDrained(left); len(m) != 0 {
		t.Fatal("forgetting a relay twice wrote again")
	}
}

// TestRequestAnswered: what a relay's result for each request of a combined
// request means to the requester, and what sticks.
func TestRequestAnswered(t *testing.T) {
	tests := []struct {
		name   string
		res    *pb.AddResult
		how    Delivery
		reason string // a part of it
		sticks bool
	}{
		{"stored", &pb.AddResult{Delivery: pb.Delivery_STORED}, SentRelay, "", true},
		{"delivered", &pb.AddResult{Delivery: pb.Delivery_DELIVERED}, SentRelay, "", true},
		{"their mailbox is full", &pb.AddResult{Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_MAILBOX_FULL}, Queued, "mailbox is full", false},
		{"the invite is throttled", &pb.AddResult{Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_THROTTLED}, Queued, "retried", false},
		{"refused, with words", &pb.AddResult{Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_MISSING, Detail: "introduction: missing"}, Skipped, "the relay refused it: introduction: missing", true},
		{"refused, without", &pb.AddResult{Delivery: pb.Delivery_NOT_SENT, Reason: pb.Reason_REVOKED}, Skipped, "revoked", true},
		{"no result for it", nil, Queued, "no request could be sent", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
			befriend(t, alice, bob)
			befriend(t, alice, carol)
			rs := share(t, alice, bob, []*person{carol})
			results, _, err := bob.Pick(rs, []peer.ID{carol.me}, false, "", t0)
			if err != nil || results[0].Request == nil {
				t.Fatalf("pick: %v %+v", err, results)
			}
			id := results[0].Request.ID
			how, reason, muts := bob.RequestAnswered(id, tt.res, "no request could be sent", t0)
			if how != tt.how || !strings.Contains(reason, tt.reason) || (len(muts) > 0) != tt.sticks {
				t.Fatalf("got %v %q (%d mutations), want %v %q sticks=%v", how, reason, len(muts), tt.how, tt.reason, tt.sticks)
			}
		})
	}
}

// TestAnswerShare: a relay's answer to a share, per status.
func TestAnswerShare(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	tests := []struct {
		name           string
		status         pb.Status
		final, refused bool
	}{
		{"accepted", pb.Status_OK, true, false},
		{"refused", pb.Status_REFUSED, true, true},
		{"a replay", pb.Status_REPLAY, true, true},
		{"every mailbox full", pb.Status_QUOTA_EXCEEDED, true, true},
		{"rate limited: stays queued", pb.Status_RATE_LIMITED, false, false},
		{"relay unavailable: stays queued", pb.Status_UNAVAILABLE, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me}}, t0)
			if err != nil {
				t.Fatal(err)
			}
			sent, _ := alice.RecordSent(s, t0)
			resp := &pb.ShareResponse{Status: tt.status, ShareId: s.ID[:],
				Targets:  []*pb.TargetResult{{Peer: []byte(bob.me), Delivery: pb.Delivery_STORED}},
				Failures: []*pb.Failure{{Peer: []byte(carol.me), Role: pb.Role_ITEM, Reason: pb.Reason_MISSING}}}
			ans, muts := alice.AnswerShare(sent.ID, resp, t0)
			if ans.Final != tt.final || ans.Refused != tt.refused || (len(muts) > 0) != tt.final {
				t.Fatalf("final %v refused %v (%d mutations), want %v %v", ans.Final, ans.Refused, len(muts), tt.final, tt.refused)
			}
			if len(ans.Result.Targets) != 1 || ans.Result.Targets[0].Status != "stored" || ans.Result.Targets[0].Name != "Bob" {
				t.Fatalf("targets %+v", ans.Result.Targets)
			}
			if len(ans.Result.Failed) != 1 || !strings.Contains(ans.Result.Failed[0].Reason, "Carol is not your friend") {
				t.Fatalf("failed %+v", ans.Result.Failed)
			}
			stillQueued := false
			for _, u := range alice.UnansweredShares() {
				stillQueued = stillQueued || u.ID == s.ID
			}
			if stillQueued == tt.final {
				t.Fatalf("queued after the answer: %v", stillQueued)
			}
		})
	}
}

// TestRoute: peers go to the first home relay their profile names, in the
// order relays first appear; peers with none go to the user's own relays.
func TestRoute(t *testing.T) {
	alice, bob, carol, dave := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	befriend(t, alice, dave)
	r1 := "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWKJwHLdAyNbUmLTjDdBGoJDW7khYpi3XTUvoBPzDELGfE"
	r2 := "/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X"
	for _, pr := range []struct {
		p     *person
		relay string
	}{{bob, r2}, {carol, r1}} {
		raw, err := identity.NewProfile(pr.p.key, identity.ProfileInfo{Name: pr.p.Settings.Name, Seq: pr.p.Settings.Seq + 1, Relays: ParseAddrs([]string{pr.relay})}, t0)
		if err != nil {
			t.Fatal(err)
		}
		alice.LearnProfile(raw, t0)
	}
	own, _ := peer.Decode("12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp")
	order, groups, addrs := alice.Route([]peer.ID{bob.me, carol.me, dave.me}, []peer.ID{own}, t0)
	id1, id2 := ParseAddrs([]string{r1})[0], ParseAddrs([]string{r2})[0]
	p1, _ := peer.AddrInfoFromP2pAddr(id1)
	p2, _ := peer.AddrInfoFromP2pAddr(id2)
	if len(order) != 3 || order[0] != p2.ID || order[1] != p1.ID || order[2] != own {
		t.Fatalf("order %v", order)
	}
	if groups[p2.ID][0] != bob.me || groups[p1.ID][0] != carol.me || groups[own][0] != dave.me {
		t.Fatalf("groups %v", groups)
	}
	if len(addrs) != 2 || len(addrs[0].Addrs) == 0 {
		t.Fatalf("addresses to dial %v", addrs)
	}
}
