package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/rendezvous"
)

// These tests run real nodes and a real relay on loopback in one process.
// (Test files may compose node and rendezvous; the libraries never import
// each other.)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func loopback(t *testing.T, key crypto.PrivKey) host.Host {
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

type world struct {
	t     *testing.T
	relay *rendezvous.Relay
	rinfo peer.AddrInfo
	nodes map[string]*member
}

type member struct {
	name string
	key  crypto.PrivKey
	d    ds.Batching
	n    *node.Node
	home *peer.AddrInfo // the member's relay, if not the world's
	// refresh is how often the member's node asks its relay for its
	// friends' newer profiles (default 100 ms).
	refresh time.Duration
}

func newWorld(t *testing.T, opts ...rendezvous.Option) *world {
	r, info := startRelay(t, opts...)
	return &world{t: t, relay: r, rinfo: info, nodes: map[string]*member{}}
}

// startRelay starts a relay on loopback with an in-memory datastore; it
// stops with the test.
func startRelay(t *testing.T, opts ...rendezvous.Option) (*rendezvous.Relay, peer.AddrInfo) {
	t.Helper()
	rk, _ := identity.GenerateKey()
	return startRelayWithKey(t, rk, opts...)
}

// startRelayWithKey is startRelay with the relay's key.
func startRelayWithKey(t *testing.T, rk crypto.PrivKey, opts ...rendezvous.Option) (*rendezvous.Relay, peer.AddrInfo) {
	t.Helper()
	rh := loopback(t, rk)
	opts = append([]rendezvous.Option{rendezvous.WithLogger(quietLog)}, opts...)
	r, err := rendezvous.New(context.Background(), rh, dssync.MutexWrap(ds.NewMapDatastore()), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}
}

// up starts (or restarts) a member's node.
func (w *world) up(name string) *member {
	m := w.nodes[name]
	if m == nil {
		k, _ := identity.GenerateKey()
		m = &member{name: name, key: k, d: dssync.MutexWrap(ds.NewMapDatastore())}
		w.nodes[name] = m
	}
	h := loopback(w.t, m.key)
	home := w.rinfo
	if m.home != nil {
		home = *m.home
	}
	refresh := m.refresh
	if refresh == 0 {
		refresh = 100 * time.Millisecond
	}
	n, err := node.New(context.Background(), h, m.d, m.key, node.WithName(name), node.WithRendezvous(home),
		node.WithLogger(quietLog), node.WithRetryInterval(200*time.Millisecond), node.WithProfileRefresh(refresh))
	if err != nil {
		w.t.Fatal(err)
	}
	m.n = n
	w.t.Cleanup(func() { n.Close() })
	waitFor(w.t, name+" logged in", n.LoggedIn)
	return m
}

// down stops a member's node (its datastore stays).
func (w *world) down(name string) {
	m := w.nodes[name]
	m.n.Close()
	m.n.Host().Close()
	waitFor(w.t, name+" offline", func() bool { return !w.relay.Online(m.n.ID()) })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// befriend makes a and b friends through a's invite.
func (w *world) befriend(a, b string) {
	w.t.Helper()
	ctx := context.Background()
	id, err := w.nodes[a].n.IDView()
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.nodes[b].n.AddInvite(ctx, id.Invite, ""); err != nil {
		w.t.Fatalf("%s adds %s: %v", b, a, err)
	}
	var reqID string
	waitFor(w.t, a+" sees "+b+"'s request", func() bool {
		for _, r := range w.nodes[a].n.Requests() {
			if r.Direction == "in" && r.Name == b && r.State == "pending" {
				reqID = r.ID
				return true
			}
		}
		return false
	})
	if _, err := w.nodes[a].n.Accept(ctx, reqID); err != nil {
		w.t.Fatal(err)
	}
	waitFor(w.t, b+" sees "+a+" as a friend", func() bool { return friendNamed(w.nodes[b].n, a) })
}

func friendNamed(n *node.Node, name string) bool {
	for _, f := range n.Friends(context.Background()) {
		if f.Name == name {
			return true
		}
	}
	return false
}

func TestPatentStory(t *testing.T) {
	w := newWorld(t)
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank"} {
		w.up(name)
	}
	for _, f := range []string{"Bob", "Carol", "Dave", "Erin", "Frank"} {
		w.befriend("Alice", f)
	}
	alice := w.nodes["Alice"].n
	if err := alice.CreateGroup("work"); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddToGroup("work", []string{"Carol", "Dave", "Erin"}); err != nil {
		t.Fatal(err)
	}

	// Bob is offline when Alice shares the group and Frank with him.
	w.down("Bob")
	ctx := context.Background()
	res, err := alice.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Groups: []string{"work"}, Friends: []string{"Frank"}})
	if err != nil {
		t.Fatalf("share: %v", err)
	}
	if len(res.Targets) != 1 || res.Targets[0].Status != "stored" {
		t.Fatalf("share result %+v, want stored for offline Bob", res)
	}

	// A share of someone Alice is not friends with is refused, naming them.
	mallory := w.up("Mallory")
	_, err = alice.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Friends: []string{mallory.n.ID().String()}})
	if err == nil {
		t.Fatal("a share of a non-friend was sent")
	}

	// Bob logs in: the share is delivered and verified.
	bob := w.up("Bob").n
	var shareID string
	waitFor(t, "bob's inbox", func() bool {
		s := bob.Shares()
		if len(s) == 1 {
			shareID = s[0].ID
			return len(s[0].Items) == 4
		}
		return false
	})
	// Dave is offline at pick time; Erin will decline.
	w.down("Dave")
	picks, err := bob.Pick(ctx, node.PickArgs{Share: shareID, All: true})
	if err != nil {
		t.Fatal(err)
	}
	how := map[string]string{}
	for _, p := range picks {
		how[p.Name] = p.Sent
	}
	if how["Carol"] != "direct" || how["Erin"] != "direct" || how["Frank"] != "direct" || how["Dave"] != "relay" {
		t.Fatalf("pick sent %v; want direct to online friends and relay for Dave", how)
	}
	// Picking again asks nobody twice.
	again, _ := bob.Pick(ctx, node.PickArgs{Share: shareID, All: true})
	for _, p := range again {
		if p.Sent != "skipped" {
			t.Fatalf("second pick sent %+v", p)
		}
	}

	answer := func(who string, accept bool) {
		n := w.nodes[who].n
		var id, prov string
		waitFor(t, who+"'s request", func() bool {
			for _, r := range n.Requests() {
				if r.Direction == "in" && r.Name == "Bob" {
					id, prov = r.ID, r.Provenance
					return true
				}
			}
			return false
		})
		if want := "Alice, your friend, shared you with Bob (verified)"; prov != want {
			t.Fatalf("%s sees %q, want %q", who, prov, want)
		}
		var err error
		if accept {
			_, err = n.Accept(ctx, id)
		} else {
			err = n.Decline(id)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	answer("Carol", true)
	answer("Frank", true)
	answer("Erin", false)
	w.up("Dave")
	answer("Dave", true)

	waitFor(t, "bob's friends", func() bool {
		return friendNamed(bob, "Carol") && friendNamed(bob, "Dave") && friendNamed(bob, "Frank")
	})
	if friendNamed(bob, "Erin") {
		t.Fatal("Erin declined but is Bob's friend")
	}
	for _, r := range bob.Requests() {
		if r.Name == "Erin" && r.State != "pending" {
			t.Fatalf("Bob learnt Erin's decline: %+v", r)
		}
	}
	for _, f := range bob.Friends(ctx) {
		if f.Name == "Carol" && f.IntroducedByName != "Alice" {
			t.Fatalf("Carol introduced by %q", f.IntroducedByName)
		}
	}
	if !friendNamed(w.nodes["Carol"].n, "Bob") {
		t.Fatal("Carol does not list Bob")
	}
}

// TestHomeRelays: users at two different relays. Every message goes to its
// recipient's home relay (named in their signed profile, or in their
// invite), so offline users get what was sent to them wherever it came from.
func TestHomeRelays(t *testing.T) {
	w := newWorld(t)
	r2, second := startRelay(t)
	home := map[string]peer.AddrInfo{"Alice": w.rinfo, "Carol": w.rinfo, "Bob": second, "Dave": second}
	up := func(name string) *node.Node {
		m := w.nodes[name]
		if m == nil {
			k, _ := identity.GenerateKey()
			m = &member{name: name, key: k, d: dssync.MutexWrap(ds.NewMapDatastore())}
			w.nodes[name] = m
		}
		n, err := node.New(context.Background(), loopback(t, m.key), m.d, m.key, node.WithName(name),
			node.WithRendezvous(home[name]), node.WithLogger(quietLog), node.WithRetryInterval(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		m.n = n
		t.Cleanup(func() { n.Close() })
		waitFor(t, name+" logged in", n.LoggedIn)
		return n
	}
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave"} {
		up(name)
	}
	for _, f := range []string{"Bob", "Carol", "Dave"} {
		w.befriend("Alice", f)
	}
	ctx := context.Background()
	// Carol and Dave go offline before Bob picks them.
	for _, name := range []string{"Carol", "Dave"} {
		w.nodes[name].n.Close()
		w.nodes[name].n.Host().Close()
	}
	res, err := w.nodes["Alice"].n.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Carol", "Dave"}})
	if err != nil || res.Targets[0].Status != "delivered" {
		t.Fatalf("share to Bob at the other relay: %+v %v", res, err)
	}
	bob := w.nodes["Bob"].n
	var id string
	waitFor(t, "bob's share", func() bool {
		s := bob.Shares()
		id = ""
		if len(s) == 1 {
			id = s[0].ID
		}
		return id != ""
	})
	picks, err := bob.Pick(ctx, node.PickArgs{Share: id, All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range picks {
		if p.Sent != "relay" {
			t.Fatalf("pick %+v, want relay", p)
		}
	}
	if r2.Waiting(w.nodes["Dave"].n.ID()) != 1 || w.relay.Waiting(w.nodes["Carol"].n.ID()) != 1 {
		t.Fatal("the requests are not waiting at Carol's and Dave's home relays")
	}
	for _, name := range []string{"Carol", "Dave"} {
		n := up(name)
		var rid string
		waitFor(t, name+"'s request", func() bool {
			for _, r := range n.Requests() {
				if r.Name == "Bob" {
					rid = r.ID
				}
			}
			return rid != ""
		})
		if _, err := n.Accept(ctx, rid); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "bob's new friends", func() bool { return friendNamed(bob, "Carol") && friendNamed(bob, "Dave") })
}

// TestMovedFriendFoundThroughDHT: Bob moves from Alice's relay to another.
// Alice's book still names the old one, where Bob no longer logs in; her
// node asks her relay for Bob's profile, the relay finds his new one in
// the relays' DHT, and the share reaches Bob at his new home.
func TestMovedFriendFoundThroughDHT(t *testing.T) {
	k2, _ := identity.GenerateKey() // the second relay's, which the first admits
	id2, _ := peer.IDFromPrivateKey(k2)
	cfg := rendezvous.DefaultConfig()
	cfg.RegistrationTTL = rendezvous.Duration(time.Second) // so that the first relay forgets Bob soon
	cfg.Admit = []string{id2.String()}
	w := newWorld(t, rendezvous.WithConfig(cfg))
	for _, name := range []string{"Alice", "Bob", "Carol"} {
		w.up(name)
	}
	w.befriend("Alice", "Bob")
	w.befriend("Alice", "Carol")

	// A second relay, joined to the first through the DHT.
	cfg2 := rendezvous.DefaultConfig()
	cfg2.Peers = []string{fmt.Sprintf("%s/p2p/%s", w.rinfo.Addrs[0], w.rinfo.ID)}
	r2, second := startRelayWithKey(t, k2, rendezvous.WithConfig(cfg2))

	w.down("Bob")
	w.nodes["Bob"].home = &second
	bob := w.up("Bob").n
	waitFor(t, "Bob forgotten at his old relay", func() bool {
		return !w.relay.Online(bob.ID()) && w.relay.Host().Network().Connectedness(second.ID) == network.Connected
	})
	time.Sleep(1100 * time.Millisecond) // past the old relay's registration TTL

	waitFor(t, "Bob's new profile in the DHT", func() bool { return dhtPuts(t, r2) > 0 })

	res, err := w.nodes["Alice"].n.Share(context.Background(), node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Carol"}})
	if err != nil || res.Targets[0].Status != "delivered" {
		t.Fatalf("share to Bob, who moved: %+v %v", res, err)
	}
	waitFor(t, "Bob's share", func() bool { return len(bob.Shares()) > 0 })
	if n := w.relay.Waiting(bob.ID()); n != 0 {
		t.Fatalf("%d items wait for Bob at the relay he left", n)
	}
}

// dhtPuts returns how many profiles r put into the DHT.
func dhtPuts(t *testing.T, r *rendezvous.Relay) float64 {
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kith_relay_dht_profiles_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "put" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestLeftRelayDrained: Bob changes his home relay while a share waits for
// him at the old one; his node logs in there once more, takes it, and
// forgets the old relay, also across a restart.
func TestLeftRelayDrained(t *testing.T) {
	w := newWorld(t)
	for _, name := range []string{"Alice", "Bob", "Carol"} {
		w.up(name)
	}
	w.befriend("Alice", "Bob")
	w.befriend("Alice", "Carol")
	w.down("Bob")
	bobID := w.nodes["Bob"].n.ID()
	res, err := w.nodes["Alice"].n.Share(context.Background(), node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Carol"}})
	if err != nil || res.Targets[0].Status != "stored" {
		t.Fatalf("share to Bob, offline: %+v %v", res, err)
	}
	if n := w.relay.Waiting(bobID); n != 1 {
		t.Fatalf("%d items wait for Bob, want 1", n)
	}

	r2, second := startRelay(t)
	w.nodes["Bob"].home = &second
	bob := w.up("Bob").n
	if !r2.Online(bob.ID()) {
		t.Fatal("Bob is not logged in at his new relay")
	}
	waitFor(t, "the share taken from the relay Bob left", func() bool { return len(bob.Shares()) > 0 })
	waitFor(t, "the old relay empty and forgotten", func() bool {
		return w.relay.Waiting(bobID) == 0 && len(bob.Status().Leaving) == 0
	})

	w.down("Bob")
	bob = w.up("Bob").n
	if l := bob.Status().Leaving; len(l) != 0 {
		t.Fatalf("after a restart Bob still drains %v", l)
	}
	if len(bob.Shares()) != 1 {
		t.Fatalf("Bob has %d shares, want 1", len(bob.Shares()))
	}
}

// TestLeftRelayGivenUp: a relay the user left that cannot be reached is
// tried until whatever it held has expired there, then forgotten; one
// left longer ago than that is forgotten at once.
func TestLeftRelayGivenUp(t *testing.T) {
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	dk, _ := identity.GenerateKey()
	did, _ := peer.IDFromPrivateKey(dk)
	dead := peer.AddrInfo{ID: did, Addrs: []ma.Multiaddr{ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))}}

	var now atomic.Pointer[time.Time]
	set := func(tm time.Time) { now.Store(&tm) }
	clock := func() time.Time { return *now.Load() }
	start := time.Now()
	set(start)
	key, _ := identity.GenerateKey()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	run := func(home peer.AddrInfo) *node.Node {
		n, err := node.New(context.Background(), loopback(t, key), d, key, node.WithName("Alice"), node.WithRendezvous(home),
			node.WithLogger(quietLog), node.WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	stop := func(n *node.Node) {
		n.Close()
		n.Host().Close()
	}
	stop(run(dead))
	n := run(w.rinfo) // the unreachable relay is left now
	time.Sleep(300 * time.Millisecond)
	if l := n.Status().Leaving; len(l) != 1 || l[0] != did.String() {
		t.Fatalf("leaving %v, want the unreachable relay", l)
	}
	set(start.Add(29 * 24 * time.Hour)) // still within the relay's mailbox life
	time.Sleep(1500 * time.Millisecond)
	if len(n.Status().Leaving) != 1 {
		t.Fatal("the unreachable relay was given up within its mailboxes' life")
	}
	set(start.Add(32 * 24 * time.Hour))
	waitFor(t, "the unreachable relay given up", func() bool { return len(n.Status().Leaving) == 0 })
	stop(n)

	// Left long ago: forgotten at once, without a try.
	stop(run(dead))
	stop(run(w.rinfo))
	set(start.Add(64 * 24 * time.Hour))
	if n = run(w.rinfo); len(n.Status().Leaving) != 0 {
		t.Fatalf("a relay left 32 days ago is still drained: %v", n.Status().Leaving)
	}
}

// TestMovedUserGetsWhatIsSentAfter: Bob moves to another relay. His old
// relay learns it when his node collects what waited there, and answers
// what is sent to him next MOVED, with his newer profile; the senders,
// who still knew only his old home, send there at once: a share, a friend
// request and an answer all reach him, and nothing waits at the relay he
// left.
func TestMovedUserGetsWhatIsSentAfter(t *testing.T) {
	w := newWorld(t)
	for _, name := range []string{"Alice", "Carol", "Dave"} {
		w.nodes[name] = &member{name: name, refresh: time.Hour} // they do not ask for newer profiles
	}
	for _, name := range []string{"Alice", "Bob", "Carol", "Dave"} {
		if m := w.nodes[name]; m != nil && m.key == nil {
			m.key, _ = identity.GenerateKey()
			m.d = dssync.MutexWrap(ds.NewMapDatastore())
		}
		w.up(name)
	}
	for _, f := range []string{"Bob", "Carol", "Dave"} {
		w.befriend("Alice", f)
	}
	ctx := context.Background()
	alice, carol, dave := w.nodes["Alice"].n, w.nodes["Carol"].n, w.nodes["Dave"].n
	// Before the move: Bob asks Carol, whom Alice shared with him.
	if _, err := alice.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Carol"}}); err != nil {
		t.Fatal(err)
	}
	bob := w.nodes["Bob"].n
	waitFor(t, "Bob's first share", func() bool { return len(bob.Shares()) == 1 })
	if _, err := bob.Pick(ctx, node.PickArgs{Share: bob.Shares()[0].ID, All: true}); err != nil {
		t.Fatal(err)
	}
	var carolsReq string
	waitFor(t, "Carol sees Bob's request", func() bool {
		for _, r := range carol.Requests() {
			if r.Direction == "in" && r.Name == "Bob" {
				carolsReq = r.ID
				return true
			}
		}
		return false
	})

	// Bob moves.
	_, second := startRelay(t)
	w.down("Bob")
	w.nodes["Bob"].home = &second
	bob = w.up("Bob").n
	waitFor(t, "Bob done with the relay he left", func() bool { return len(bob.Status().Leaving) == 0 })
	bobID := bob.ID()

	// A share to him, sent to where Alice thinks he is.
	res, err := alice.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Dave"}})
	if err != nil || len(res.Targets) != 1 || (res.Targets[0].Status != "delivered" && res.Targets[0].Status != "stored") {
		t.Fatalf("a share to Bob after he moved: %+v %v", res, err)
	}
	waitFor(t, "Bob's second share", func() bool { return len(bob.Shares()) == 2 })

	// An answer to him: Carol accepts the request he made before.
	if _, err := carol.Accept(ctx, carolsReq); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Bob hears Carol accepted", func() bool { return friendNamed(bob, "Carol") })

	// A request to him: Alice shares Bob with Dave, who picks him.
	if _, err := alice.Share(ctx, node.ShareArgs{To: []string{"Dave"}, Friends: []string{"Bob"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Dave's share of Bob", func() bool { return len(dave.Shares()) == 1 })
	if _, err := dave.Pick(ctx, node.PickArgs{Share: dave.Shares()[0].ID, All: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Bob sees Dave's request", func() bool {
		for _, r := range bob.Requests() {
			if r.Direction == "in" && r.Name == "Dave" {
				return true
			}
		}
		return false
	})
	if n := w.relay.Waiting(bobID); n != 0 {
		t.Fatalf("%d items wait for Bob at the relay he left", n)
	}
}

// relayAt starts a relay with key on a fixed loopback port, on datastore d,
// so that it can be stopped and started again at the same address.
func relayAt(t *testing.T, key crypto.PrivKey, port int, d ds.Batching) (*rendezvous.Relay, host.Host) {
	t.Helper()
	h, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	r, err := rendezvous.New(context.Background(), h, d, rendezvous.WithLogger(quietLog))
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); h.Close() })
	return r, h
}

// TestHomeRelayDown: while Bob's and Erin's home relay is down, a share to
// Bob, who is online and connected to Alice, reaches him directly; a share
// to Erin waits in Alice's node and reaches the relay within seconds of
// its return, though Alice's node failed to dial it many times meanwhile.
func TestHomeRelayDown(t *testing.T) {
	w := newWorld(t)
	key2, _ := identity.GenerateKey()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	d2 := dssync.MutexWrap(ds.NewMapDatastore())
	r2, h2 := relayAt(t, key2, port, d2)
	second := peer.AddrInfo{ID: h2.ID(), Addrs: h2.Addrs()}
	for _, name := range []string{"Alice", "Carol"} {
		w.up(name)
	}
	for _, name := range []string{"Bob", "Erin"} {
		k, _ := identity.GenerateKey()
		w.nodes[name] = &member{name: name, key: k, d: dssync.MutexWrap(ds.NewMapDatastore()), home: &second}
		w.up(name)
	}
	for _, f := range []string{"Bob", "Carol", "Erin"} {
		w.befriend("Alice", f)
	}
	ctx := context.Background()
	alice, bob := w.nodes["Alice"].n, w.nodes["Bob"].n
	if err := alice.Host().Connect(ctx, peer.AddrInfo{ID: bob.ID(), Addrs: bob.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	w.down("Erin")

	// The relay goes down.
	r2.Close()
	h2.Close()
	res, err := alice.Share(ctx, node.ShareArgs{To: []string{"Bob"}, Friends: []string{"Carol"}})
	if err != nil || len(res.Targets) != 1 || res.Targets[0].Status != "delivered directly" {
		t.Fatalf("a share to Bob while his relay is down: %+v %v", res, err)
	}
	waitFor(t, "Bob's share", func() bool { return len(bob.Shares()) == 1 })
	if _, err := alice.Share(ctx, node.ShareArgs{To: []string{"Erin"}, Friends: []string{"Carol"}}); !errors.Is(err, node.ErrNoRelay) {
		t.Fatalf("a share to Erin, offline, while her relay is down: %v", err)
	}
	time.Sleep(3 * time.Second) // Alice's node retries every 200 ms, and fails

	// It comes back at the same address.
	r2, _ = relayAt(t, key2, port, d2)
	back := time.Now()
	erin := w.nodes["Erin"].n.ID()
	deadline := time.Now().Add(10 * time.Second)
	for r2.Waiting(erin) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Erin's share did not reach her relay within 10 s of its return")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("stored %v after the relay came back", time.Since(back).Round(time.Millisecond))
}
