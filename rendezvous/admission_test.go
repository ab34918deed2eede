package rendezvous

import (
	"context"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// TestStrangersStayOutOfTheFederation: a host that no operator named
// cannot join the relays' gossip mesh and read revocations, store a record
// in a relay's DHT or read one from it, or run a revocation sync, though
// it speaks every protocol; an admitted relay does all of these.
func TestStrangersStayOutOfTheFederation(t *testing.T) {
	cfg := DefaultConfig()
	keys := federation(&cfg, 2)
	r1 := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	cfg.Peers = []string{r1.h.Addrs()[0].String() + "/p2p/" + r1.h.ID().String()}
	r2 := startRelayWithKey(t, keys[1], nil, WithConfig(cfg))
	c := newCast(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The stranger: a host of its own, with the relays' protocols.
	sk, _ := identity.GenerateKey()
	stranger := loopbackHost(t, sk)
	ps, err := pubsub.NewGossipSub(ctx, stranger, gossipOptions(func(peer.ID) bool { return true })...)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(protocols.RevocationTopic)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.Connect(ctx, peer.AddrInfo{ID: r1.h.ID(), Addrs: r1.h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "relays connected", func() bool { return len(r2.h.Network().ConnsToPeer(r1.h.ID())) > 0 })
	time.Sleep(time.Second) // the mesh forms

	// A revocation at r1: the admitted relay hears it, the stranger not.
	att, _ := identity.NewVerifier().Attestation(c.att[c.carol.id], time.Now())
	rev, _ := identity.Revoke(c.carol.key, att, time.Now())
	c.carol.meet(r1)
	if _, err := client.Revoke(ctx, c.carol.h, r1.h.ID(), [][]byte{rev}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the admitted relay hears the revocation", func() bool { return r2.store.revoked.Revoked(att.ID) })
	got := make(chan struct{}, 1)
	go func() {
		if _, err := sub.Next(ctx); err == nil {
			got <- struct{}{}
		}
	}()
	select {
	case <-got:
		t.Fatal("a stranger read a revocation off the relays' mesh")
	case <-time.After(1500 * time.Millisecond):
	}

	// The DHT: the stranger can neither store nor read.
	kad, err := dht.New(stranger, dht.Mode(dht.ModeClient), dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Validator(record.NamespacedValidator{ProfileNamespace: ProfileValidator{Verifier: identity.NewVerifier(), Clock: time.Now}}),
		dht.BootstrapPeers(peer.AddrInfo{ID: r1.h.ID(), Addrs: r1.h.Addrs()}))
	if err != nil {
		t.Fatal(err)
	}
	defer kad.Close()
	c.alice.login(r1) // her profile goes into the relays' DHT
	waitFor(t, "r1 put Alice's profile", func() bool {
		r1.routing.mu.Lock()
		defer r1.routing.mu.Unlock()
		_, ok := r1.routing.published[c.alice.id]
		return ok
	})
	waitFor(t, "Alice's profile found by the admitted relay", func() bool {
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		defer lcancel()
		return r2.routing.lookup(lctx, c.alice.id) != nil
	})
	sctx, scancel := context.WithTimeout(ctx, 3*time.Second)
	defer scancel()
	if v, err := kad.GetValue(sctx, ProfileKey(c.alice.id)); err == nil {
		t.Fatalf("a stranger read Alice's profile from the DHT: %d bytes", len(v))
	}
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	defer pcancel()
	kad.PutValue(pctx, ProfileKey(c.mallory.id), c.mallory.profile)
	if r1.routing.lookup(ctx, c.mallory.id) != nil || r2.routing.lookup(ctx, c.mallory.id) != nil {
		t.Fatal("a stranger stored a record in the relays' DHT")
	}

	// A revocation sync: refused.
	stranger.Peerstore().AddAddrs(r1.h.ID(), r1.h.Addrs(), time.Hour)
	s, err := stranger.NewStream(ctx, r1.h.ID(), protocols.RevSyncProtocol)
	if err == nil {
		protocols.WriteMsg(s, (&reconciler{set: newRevocationSet()}).first())
		var reply pb.RevSyncStep
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := protocols.NewReader(s, protocols.MaxRevSyncMessage).ReadMsg(&reply); err == nil {
			t.Fatalf("a stranger's revocation sync was answered: %v", &reply)
		}
		s.Reset()
	}
}

// TestDHTPutRate: even an admitted relay stores in another's DHT only as
// fast as dht.put_rate lets it.
func TestDHTPutRate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DHT.PutRate = Rate{PerSecond: 0.001, Burst: 1}
	keys := federation(&cfg, 2) // keys[1] is the other relay, here a bare DHT host
	r := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	other := loopbackHost(t, keys[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kad, err := dht.New(other, dht.Mode(dht.ModeClient), dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Validator(record.NamespacedValidator{ProfileNamespace: ProfileValidator{Verifier: identity.NewVerifier(), Clock: time.Now}}),
		dht.BootstrapPeers(peer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()}))
	if err != nil {
		t.Fatal(err)
	}
	defer kad.Close()
	waitFor(t, "the DHT joined", func() bool { return kad.RoutingTable().Size() > 0 })
	users := []*tuser{newTUser(t, "A"), newTUser(t, "B"), newTUser(t, "C")}
	for _, u := range users {
		pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
		kad.PutValue(pctx, ProfileKey(u.id), u.profile)
		pcancel()
	}
	stored := 0
	for _, u := range users {
		if r.routing.lookup(ctx, u.id) != nil {
			stored++
		}
	}
	if stored != 1 {
		t.Fatalf("%d of 3 puts stored with a burst of 1", stored)
	}
}
