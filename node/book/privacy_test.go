package book

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestWordsTravelSealed follows the patent's story and checks every
// message a relay would carry for the words and names in it: none is in
// clear, and each recipient reads them all.
func TestWordsTravelSealed(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice-xq1"), newPerson(t, "Bob-xq2"), newPerson(t, "Carol-xq3")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	muts, err := alice.CreateGroup("team-xq4")
	if err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	if muts, err = alice.AddToGroup("team-xq4", []peer.ID{carol.me}); err != nil {
		t.Fatal(err)
	}
	alice.apply(t, muts)
	secret := func(t *testing.T, what string, raw []byte) {
		t.Helper()
		for _, w := range []string{"xq1", "xq2", "xq3", "xq4", "xq5", "xq6"} {
			if bytes.Contains(raw, []byte(w)) {
				t.Fatalf("%s carries %q in clear", what, w)
			}
		}
	}

	s, failed, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Groups: []string{"team-xq4"}, Note: "note-xq5"}, t0)
	if err != nil || len(failed) > 0 {
		t.Fatalf("build: %v %v", err, failed)
	}
	secret(t, "the share", s.Raw)
	secret(t, "Alice's profile", alice.Profile())
	rs, muts, err := bob.ReceiveShare(s.Raw, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	if rs.FromName != "Alice-xq1" || rs.Note != "note-xq5" || rs.Items[0].Name != "Carol-xq3" || rs.Items[0].Group != "team-xq4" || rs.Unopened != "" {
		t.Fatalf("Bob reads %+v", rs)
	}
	if again := bob.reload(t).Share(rs.ID); again.Items[0].Name != "Carol-xq3" || again.Note != "note-xq5" {
		t.Fatalf("after a restart Bob reads %+v", again)
	}

	results, muts, err := bob.Pick(rs, nil, true, "hello-xq6", t0)
	if err != nil || results[0].Request == nil {
		t.Fatalf("pick: %v %+v", err, results)
	}
	bob.apply(t, muts)
	var wire pb.AddRequest
	proto.Unmarshal(results[0].Request.Wire, &wire)
	secret(t, "Bob's request", results[0].Request.Wire)
	in, muts, err := carol.ReceiveRequest(&wire, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	if in.Name != "Bob-xq2" || in.Message != "hello-xq6" || in.IntroducerName != "Alice-xq1" || len(in.PeerProfileKey) == 0 {
		t.Fatalf("Carol reads %+v", in)
	}

	f, ans, muts, err := carol.Accept(in.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	raw, _ := proto.Marshal(ans)
	secret(t, "Carol's answer", raw)
	if f.Name != "Bob-xq2" || len(f.ProfileKey) == 0 {
		t.Fatalf("Carol's friend %+v", f)
	}
	bf, muts, err := bob.ReceiveAnswer(ans, t0)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	if bf.Name != "Carol-xq3" || !bytes.Equal(bf.ProfileKey, carol.profileKey[:]) {
		t.Fatalf("Bob's friend %+v", bf)
	}

	// Carol renames herself: Bob, who holds her profile key, reads the
	// new name from her newer profile; a relay that carries it does not.
	muts, err = carol.Rename("Caroline-xq3")
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	carol.resign(t, t0)
	secret(t, "Carol's new profile", carol.Profile())
	bob.apply(t, bob.LearnProfile(carol.Profile(), t0))
	if got := bob.Friend(carol.me).Name; got != "Caroline-xq3" {
		t.Fatalf("after the rename Bob calls her %q", got)
	}
}

// TestAnswerWithAnotherKey: the answer is not signed as a whole, so a
// relay could put a profile key of its own in it. Bob takes a key only if
// it opens Carol's signed profile.
func TestAnswerWithAnotherKey(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	rs := share(t, alice, bob, []*person{carol})
	results, muts, _ := bob.Pick(rs, nil, true, "", t0)
	bob.apply(t, muts)
	var wire pb.AddRequest
	proto.Unmarshal(results[0].Request.Wire, &wire)
	in, muts, _ := carol.ReceiveRequest(&wire, t0)
	carol.apply(t, muts)
	_, ans, _, err := carol.Accept(in.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	bobKey, _ := bob.encKeyOf(bob.me, bob.Profile(), t0)
	forged, err := protocols.SealAnswer(bobKey, in.ID, identity.NewProfileKey())
	if err != nil {
		t.Fatal(err)
	}
	ans.Sealed = forged
	f, _, err := bob.ReceiveAnswer(ans, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.ProfileKey) != 0 || f.Name != "Carol" {
		t.Fatalf("Bob took a key that is not Carol's: %+v", f)
	}
}

// TestInviteRequestsAreSealed: a request made with an invite is sealed
// with the link's secret; the inviter opens it, nobody else.
func TestInviteRequestsAreSealed(t *testing.T) {
	carol, mallory := newPerson(t, "Carol-xq3"), newPerson(t, "Mallory-xq2")
	link, muts, err := carol.Invite(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	carol.apply(t, muts)
	raw, _, _ := identity.ParseInviteLink(link)
	if bytes.Contains(raw, []byte("xq3")) {
		t.Fatal("the invite record names Carol in clear")
	}
	r, in, muts, err := mallory.AddByInvite(link, "hi-xq6", t0)
	if err != nil {
		t.Fatal(err)
	}
	mallory.apply(t, muts)
	if r.Name != "Carol-xq3" || in.Inviter != carol.me {
		t.Fatalf("Mallory's request %+v", r)
	}
	if bytes.Contains(r.Wire, []byte("xq6")) || bytes.Contains(r.Wire, []byte("xq2")) {
		t.Fatal("the request carries words in clear")
	}
	var wire pb.AddRequest
	proto.Unmarshal(r.Wire, &wire)
	got, _, err := carol.reload(t).ReceiveRequest(&wire, t0) // the secret survives a restart
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "Mallory-xq2" || got.Message != "hi-xq6" || got.Unopened != "" {
		t.Fatalf("Carol reads %+v", got)
	}
	// An old link (no secret) is refused in words, not sent in clear.
	if _, _, _, err := mallory.AddByInvite(identity.InviteLink(raw, nil), "", t0); err == nil || !strings.Contains(err.Error(), "older Kith") {
		t.Fatalf("an invite without its secret: %v", err)
	}
}

// TestKeysRotateAndExpire: the encryption key rotates every
// EncKeyRotation; what was sealed to the old key still opens until the
// key is EncKeyRetention past its retirement, then the key is gone and
// the share says why its words do not open.
func TestKeysRotateAndExpire(t *testing.T) {
	alice, bob, carol := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	at := t0.Add(EncKeyRotation)
	old, _, _ := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me}, Friends: []peer.ID{carol.me}}, at.Add(-time.Hour))
	oldKey := bob.keys.Current().Public().ID()
	seq := bob.Settings.Seq

	if muts, resign, err := bob.EnsureKeys(t0.Add(time.Hour)); err != nil || resign || len(muts) != 0 {
		t.Fatalf("an early rotation: %v %v %d", err, resign, len(muts))
	}
	muts, resign, err := bob.EnsureKeys(at)
	if err != nil || !resign || bob.Settings.Seq != seq+1 {
		t.Fatalf("rotation: %v %v seq %d", err, resign, bob.Settings.Seq)
	}
	bob.apply(t, muts)
	bob.resign(t, at)
	if bob.keys.Current().Public().ID() == oldKey {
		t.Fatal("the key did not change")
	}
	bob.reload(t) // the retired key is stored as retired
	rs, _, err := bob.ReceiveShare(old.Raw, nil, at)
	if err != nil || rs.Unopened != "" || rs.Items[0].Name != "Carol" {
		t.Fatalf("a share sealed to the retired key: %v %+v", err, rs)
	}

	gone := at.Add(EncKeyRetention + time.Hour)
	muts, _, err = bob.EnsureKeys(gone)
	if err != nil {
		t.Fatal(err)
	}
	bob.apply(t, muts)
	again := bob.reload(t)
	if len(again.keys.Keys()) != 2 { // the current one, and the one made at gone
		t.Fatalf("%d keys after the retention", len(again.keys.Keys()))
	}
	if _, err := again.keys.Open(protocols.PurposeShare, nil, old.Targets[0].Sealed); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("the deleted key still opens: %v", err)
	}
}

// TestKeysAtRest: the stored keys are sealed under the identity key: the
// datastore holds no seed in clear, and another identity cannot open them.
func TestKeysAtRest(t *testing.T) {
	bob := newPerson(t, "Bob")
	seed := bob.keys.Current().Seed()
	res, _ := bob.d.Query(context.Background(), query.Query{Prefix: "/kith/node/keys"})
	entries := 0
	for r := range res.Next() {
		entries++
		if bytes.Contains(r.Value, seed) || bytes.Contains(r.Value, bob.profileKey[:]) {
			t.Fatalf("%s holds a key in clear", r.Key)
		}
	}
	if entries != 2 {
		t.Fatalf("%d key entries, want the profile key and one encryption key", entries)
	}
	other, _ := identity.GenerateKey()
	thief, _ := NewBook(other, "Thief")
	res, _ = bob.d.Query(context.Background(), query.Query{Prefix: "/kith/node/keys"})
	for r := range res.Next() {
		if err := thief.Load(r.Key, r.Value); err == nil {
			t.Fatalf("%s opened with another identity key", r.Key)
		}
	}
	if again := bob.reload(t); again.keys.Current() == nil || !bytes.Equal(again.keys.Current().Seed(), seed) || *again.profileKey != *bob.profileKey {
		t.Fatal("the keys did not come back after a restart")
	}
}

// TestPeerWithoutAnEncryptionKey: a friend whose profile publishes no
// encryption key (an older node) cannot be sent words: the share says so
// for them, by name, and goes to the others in partial mode.
func TestPeerWithoutAnEncryptionKey(t *testing.T) {
	alice, bob, carol, dave := newPerson(t, "Alice"), newPerson(t, "Bob"), newPerson(t, "Carol"), newPerson(t, "Dave")
	befriend(t, alice, bob)
	befriend(t, alice, carol)
	befriend(t, alice, dave)
	oldProfile, _ := identity.NewProfile(dave.key, identity.ProfileInfo{Name: "Dave"}, t0)
	alice.Friend(dave.me).Profile = oldProfile

	s, failed, err := alice.BuildShare(ShareRequest{To: []peer.ID{bob.me, dave.me}, Friends: []peer.ID{carol.me}}, t0)
	if err != nil || s != nil || len(failed) != 1 || failed[0].Peer != dave.me || !strings.Contains(failed[0].Detail, "no profile of Dave with an encryption key") {
		t.Fatalf("all or nothing: %v %v %+v", err, s, failed)
	}
	s, failed, err = alice.BuildShare(ShareRequest{To: []peer.ID{bob.me, dave.me}, Friends: []peer.ID{carol.me}, Partial: true}, t0)
	if err != nil || s == nil || len(s.Targets) != 1 || len(failed) != 1 {
		t.Fatalf("partial: %v %+v", err, failed)
	}
}

// TestOlderDatastore: a book written by a node from before sealing (no
// keys, a friend's profile without an encryption key, an invite without
// a secret, a share with its names in clear) loads, makes its keys, shows
// the old share as it was, hands out a new invite link, and refuses in
// words to send words to the friend whose node has not caught up.
func TestOlderDatastore(t *testing.T) {
	alice, carol, dave := newPerson(t, "Alice"), newPerson(t, "Carol"), newPerson(t, "Dave")
	befriend(t, alice, carol)
	key, _ := identity.GenerateKey()
	me, _ := peer.IDFromPrivateKey(key)
	oldProfile, _ := identity.NewProfile(alice.key, identity.ProfileInfo{Name: "Alice"}, t0)
	att := alice.Friend(carol.me).Attestation
	offer, _ := identity.MakeOffer(alice.key, me, t0, 0)
	withBob, _ := identity.NewVerifier().Countersign(key, offer, t0)
	daveOffer, _ := identity.MakeOffer(dave.key, me, t0, 0)
	daveBob, _ := identity.NewVerifier().Countersign(key, daveOffer, t0)
	oldShare, err := protocols.BuildShare(alice.key, protocols.ShareSpec{CreatedAt: t0,
		Targets: []protocols.ShareTarget{{Peer: me, Attestation: withBob.Raw}},
		Items:   []protocols.ShareItem{{Peer: carol.me, Attestation: att}}})
	if err != nil {
		t.Fatal(err)
	}
	clearShare := func() []byte { // as an older node made it: names in clear
		var m pb.Share
		proto.Unmarshal(oldShare.Raw, &m)
		var body pb.ShareBody
		proto.Unmarshal(m.Body, &body)
		body.SharerName, body.Items[0].Name = "Alice", "Carol"
		m.Body, _ = proto.Marshal(&body)
		// The older node sealed these very bytes.
		u, _ := protocols.DecodeShare(mustMarshal(&m), protocols.Limits{})
		m.Seal, _ = identity.SealShare(alice.key, u.ID, m.Body, u.Leaves(), t0, t0.Add(protocols.DefaultShareValidity))
		return mustMarshal(&m)
	}()
	oldInvite, _, _ := identity.NewInvite(key, "Bob", nil, t0, time.Hour*24*10)
	records := map[string]any{
		keySettings: Settings{Name: "Bob", Seq: 3},
		prefixFriends + alice.me.String(): Friend{ID: alice.me, Name: "Alice", Attestation: withBob.Raw, AttestationID: mustID(t, withBob.Raw),
			Since: t0, Profile: oldProfile},
		prefixFriends + dave.me.String(): Friend{ID: dave.me, Name: "Dave", Attestation: daveBob.Raw, AttestationID: mustID(t, daveBob.Raw),
			Since: t0, Profile: dave.Profile()},
		prefixInvites + "00":                Invite{Raw: oldInvite, ExpiresAt: t0.Add(10 * 24 * time.Hour)},
		prefixShares + oldShare.ID.String(): ReceivedShare{ID: oldShare.ID, From: alice.me, FromName: "Alice", Raw: clearShare, ReceivedAt: t0},
	}
	bob, _ := NewBook(key, "")
	for k, v := range records {
		raw, _ := json.Marshal(v)
		if err := bob.Load(k, raw); err != nil {
			t.Fatalf("load %s: %v", k, err)
		}
	}
	if _, resign, err := bob.EnsureKeys(t0); err != nil || !resign || bob.Settings.Seq != 4 || bob.keys.Current() == nil || bob.profileKey == nil {
		t.Fatalf("keys for an older book: %v %v seq %d", err, resign, bob.Settings.Seq)
	}
	if s := bob.Share(oldShare.ID); s == nil || s.Items[0].Name != "Carol" || s.FromName != "Alice" {
		t.Fatalf("the older share reads %+v", s)
	}
	link, _, err := bob.Invite(nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, secret, _ := identity.ParseInviteLink(link); len(secret) == 0 {
		t.Fatal("the invite from before (no secret) was handed out again")
	}
	s, failed, err := bob.BuildShare(ShareRequest{To: []peer.ID{alice.me}, Friends: []peer.ID{dave.me}}, t0)
	if err != nil || s != nil || len(failed) != 1 || !strings.Contains(failed[0].Detail, "no profile of Alice with an encryption key") {
		t.Fatalf("a share to a friend without an encryption key: %v %v %+v", err, s, failed)
	}
}

func mustMarshal(m proto.Message) []byte { b, _ := proto.Marshal(m); return b }

func mustID(t *testing.T, raw []byte) identity.AttestationID {
	a, err := identity.NewVerifier().Attestation(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}
