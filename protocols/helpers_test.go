package protocols

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type user struct {
	name string
	key  crypto.PrivKey
	id   peer.ID
	enc  *identity.EncKey  // what is sealed to the user is sealed to this
	keys *identity.Keyring // holds enc
}

func newUser(tb testing.TB, name string) user {
	tb.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	enc, err := identity.GenerateEncKey(t0)
	if err != nil {
		tb.Fatal(err)
	}
	keys := identity.NewKeyring()
	keys.Add(enc)
	return user{name, k, id, enc, keys}
}

func befriend(tb testing.TB, a, b user) []byte {
	tb.Helper()
	offer, err := identity.MakeOffer(a.key, b.id, t0, 0)
	if err != nil {
		tb.Fatal(err)
	}
	att, err := identity.NewVerifier().Countersign(b.key, offer, t0)
	if err != nil {
		tb.Fatal(err)
	}
	return att.Raw
}

// world is the patent's cast: Alice shares Carol, Dave, Erin and Frank with
// Bob; Mallory is nobody's friend.
type world struct {
	alice, bob, carol, dave, erin, frank, mallory user
	att                                           map[[2]peer.ID][]byte
}

func newWorld(tb testing.TB) *world {
	w := &world{
		alice: newUser(tb, "Alice"), bob: newUser(tb, "Bob"), carol: newUser(tb, "Carol"),
		dave: newUser(tb, "Dave"), erin: newUser(tb, "Erin"), frank: newUser(tb, "Frank"),
		mallory: newUser(tb, "Mallory"), att: map[[2]peer.ID][]byte{},
	}
	for _, f := range []user{w.bob, w.carol, w.dave, w.erin, w.frank} {
		w.att[[2]peer.ID{w.alice.id, f.id}] = befriend(tb, w.alice, f)
	}
	return w
}

func (w *world) spec(targets []user, items []user) ShareSpec {
	s := ShareSpec{SharerName: "Alice", CreatedAt: t0}
	for _, t := range targets {
		s.Targets = append(s.Targets, ShareTarget{Peer: t.id, Attestation: w.att[[2]peer.ID{w.alice.id, t.id}], Key: t.enc.Public()})
	}
	for _, it := range items {
		s.Items = append(s.Items, ShareItem{Peer: it.id, Name: it.name, Group: "work", Attestation: w.att[[2]peer.ID{w.alice.id, it.id}]})
	}
	return s
}
