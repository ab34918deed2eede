package rendezvous

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// A test world: one or more relays and users, each a real libp2p host on
// loopback TCP, with real keys and signatures.

func loopbackHost(t testing.TB, key crypto.PrivKey) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type testRelay struct {
	*Relay
	h  host.Host
	ds ds.Batching
}

func startRelay(t testing.TB, d ds.Batching, opts ...Option) *testRelay {
	t.Helper()
	key, _ := identity.GenerateKey()
	return startRelayWithKey(t, key, d, opts...)
}

func startRelayWithKey(t testing.TB, key crypto.PrivKey, d ds.Batching, opts ...Option) *testRelay {
	t.Helper()
	if d == nil {
		d = dssync.MutexWrap(ds.NewMapDatastore())
	}
	h := loopbackHost(t, key)
	opts = append([]Option{WithLogger(testLogger(t))}, opts...)
	r, err := New(context.Background(), h, d, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &testRelay{Relay: r, h: h, ds: d}
}

type tuser struct {
	t       testing.TB
	name    string
	key     crypto.PrivKey
	id      peer.ID
	h       host.Host
	profile []byte
	enc     *identity.EncKey // shares to the user are sealed to it
}

func newTUser(t testing.TB, name string) *tuser {
	t.Helper()
	key, _ := identity.GenerateKey()
	id, _ := peer.IDFromPrivateKey(key)
	enc, err := identity.GenerateEncKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	prof, err := identity.NewProfile(key, identity.ProfileInfo{Name: name, Seq: 1, EncKey: enc.Public()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &tuser{t: t, name: name, key: key, id: id, h: loopbackHost(t, key), profile: prof, enc: enc}
}

// meet tells u's host where the relay is.
func (u *tuser) meet(r *testRelay) {
	u.h.Peerstore().AddAddrs(r.h.ID(), r.h.Addrs(), peerstore.PermanentAddrTTL)
}

func (u *tuser) login(r *testRelay) *client.Inbox {
	u.t.Helper()
	u.meet(r)
	in, err := client.Login(context.Background(), u.h, r.h.ID(), u.profile, nil, 0)
	if err != nil {
		u.t.Fatalf("%s login: %v", u.name, err)
	}
	u.t.Cleanup(func() { in.Close() })
	return in
}

func (u *tuser) share(r *testRelay, raw []byte) (*pb.ShareResponse, error) {
	u.meet(r)
	return client.Share(context.Background(), u.h, r.h.ID(), raw)
}

// befriend returns the attestation between a (requester) and b.
func befriend(t testing.TB, a, b *tuser) []byte {
	t.Helper()
	offer, err := identity.MakeOffer(a.key, b.id, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	att, err := identity.NewVerifier().Countersign(b.key, offer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return att.Raw
}

// cast is the patent's story: Alice is friends with Bob, Carol, Dave, Erin
// and Frank; Mallory is nobody's friend.
type cast struct {
	alice, bob, carol, dave, erin, frank, mallory *tuser
	att                                           map[peer.ID][]byte // Alice's friendship with each
}

func newCast(t testing.TB) *cast {
	c := &cast{
		alice: newTUser(t, "Alice"), bob: newTUser(t, "Bob"), carol: newTUser(t, "Carol"),
		dave: newTUser(t, "Dave"), erin: newTUser(t, "Erin"), frank: newTUser(t, "Frank"),
		mallory: newTUser(t, "Mallory"), att: map[peer.ID][]byte{},
	}
	for _, f := range []*tuser{c.bob, c.carol, c.dave, c.erin, c.frank} {
		c.att[f.id] = befriend(t, c.alice, f)
	}
	return c
}

// shareSpec is Alice sharing items with targets.
func (c *cast) shareSpec(targets []*tuser, items []*tuser) protocols.ShareSpec {
	s := protocols.ShareSpec{SharerName: "Alice", CreatedAt: time.Now()}
	for _, t := range targets {
		s.Targets = append(s.Targets, protocols.ShareTarget{Peer: t.id, Attestation: c.att[t.id], Key: t.enc.Public()})
	}
	for _, it := range items {
		s.Items = append(s.Items, protocols.ShareItem{Peer: it.id, Name: it.name, Group: "work", Attestation: c.att[it.id]})
	}
	return s
}

func (c *cast) buildShare(t testing.TB, targets, items []*tuser) *protocols.UnverifiedShare {
	t.Helper()
	s, err := protocols.BuildShare(c.alice.key, c.shareSpec(targets, items))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// next reads one item with a timeout.
func next(t testing.TB, in *client.Inbox) *pb.InboxItem {
	t.Helper()
	type res struct {
		it  *pb.InboxItem
		err error
	}
	ch := make(chan res, 1)
	go func() {
		it, err := in.Next()
		ch <- res{it, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("inbox: %v", r.err)
		}
		return r.it
	case <-time.After(10 * time.Second):
		t.Fatal("no inbox item within 10s")
	}
	return nil
}

// ackAll acknowledges whatever arrives in `in`, as a node does once it
// has stored it, and passes each item to got unless got is nil.
func ackAll(in *client.Inbox, got chan<- *pb.InboxItem) {
	go func() {
		for {
			it, err := in.Next()
			if err != nil {
				return
			}
			in.Ack(it.Seq)
			if got != nil {
				got <- it
			}
		}
	}()
}

// quiet asserts nothing arrives within d.
func quiet(t testing.TB, in *client.Inbox, d time.Duration) {
	t.Helper()
	ch := make(chan *pb.InboxItem, 1)
	go func() {
		it, err := in.Next()
		if err == nil {
			ch <- it
		}
	}()
	select {
	case it := <-ch:
		t.Fatalf("unexpected inbox item: kind %v id %x seq %d", it.Kind, it.Id, it.Seq)
	case <-time.After(d):
	}
}

func delivery(resp *pb.ShareResponse, p peer.ID) pb.Delivery {
	for _, tr := range resp.GetTargets() {
		if peer.ID(tr.Peer) == p {
			return tr.Delivery
		}
	}
	return pb.Delivery_DELIVERY_UNSPECIFIED
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, 5*time.Millisecond, what, cond)
}

// waitWithin polls cond every poll until it holds, for at most d.
func waitWithin(t testing.TB, d, poll time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(poll)
	}
}

// testLogger sends warnings and errors to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// prom returns the relay's Prometheus metrics, for tests that read them.
func (r *Relay) prom() *metrics { return r.trace.(*metrics) }

// federation makes n relay keys and has cfg admit all of them (each relay
// admits the others, as their operators would name one another).
func federation(cfg *Config, n int) []crypto.PrivKey {
	keys := make([]crypto.PrivKey, n)
	for i := range keys {
		keys[i], _ = identity.GenerateKey()
		id, _ := peer.IDFromPrivateKey(keys[i])
		cfg.Admit = append(cfg.Admit, id.String())
	}
	return keys
}
