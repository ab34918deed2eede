package rendezvous

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

func TestProfileValidator(t *testing.T) {
	alice, bob := newTUser(t, "Alice"), newTUser(t, "Bob")
	v := ProfileValidator{Verifier: identity.NewVerifier(), Clock: time.Now}
	newer, err := identity.NewProfile(alice.key, identity.ProfileInfo{Name: "Alice", Seq: 7}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), alice.profile...)
	tampered[len(tampered)-1] ^= 1
	future, err := identity.NewProfile(alice.key, identity.ProfileInfo{Name: "Alice", Seq: 9}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		key   string
		value []byte
		ok    bool
	}{
		{"own profile", ProfileKey(alice.id), alice.profile, true},
		{"newer own profile", ProfileKey(alice.id), newer, true},
		{"someone else's profile under alice's key", ProfileKey(alice.id), bob.profile, false},
		{"tampered signature", ProfileKey(alice.id), tampered, false},
		{"garbage", ProfileKey(alice.id), []byte("not a profile"), false},
		{"empty", ProfileKey(alice.id), nil, false},
		{"issued in the future", ProfileKey(alice.id), future, false},
		{"other namespace", "/pk/" + string(alice.id), alice.profile, false},
		{"key is not a peer id", "/" + ProfileNamespace + "/nobody", alice.profile, false},
		{"no namespace", string(alice.id), alice.profile, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := v.Validate(c.key, c.value); (err == nil) != c.ok {
				t.Fatalf("Validate = %v, want ok %v", err, c.ok)
			}
		})
	}
	sel := []struct {
		name   string
		values [][]byte
		want   int
		ok     bool
	}{
		{"newest wins", [][]byte{alice.profile, newer}, 1, true},
		{"first of newest", [][]byte{newer, alice.profile, newer}, 0, true},
		{"invalid ones are skipped", [][]byte{tampered, bob.profile, alice.profile}, 2, true},
		{"none valid", [][]byte{tampered, bob.profile}, 0, false},
	}
	for _, c := range sel {
		t.Run("select "+c.name, func(t *testing.T) {
			got, err := v.Select(ProfileKey(alice.id), c.values)
			if (err == nil) != c.ok || (c.ok && got != c.want) {
				t.Fatalf("Select = %d, %v; want %d, ok %v", got, err, c.want, c.ok)
			}
		})
	}
}

// TestRelaysFindEachOtherAndProfiles starts four relays that each know
// only the first: through the DHT they find and connect to one another,
// and a profile published where its user logs in is found at any relay,
// for an asker who may know the user, and for nobody else.
func TestRelaysFindEachOtherAndProfiles(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DHT.FindInterval = Duration(time.Second)
	keys := federation(&cfg, 4) // the four admit one another
	relays := []*testRelay{startRelayWithKey(t, keys[0], nil, WithConfig(cfg))}
	first := fmt.Sprintf("%s/p2p/%s", relays[0].h.Addrs()[0], relays[0].h.ID())
	for _, k := range keys[1:] {
		c := cfg
		c.Peers = []string{first}
		relays = append(relays, startRelayWithKey(t, k, nil, WithConfig(c)))
	}
	waitLong(t, "every relay connected to every other", func() bool {
		for _, a := range relays {
			for _, b := range relays {
				if a != b && a.h.Network().Connectedness(b.h.ID()) != network.Connected {
					return false
				}
			}
		}
		return true
	})

	alice, bob, mallory := newTUser(t, "Alice"), newTUser(t, "Bob"), newTUser(t, "Mallory")
	att := befriend(t, alice, bob)
	alice.login(relays[1])
	bob.meet(relays[3])
	mallory.meet(relays[3])
	ask := func(u *tuser, proof []byte) *pb.PresenceEntry {
		t.Helper()
		resp, err := client.Presence(context.Background(), u.h, relays[3].h.ID(), &pb.PresenceQuery{
			WantProfiles: true, Asks: []*pb.PresenceAsk{{Peer: []byte(alice.id), Attestation: proof}},
		})
		if err != nil {
			t.Fatalf("presence: %v", err)
		}
		return resp.Entries[0]
	}
	var e *pb.PresenceEntry
	waitLong(t, "Alice's profile found at another relay", func() bool {
		e = ask(bob, att)
		return len(e.Profile) > 0
	})
	prof, err := identity.NewVerifier().Profile(e.Profile, time.Now())
	if err != nil || prof.Owner != alice.id {
		t.Fatalf("the profile found is not Alice's: %v", err)
	}
	if e.Online {
		t.Fatal("relay 3 says Alice is online: she logged in at relay 1")
	}
	if e := ask(mallory, nil); len(e.Profile) > 0 || e.Refused == pb.Reason_REASON_UNSPECIFIED {
		t.Fatalf("Mallory, who may not know Alice, got profile %d bytes, refused %v", len(e.Profile), e.Refused)
	}
	// A relay that never saw Alice log in has her record in its DHT
	// store only if it is among the closest; none of them stored it as a
	// profile of its own.
	for _, r := range relays {
		if r != relays[1] && r.store.profile(alice.id) != nil {
			t.Fatalf("relay %s stored Alice's profile as one of its users'", r.h.ID())
		}
	}
}

// TestDeferredProfilePut: a user logs in at a relay that has no DHT peers
// yet, so the put of their profile waits (no attempt that cannot succeed);
// when another relay joins, the profile is put without a new login, and
// the other relay finds it.
func TestDeferredProfilePut(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DHT.FindInterval = Duration(time.Second)
	keys := federation(&cfg, 2)
	a := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	alice, bob := newTUser(t, "Alice"), newTUser(t, "Bob")
	att := befriend(t, alice, bob)
	alice.login(a)
	waitLong(t, "the put of Alice's profile deferred (no peers)", func() bool {
		return testutil.ToFloat64(a.prom().dht.WithLabelValues("put_deferred")) > 0
	})
	if n := testutil.ToFloat64(a.prom().dht.WithLabelValues("put")) + testutil.ToFloat64(a.prom().dht.WithLabelValues("put_failed")); n != 0 {
		t.Fatalf("%v puts tried with no peer", n)
	}

	c := cfg
	c.Peers = []string{fmt.Sprintf("%s/p2p/%s", a.h.Addrs()[0], a.h.ID())}
	b := startRelayWithKey(t, keys[1], nil, WithConfig(c))
	waitLong(t, "Alice's profile put once relay B joined", func() bool {
		return testutil.ToFloat64(a.prom().dht.WithLabelValues("put")) > 0
	})
	bob.meet(b)
	resp, err := client.Presence(context.Background(), bob.h, b.h.ID(), &pb.PresenceQuery{
		WantProfiles: true, Asks: []*pb.PresenceAsk{{Peer: []byte(alice.id), Attestation: att}},
	})
	if err != nil {
		t.Fatalf("presence: %v", err)
	}
	if len(resp.Entries[0].Profile) == 0 {
		t.Fatal("relay B does not find the profile Alice published at relay A")
	}
}

// TestLookupMissIsForgotten: a relay that looked a user up before their
// profile reached the DHT finds it once missTTL has passed, and not
// before (a miss is reused, so that lookups of unknown peers do not each
// walk the DHT).
func TestLookupMissIsForgotten(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DHT.FindInterval = Duration(time.Second)
	keys := federation(&cfg, 2)
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	a := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	c := cfg
	c.Peers = []string{fmt.Sprintf("%s/p2p/%s", a.h.Addrs()[0], a.h.ID())}
	b := startRelayWithKey(t, keys[1], nil, WithConfig(c), WithClock(clock))
	waitLong(t, "the relays' DHTs joined", func() bool {
		return a.routing.dht.RoutingTable().Size() > 0 && b.routing.dht.RoutingTable().Size() > 0
	})
	alice := newTUser(t, "Alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if p := b.routing.lookup(ctx, alice.id); p != nil {
		t.Fatal("found a profile nobody published")
	}
	alice.login(a)
	waitLong(t, "Alice's profile put", func() bool {
		return testutil.ToFloat64(a.prom().dht.WithLabelValues("put")) > 0
	})
	if p := b.routing.lookup(ctx, alice.id); p != nil {
		t.Fatal("the miss was not reused within missTTL")
	}
	skew.Store(int64(missTTL + time.Second))
	if p := b.routing.lookup(ctx, alice.id); p == nil || p.Owner != alice.id {
		t.Fatal("after missTTL the relay still does not find Alice's profile")
	}
}

// waitLong waits up to 30 s: the DHT's work takes rounds of identify,
// lookups and dials.
func waitLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 30*time.Second, 50*time.Millisecond, what, cond)
}

// TestUnsyncedDatastore: the DHT's view of the pebble store writes and
// deletes what it is given, one by one and in batches.
func TestUnsyncedDatastore(t *testing.T) {
	p := tempPebble(t)
	d := unsynced(p)
	if _, ok := d.(*unsyncedDS); !ok {
		t.Fatal("the pebble store was not given unsynced writes")
	}
	ctx := context.Background()
	k1, k2 := ds.NewKey("/a"), ds.NewKey("/b")
	if err := d.Put(ctx, k1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	b, err := d.Batch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Put(ctx, k2, []byte("two"))
	b.Delete(ctx, k1)
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := p.Get(ctx, k2); err != nil || string(v) != "two" {
		t.Fatalf("batched put: %q %v", v, err)
	}
	if _, err := p.Get(ctx, k1); !errors.Is(err, ds.ErrNotFound) {
		t.Fatalf("batched delete: %v", err)
	}
	if err := d.Delete(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Has(ctx, k2); ok {
		t.Fatal("delete left the key")
	}
	if _, ok := unsynced(dssync.MutexWrap(ds.NewMapDatastore())).(*unsyncedDS); ok {
		t.Fatal("a datastore without unsynced batches was wrapped")
	}
}

// TestMovedAnswersFromTheDHT: a share for a user who never logged in at
// this relay, whose profile in the DHT names other home relays, is
// answered MOVED with that profile and not stored (it would wait for a
// login that never comes). A sender that does not know where a friend
// lives sends to its own relay: a simulation with two home relays per
// user found such shares waiting forever.
func TestMovedAnswersFromTheDHT(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DHT.FindInterval = Duration(time.Second)
	keys := federation(&cfg, 2)
	a := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	c := cfg
	c.Peers = []string{fmt.Sprintf("%s/p2p/%s", a.h.Addrs()[0], a.h.ID())}
	b := startRelayWithKey(t, keys[1], nil, WithConfig(c))
	waitLong(t, "the relays' DHTs joined", func() bool {
		return a.routing.dht.RoutingTable().Size() > 0 && b.routing.dht.RoutingTable().Size() > 0
	})
	cast := newCast(t)
	home, err := identity.NewProfile(cast.bob.key, identity.ProfileInfo{Name: "Bob", Seq: 2,
		Relays: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("%s/p2p/%s", a.h.Addrs()[0], a.h.ID()))}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cast.bob.profile = home
	cast.bob.login(a)
	waitLong(t, "Bob's profile put", func() bool { return testutil.ToFloat64(a.prom().dht.WithLabelValues("put")) > 0 })

	cast.alice.meet(b)
	resp, _ := cast.alice.share(b, cast.buildShare(t, []*tuser{cast.bob}, []*tuser{cast.carol}).Raw)
	if len(resp.GetFailures()) != 1 || resp.Failures[0].Reason != pb.Reason_MOVED || !bytes.Equal(resp.Failures[0].Profile, home) {
		t.Fatalf("a share to Bob at a relay he never used: %v", resp)
	}
	if n := b.Waiting(cast.bob.id); n != 0 {
		t.Fatalf("%d items stored for Bob at a relay he never used", n)
	}
	// A user nobody knows anywhere is stored for as before: they may log
	// in here for the first time.
	resp, _ = cast.alice.share(b, cast.buildShare(t, []*tuser{cast.dave}, []*tuser{cast.carol}).Raw)
	if len(resp.GetTargets()) != 1 || resp.Targets[0].Delivery != pb.Delivery_STORED {
		t.Fatalf("a share to Dave, unknown everywhere: %v", resp)
	}
}
