package rendezvous

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testPeer(tb testing.TB) peer.ID {
	k, _ := identity.GenerateKey()
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

// tempPebble opens a go-ds-pebble store in a temporary directory, closed
// when the test ends.
func tempPebble(tb testing.TB) *PebbleStore {
	tb.Helper()
	d, err := OpenDatastore(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func item(r peer.ID, id string, deps ...identity.AttestationID) newItem {
	return newItem{recipient: r, id: id, kind: protopb.ItemKind_SHARE, payload: []byte("payload " + id), deps: deps}
}

func TestMailboxPutAckOrder(t *testing.T) {
	bob := testPeer(t)
	m := newMailboxes(Quota{Items: 100, Bytes: 1 << 20}, time.Hour, nil)
	for i := range 5 {
		res, muts := m.put(item(bob, fmt.Sprint("s", i)), t0)
		if res.outcome != putStored || res.seq != uint64(i+1) || len(muts) == 0 {
			t.Fatalf("put %d: %+v, %d mutations", i, res, len(muts))
		}
	}
	if got := m.pending(bob, 0, 10); !reflect.DeepEqual(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("pending %v", got)
	}
	if got := m.pending(bob, 2, 2); !reflect.DeepEqual(got, []uint64{3, 4}) {
		t.Fatalf("pending after 2 %v", got)
	}
	acked, _ := m.ack(bob, []uint64{2, 4, 99, 2}, t0)
	if !reflect.DeepEqual(acked, []uint64{2, 4}) {
		t.Fatalf("acked %v", acked)
	}
	if got := m.pending(bob, 0, 10); !reflect.DeepEqual(got, []uint64{1, 3, 5}) {
		t.Fatalf("pending after acks %v", got)
	}
	// The same ids again: nothing is stored twice.
	if res, _ := m.put(item(bob, "s1"), t0); res.outcome != putDupDelivered || res.seq != 2 {
		t.Fatalf("retry of a delivered item: %+v", res)
	}
	if res, _ := m.put(item(bob, "s0"), t0); res.outcome != putDupPending || res.seq != 1 {
		t.Fatalf("retry of a waiting item: %+v", res)
	}
	// Seqs never go back, even after everything is acknowledged.
	m.ack(bob, []uint64{1, 3, 5}, t0)
	if res, _ := m.put(item(bob, "s9"), t0); res.seq != 6 {
		t.Fatalf("seq after drain %d, want 6", res.seq)
	}
	if m.depth(bob) != 1 || m.total != 1 {
		t.Fatalf("depth %d total %d", m.depth(bob), m.total)
	}
}

// TestMailboxAckAnyOrder acknowledges a mailbox's items in orders that
// remove at the front, the back and the middle (cut moves whichever side
// is shorter) and checks what is left against a plain list each time.
func TestMailboxAckAnyOrder(t *testing.T) {
	const n = 40
	orders := map[string]func(i int) uint64{
		"oldest first": func(i int) uint64 { return uint64(i + 1) },
		"newest first": func(i int) uint64 { return uint64(n - i) },
		"middle out":   func(i int) uint64 { return uint64((n/2+(i+1)/2*(1-2*(i%2)))%n + 1) },
		"strided":      func(i int) uint64 { return uint64((i*7)%n + 1) },
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			bob := testPeer(t)
			m := newMailboxes(Quota{Items: n, Bytes: 1 << 20}, time.Hour, nil)
			var want []uint64
			for i := range n {
				m.put(item(bob, fmt.Sprint("s", i)), t0)
				want = append(want, uint64(i+1))
			}
			for i := range n {
				seq := order(i)
				acked, _ := m.ack(bob, []uint64{seq}, t0)
				if !reflect.DeepEqual(acked, []uint64{seq}) {
					t.Fatalf("step %d: ack %d acknowledged %v (already gone?)", i, seq, acked)
				}
				for j, s := range want {
					if s == seq {
						want = append(want[:j:j], want[j+1:]...)
						break
					}
				}
				got := m.pending(bob, 0, n)
				if len(got) == 0 {
					got = nil
				}
				if len(want) == 0 {
					want = nil
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d (ack %d): pending %v, want %v", i, seq, got, want)
				}
				if m.depth(bob) != len(want) || m.total != len(want) {
					t.Fatalf("step %d: depth %d total %d, want %d", i, m.depth(bob), m.total, len(want))
				}
			}
			// The box still takes new items, in order, after any drain.
			if res, _ := m.put(item(bob, "after"), t0); res.outcome != putStored || res.seq != n+1 {
				t.Fatalf("put after drain: %+v", res)
			}
		})
	}
}

func TestMailboxQuota(t *testing.T) {
	bob, carol := testPeer(t), testPeer(t)
	m := newMailboxes(Quota{Items: 3, Bytes: 1 << 20}, time.Hour, nil)
	for i := range 3 {
		m.put(item(bob, fmt.Sprint(i)), t0)
	}
	if res, muts := m.put(item(bob, "x"), t0); res.outcome != putOverQuota || muts != nil {
		t.Fatalf("over item quota: %+v", res)
	}
	if res, _ := m.put(item(carol, "x"), t0); res.outcome != putStored {
		t.Fatalf("another mailbox is not affected: %+v", res)
	}
	m.ack(bob, []uint64{1}, t0)
	if res, _ := m.put(item(bob, "x"), t0); res.outcome != putStored {
		t.Fatalf("room after an ack: %+v", res)
	}
	small := newMailboxes(Quota{Items: 100, Bytes: 300}, time.Hour, nil)
	big := item(bob, "big")
	big.payload = make([]byte, 400)
	if res, _ := small.put(big, t0); res.outcome != putOverQuota {
		t.Fatalf("over byte quota: %+v", res)
	}
}

func TestMailboxExpiry(t *testing.T) {
	bob := testPeer(t)
	att := identity.AttestationID{1}
	m := newMailboxes(Quota{Items: 100, Bytes: 1 << 20}, time.Hour, nil)
	m.put(item(bob, "a", att), t0)
	m.put(item(bob, "b"), t0.Add(30*time.Minute))
	n, muts := m.expire(t0.Add(time.Hour))
	if n != 1 || len(muts) != 2 { // item a and its id record (which names its dependencies)
		t.Fatalf("expired %d with %d mutations", n, len(muts))
	}
	if got := m.pending(bob, 0, 10); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("pending %v", got)
	}
	// Once its id is forgotten, an old id may be stored again.
	if res, _ := m.put(item(bob, "a"), t0.Add(time.Hour)); res.outcome != putStored {
		t.Fatalf("after expiry: %+v", res)
	}
}

func TestMailboxWithdraw(t *testing.T) {
	bob, erin := testPeer(t), testPeer(t)
	att, other := identity.AttestationID{1}, identity.AttestationID{2}
	revoked := map[identity.AttestationID]bool{}
	m := newMailboxes(Quota{Items: 100, Bytes: 1 << 20}, time.Hour, func(a identity.AttestationID) bool { return revoked[a] })
	m.put(item(bob, "waiting", att), t0)             // seq 1, not yet delivered
	_, putMuts := m.put(item(erin, "seen", att), t0) // erin's seq 1, delivered below
	m.put(item(bob, "unrelated", other), t0)         // seq 2
	m.ack(erin, []uint64{1}, t0)
	// The stored item (whose record names no sender) is listed on disk
	// under its attestation from when it is stored; once delivered it is
	// no longer in memory's index of pending items.
	depKey := mboxDepKey(att, erin, "seen")
	if v, ok := mutKeys(putMuts)[depKey.String()]; !ok || v == "<delete>" {
		t.Fatalf("put did not index the item: %v", mutKeys(putMuts))
	}
	if _, ok := m.depIndex()[att][depRef{erin, "seen"}]; ok {
		t.Fatal("a delivered item is still in the pending index")
	}
	seen, _ := m.state(erin, "seen")
	stored := []storedDep{{keys: []ds.Key{depKey}, recipient: erin, id: "seen", rec: seen, found: true}}

	rev := &identity.Revocation{AttestationID: att, Revoker: bob, Raw: []byte("revocation")}
	revoked[att] = true
	touched, muts := m.withdraw(rev, t0, stored)
	if mutKeys(muts)[depKey.String()] != "<delete>" {
		t.Fatalf("the index entry was kept: %v", mutKeys(muts))
	}
	if len(touched) != 2 {
		t.Fatalf("touched %v", touched)
	}
	if got := m.pending(bob, 0, 10); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("bob's waiting item was not withdrawn: %v", got)
	}
	if got := m.pending(erin, 0, 10); !reflect.DeepEqual(got, []uint64{2}) {
		t.Fatalf("erin got no withdrawal notice: %v", got)
	}
	if rec, _ := m.state(bob, "waiting"); rec.state != 2 {
		t.Fatalf("state %v", rec.state)
	}
	// A retry of the withdrawn item is not stored again, nor is anything
	// new resting on the revoked attestation.
	if res, _ := m.put(item(bob, "waiting", att), t0); res.outcome != putWithdrawn {
		t.Fatalf("retry: %+v", res)
	}
	if res, _ := m.put(item(bob, "new", att), t0); res.outcome != putWithdrawn {
		t.Fatalf("new item on a revoked attestation: %+v", res)
	}
	// Hearing the revocation again changes nothing.
	if touched, muts := m.withdraw(rev, t0, nil); len(touched) != 0 || len(muts) != 0 {
		t.Fatalf("second withdraw: %v %d", touched, len(muts))
	}
}

// TestStoreMatchesModel writes through the store, reopens it from the same
// datastore, and checks the reloaded model equals the one that wrote.
func TestStoreMatchesModel(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	cfg := DefaultConfig()
	clock := func() time.Time { return t0 }
	s, err := openStore(ctx, d, &cfg, clock, slog.Default(), storeHooks{})
	if err != nil {
		t.Fatal(err)
	}
	bob, erin := testPeer(t), testPeer(t)
	att := identity.AttestationID{7}
	var items []newItem
	for i := range 20 {
		items = append(items, item(bob, fmt.Sprint("b", i), att), item(erin, fmt.Sprint("e", i)))
	}
	carol := testPeer(t)
	for i := range 3 {
		items = append(items, request(carol, fmt.Sprint("r", i)))
	}
	if _, err := s.put(ctx, items); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ack(ctx, bob, []uint64{1, 2, 3, 10}); err != nil {
		t.Fatal(err)
	}
	rev := realRevocation(t)
	if _, err := s.put(ctx, []newItem{item(bob, "on-revoked", rev.AttestationID), item(erin, "seen", rev.AttestationID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ack(ctx, erin, []uint64{21}); err != nil {
		t.Fatal(err)
	}
	if fresh, err := s.revoke(ctx, rev); err != nil || !fresh {
		t.Fatalf("revoke: %v %v", fresh, err)
	}
	s.close()

	s2, err := openStore(ctx, d, &cfg, clock, slog.Default(), storeHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	// Settled records are not loaded: they live on disk until recalled.
	// The writer forgets them too once they are old enough.
	s.mb.forget(t0.Add(s.mb.recentTTL + time.Second))
	for _, m := range []*mailboxes{s.mb, s2.mb} {
		for _, b := range m.boxes {
			b.idsPeak = 0
		}
	}
	if !reflect.DeepEqual(s.mb.boxes, s2.mb.boxes) {
		for p, b := range s.mb.boxes {
			t.Logf("%s: before %+v\nafter %+v", p, b, s2.mb.boxes[p])
		}
		t.Fatal("reloaded mailboxes differ")
	}
	if !s2.revoked.Revoked(rev.AttestationID) {
		t.Fatal("revocation not reloaded")
	}
	if s2.mb.knows(bob, "on-revoked") || s2.mb.knows(bob, "b1") {
		t.Fatal("settled records were loaded into memory")
	}
	var rec pb.ItemRecord
	if v, err := d.Get(ctx, mboxIDKey(bob, "on-revoked")); err != nil || proto.Unmarshal(v, &rec) != nil || rec.State != pb.ItemState_WITHDRAWN {
		t.Fatalf("withdrawn item's record after reload: %v %v", rec.State, err)
	}
	// Retries of settled items are recognised from their records on disk.
	res, err := s2.put(ctx, []newItem{item(bob, "b1", att), item(bob, "on-revoked", rev.AttestationID)})
	if err != nil || res[0].outcome != putDupDelivered || res[1].outcome != putWithdrawn {
		t.Fatalf("retries after reload: %+v %v", res, err)
	}
	if got := s2.pending(erin, 20, 10); len(got) != 1 {
		t.Fatalf("erin's withdrawal notice after reload: %v", got)
	}
	if !reflect.DeepEqual(s.mb.depIndex(), s2.mb.depIndex()) || s.mb.total != s2.mb.total {
		t.Fatalf("reloaded deps or totals differ: %d vs %d", s.mb.total, s2.mb.total)
	}
	if s2.mb.strangers != 3 || s2.mb.boxes[carol].strangers != 3 || s.mb.bytes != s2.mb.bytes {
		t.Fatalf("reloaded strangers' rooms: %d, carol's %d; bytes %d vs %d", s2.mb.strangers, s2.mb.boxes[carol].strangers, s.mb.bytes, s2.mb.bytes)
	}
}

// realRevocation returns a verified revocation of a fresh friendship.
func realRevocation(tb testing.TB) *identity.Revocation {
	tb.Helper()
	a, _ := identity.GenerateKey()
	b, _ := identity.GenerateKey()
	bid, _ := peer.IDFromPrivateKey(b)
	offer, _ := identity.MakeOffer(a, bid, t0, 0)
	v := identity.NewVerifier()
	att, err := v.Countersign(b, offer, t0)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := identity.Revoke(a, att, t0)
	if err != nil {
		tb.Fatal(err)
	}
	rev, err := v.Revocation(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return rev
}

// TestItemsAfter reads mailboxes back through both paths of itemsAfter:
// the ordered scan (pebble) and one lookup per seq (map datastore), with
// neighbouring mailboxes on disk and acknowledged gaps.
func TestItemsAfter(t *testing.T) {
	backends := map[string]func(t *testing.T) ds.Batching{
		"lookup": func(*testing.T) ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) },
		"scan":   func(t *testing.T) ds.Batching { return tempPebble(t) },
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			cfg := DefaultConfig()
			s, err := openStore(ctx, open(t), &cfg, func() time.Time { return t0 }, slog.Default(), storeHooks{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if _, ok := s.ds.(orderedScanner); ok != (name == "scan") {
				t.Fatalf("backend %s: ordered scan %v", name, ok)
			}
			peers := []peer.ID{testPeer(t), testPeer(t), testPeer(t)}
			var items []newItem
			for i := range 10 {
				for _, p := range peers {
					items = append(items, item(p, fmt.Sprint(p, i)))
				}
			}
			if _, err := s.put(ctx, items); err != nil {
				t.Fatal(err)
			}
			bob := peers[1]
			if _, err := s.ack(ctx, bob, []uint64{1, 3, 5}); err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				after uint64
				n     int
				seqs  []uint64
				next  uint64
				more  bool
			}{
				{0, 3, []uint64{2, 4, 6}, 6, true},
				{2, 2, []uint64{4, 6}, 6, true},
				{6, 10, []uint64{7, 8, 9, 10}, 10, false},
				{6, 4, []uint64{7, 8, 9, 10}, 10, true},
				{10, 5, nil, 10, false},
			}
			for _, c := range cases {
				seqs, got, next, more := s.itemsAfter(ctx, bob, c.after, c.n)
				if !reflect.DeepEqual(seqs, c.seqs) || next != c.next || more != c.more {
					t.Errorf("itemsAfter(%d, %d) = %v next %d more %v; want %v next %d more %v",
						c.after, c.n, seqs, next, more, c.seqs, c.next, c.more)
					continue
				}
				for i, seq := range seqs {
					var it protopb.InboxItem
					if err := proto.Unmarshal(got[i], &it); err != nil {
						t.Fatal(err)
					}
					if want := "payload " + fmt.Sprint(bob, seq-1); string(it.Payload) != want {
						t.Errorf("seq %d: payload %q, want %q", seq, it.Payload, want)
					}
				}
			}
		})
	}
}

// TestPeerTextMatchesString checks the key cache against peer.ID.String,
// across the reset when it fills.
func TestPeerTextMatchesString(t *testing.T) {
	p := testPeer(t)
	for i := range peerTextsMax + 10 {
		q := peer.ID(fmt.Sprint("fake-", i)) // any bytes: keys never parse these back
		if got := peerText(q); got != q.String() {
			t.Fatalf("peerText(%d) = %q, want %q", i, got, q.String())
		}
		if i%10000 == 0 && peerText(p) != p.String() {
			t.Fatal("cached text of a real id differs")
		}
	}
}

// TestMailboxHeldItems: an item held in memory writes nothing at put; if
// it is acknowledged, only its id record and the box's next seq are
// written; if it must be kept, persist writes exactly what put would have
// written for it.
func TestMailboxHeldItems(t *testing.T) {
	bob := testPeer(t)
	q := Quota{Items: 100, Bytes: 1 << 20}
	held := newMailboxes(q, time.Hour, nil)
	plain := newMailboxes(q, time.Hour, nil)
	put := func(m *mailboxes, id string, hold bool) (putResult, []mutation) {
		it := item(bob, id, identity.AttestationID{1}, identity.AttestationID{2})
		it.hold = hold
		return m.put(it, t0)
	}
	// s1: held, then acknowledged.
	res, muts := put(held, "s1", true)
	if res.outcome != putStored || !res.held || res.seq != 1 || len(muts) != 0 {
		t.Fatalf("held put: %+v, %d mutations, want stored, held, seq 1, none", res, len(muts))
	}
	plainRes, plainMuts := put(plain, "s1", false)
	refs := held.pendingRefs(bob, 0, 10)
	if len(refs) != 1 || refs[0].seq != 1 || refs[0].item == nil {
		t.Fatalf("pending refs %+v, want seq 1 with its item", refs)
	}
	var st pb.StoredItem
	if err := proto.Unmarshal(plainMuts[0].value, &st); err != nil || !bytes.Equal(st.Item, refs[0].item) {
		t.Fatalf("the held InboxItem is not the one put stores (%v)", err)
	}
	if stored, h := held.backlog(bob); stored != 0 || h != 1 {
		t.Fatalf("backlog %d stored, %d held", stored, h)
	}
	// A retry while it is held says so.
	if dup, _ := put(held, "s1", true); dup.outcome != putDupPending || !dup.held {
		t.Fatalf("retry of a held item: %+v", dup)
	}
	acked, muts := held.ack(bob, []uint64{1}, t0)
	if len(acked) != 1 {
		t.Fatal("held item not acknowledged")
	}
	_, plainAck := plain.ack(bob, []uint64{plainRes.seq}, t0)
	got := mutKeys(muts)
	if _, ok := got[mboxKey(bob, 1).String()]; ok {
		t.Fatalf("acknowledging a held item touched its item key: %v", got)
	}
	if got[mboxIDKey(bob, "s1").String()] != mutKeys(plainAck)[mboxIDKey(bob, "s1").String()] {
		t.Fatal("the id record written for a held item differs from a stored one's")
	}
	if _, ok := got[mboxMetaKey(bob).String()]; !ok {
		t.Fatal("the box's next seq is not written with a held item's acknowledgement")
	}

	// s2: held, then persisted: the same writes as a plain put.
	res, _ = put(held, "s2", true)
	_, plainMuts = put(plain, "s2", false)
	ok, muts := held.persist(bob, res.seq)
	if !ok || !reflect.DeepEqual(mutKeys(muts), mutKeys(plainMuts)) {
		t.Fatalf("persist wrote %v, want what put writes: %v", mutKeys(muts), mutKeys(plainMuts))
	}
	if ok, _ := held.persist(bob, res.seq); ok {
		t.Fatal("persisted twice")
	}
	if stored, h := held.backlog(bob); stored != 1 || h != 0 {
		t.Fatalf("backlog after persist: %d stored, %d held", stored, h)
	}
	// It is an ordinary stored item now: acknowledging it deletes it.
	if _, muts := held.ack(bob, []uint64{res.seq}, t0); mutKeys(muts)[mboxKey(bob, res.seq).String()] != "<delete>" {
		t.Fatalf("ack of a persisted item: %v", mutKeys(muts))
	}

	// s3: held, then withdrawn: nothing to delete, its record says so.
	rev := realRevocation(t)
	it := item(bob, "s3", rev.AttestationID)
	it.hold = true
	res, _ = held.put(it, t0)
	touched, muts := held.withdraw(rev, t0, nil)
	if len(touched) != 1 || held.depth(bob) != 0 {
		t.Fatalf("withdraw touched %v, depth %d", touched, held.depth(bob))
	}
	if _, ok := mutKeys(muts)[mboxKey(bob, res.seq).String()]; ok {
		t.Fatal("withdrawing a held item deleted a key never written")
	}
	if rec, _ := held.state(bob, "s3"); rec.state != pb.ItemState_WITHDRAWN {
		t.Fatalf("state %v", rec.state)
	}
	if stored, h := held.backlog(bob); stored != 0 || h != 0 {
		t.Fatalf("backlog after withdraw: %d stored, %d held", stored, h)
	}
	// s4: held items expire like others.
	res, _ = put(held, "s4", true)
	if n, muts := held.expire(t0.Add(2 * time.Hour)); n != 1 || mutKeys(muts)[mboxKey(bob, res.seq).String()] != "" {
		t.Fatalf("expire dropped %d: %v", n, mutKeys(muts))
	}
	if _, h := held.backlog(bob); h != 0 {
		t.Fatalf("%d held after expiry", h)
	}
}

// pending returns the seqs of up to n items waiting for r after `after`.
func (m *mailboxes) pending(r peer.ID, after uint64, n int) []uint64 {
	var out []uint64
	for _, ref := range m.pendingRefs(r, after, n) {
		out = append(out, ref.seq)
	}
	return out
}

// pending is mailboxes.pending under the store's lock.
func (s *store) pending(r peer.ID, after uint64, n int) []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.pending(r, after, n)
}

// mutKeys maps each key muts write to its value, or "<delete>".
func mutKeys(muts []mutation) map[string]string {
	out := map[string]string{}
	for _, m := range muts {
		v := string(m.value)
		if m.del {
			v = "<delete>"
		}
		out[m.key.String()] = v
	}
	return out
}

// TestMailboxBudget: the relay's budget bounds all mailboxes together,
// counts what leaves them, and a refused item leaves no mailbox behind.
// request is an add request for r: an item of the strangers' room.
func request(r peer.ID, id string) newItem {
	return newItem{recipient: r, id: id, kind: protopb.ItemKind_ADD_REQUEST, payload: []byte("request " + id)}
}

// TestMailboxRooms fills a recipient's strangers' room with add requests
// and checks that it refuses only them: shares, answers and withdrawals
// have the friends' room, and each room gets its space back on
// acknowledgement, withdrawal and expiry.
func TestMailboxRooms(t *testing.T) {
	bob := testPeer(t)
	att := identity.AttestationID{9}
	revoked := map[identity.AttestationID]bool{}
	m := newMailboxes(Quota{Items: 3, Bytes: 1 << 20, StrangerItems: 2, StrangerBytes: 1 << 20}, time.Hour,
		func(a identity.AttestationID) bool { return revoked[a] })
	put := func(it newItem) putResult {
		t.Helper()
		res, _ := m.put(it, t0)
		return res
	}
	steps := []struct {
		name string
		it   newItem
		want putOutcome
		room string // of a putOverQuota
	}{
		{"a stranger's request", request(bob, "r1"), putStored, ""},
		{"a second, on the introduction of a friend", func() newItem { it := request(bob, "r2"); it.deps = []identity.AttestationID{att}; return it }(), putStored, ""},
		{"a third stranger: their room is full", request(bob, "r3"), putOverQuota, "strangers"},
		{"a friend's share still has room", item(bob, "s1"), putStored, ""},
		{"an answer", newItem{recipient: bob, id: "a1", kind: protopb.ItemKind_ADD_ANSWER, payload: []byte("answer")}, putStored, ""},
		{"a withdrawal", newItem{recipient: bob, id: "w1", kind: protopb.ItemKind_WITHDRAWAL, payload: []byte("withdrawal")}, putStored, ""},
		{"a fourth friend's item: the friends' room is full", item(bob, "s2"), putOverQuota, "friends"},
		{"strangers are still refused", request(bob, "r4"), putOverQuota, "strangers"},
	}
	for _, st := range steps {
		res := put(st.it)
		if res.outcome != st.want || (st.want == putOverQuota && res.fullRoom() != st.room) {
			t.Fatalf("%s: %+v (room %s), want outcome %v room %q", st.name, res, res.fullRoom(), st.want, st.room)
		}
	}
	if b := m.boxes[bob]; len(b.items) != 5 || b.strangers != 2 || m.strangers != 2 {
		t.Fatalf("%d items, %d strangers (%d in all)", len(b.items), b.strangers, m.strangers)
	}
	// Acknowledging a request frees a stranger's place, not a friend's.
	m.ack(bob, []uint64{1}, t0)
	if res := put(item(bob, "s2")); res.outcome != putOverQuota {
		t.Fatalf("a friend's item after a request was acknowledged: %+v", res)
	}
	if res := put(request(bob, "r3")); res.outcome != putStored {
		t.Fatalf("a request after a request was acknowledged: %+v", res)
	}
	// A withdrawal frees one too.
	revoked[att] = true
	m.withdraw(&identity.Revocation{AttestationID: att}, t0, nil)
	if b := m.boxes[bob]; b.strangers != 1 || m.strangers != 1 {
		t.Fatalf("after the withdrawal: %d strangers (%d in all)", b.strangers, m.strangers)
	}
	// And expiry empties both rooms.
	m.expire(t0.Add(2 * time.Hour))
	if b := m.boxes[bob]; len(b.items) != 0 || b.strangers != 0 || b.strangerBytes != 0 || b.bytes != 0 || m.strangers != 0 {
		t.Fatalf("after expiry: %+v, %d strangers in all", b, m.strangers)
	}
	// The strangers' room counts bytes as well.
	m.quota.StrangerBytes = 10
	if res := put(request(bob, "big")); res.outcome != putOverQuota || res.fullRoom() != "strangers" {
		t.Fatalf("a request past the strangers' bytes: %+v", res)
	}
}

// TestMailboxBudgetReserve checks the store-wide reserve: strangers'
// requests are refused once every mailbox together holds the strangers'
// part of the budget, friends' items until the whole of it.
func TestMailboxBudgetReserve(t *testing.T) {
	m := newMailboxes(Quota{Items: 100, Bytes: 1 << 20, StrangerItems: 100, StrangerBytes: 1 << 20}, time.Hour, nil)
	cfg := DefaultConfig()
	cfg.StoreItems, cfg.StoreReserve = 10, 0.3
	m.budget = cfg.budget()
	if m.budget.StrangerItems != 7 {
		t.Fatalf("strangers may take %d of 10 with a 30%% reserve", m.budget.StrangerItems)
	}
	victim := testPeer(t)
	stored := 0
	for i := range 20 {
		if res, _ := m.put(request(testPeer(t), fmt.Sprint("r", i)), t0); res.outcome == putStored {
			stored++
		} else if res.fullRoom() != "store_strangers" {
			t.Fatalf("request %d: %+v (room %s)", i, res, res.fullRoom())
		}
	}
	if stored != 7 {
		t.Fatalf("%d strangers' requests stored, want 7", stored)
	}
	for i := range 3 {
		if res, _ := m.put(item(victim, fmt.Sprint("s", i)), t0); res.outcome != putStored {
			t.Fatalf("a friend's share %d in the reserve: %+v", i, res)
		}
	}
	if res, _ := m.put(item(victim, "s3"), t0); res.outcome != putOverQuota || res.fullRoom() != "store" {
		t.Fatalf("past the whole budget: %+v (room %s)", res, res.fullRoom())
	}
	// With no reserve at all, strangers may fill the store.
	cfg.StoreReserve = 0
	if b := cfg.budget(); b.StrangerItems != 10 {
		t.Fatalf("no reserve: strangers may take %d", b.StrangerItems)
	}
}

func TestMailboxBudget(t *testing.T) {
	m := newMailboxes(Quota{Items: 100, Bytes: 1 << 20}, time.Hour, nil)
	m.budget = Budget{Items: 3}
	var peers []peer.ID
	for i := range 3 {
		p := testPeer(t)
		peers = append(peers, p)
		if res, _ := m.put(item(p, fmt.Sprint("s", i)), t0); res.outcome != putStored {
			t.Fatalf("put %d under the budget: %+v", i, res)
		}
	}
	sybil := testPeer(t)
	res, muts := m.put(item(sybil, "flood"), t0)
	if res.outcome != putOverQuota || !res.storeFull || len(muts) != 0 {
		t.Fatalf("put past the budget: %+v, %d mutations", res, len(muts))
	}
	if _, ok := m.boxes[sybil]; ok {
		t.Fatal("a refused item left a mailbox behind")
	}
	// Per-recipient quota refusals are not the store's.
	small := newMailboxes(Quota{Items: 1, Bytes: 1 << 20}, time.Hour, nil)
	small.put(item(sybil, "a"), t0)
	if res, _ := small.put(item(sybil, "b"), t0); res.outcome != putOverQuota || res.storeFull {
		t.Fatalf("mailbox quota: %+v", res)
	}
	// Delivery and expiry give the room back, in items and in bytes.
	m.ack(peers[0], []uint64{1}, t0)
	if res, _ := m.put(item(sybil, "flood"), t0); res.outcome != putStored {
		t.Fatalf("put after a delivery: %+v", res)
	}
	m.expire(t0.Add(2 * time.Hour))
	if m.total != 0 || m.bytes != 0 {
		t.Fatalf("after expiry: %d items, %d bytes counted", m.total, m.bytes)
	}
	m.budget = Budget{Bytes: 10}
	if res, _ := m.put(item(sybil, "big"), t0.Add(2*time.Hour)); res.outcome != putOverQuota || !res.storeFull {
		t.Fatalf("put past the byte budget: %+v", res)
	}
}

// depIndex is the index of pending items' dependencies as plain maps,
// whichever of an attestation's items is kept inline.
func (m *mailboxes) depIndex() map[identity.AttestationID]map[depRef]int64 {
	out := map[identity.AttestationID]map[depRef]int64{}
	for att, refs := range m.deps {
		out[att] = map[depRef]int64{}
		refs.each(func(r depRef, exp int64) { out[att][r] = exp })
	}
	return out
}

// TestDepRefs: the set of items on one attestation, its first kept
// inline, behaves as a map.
func TestDepRefs(t *testing.T) {
	var d depRefs
	want := map[depRef]int64{}
	check := func(step string) {
		t.Helper()
		got := map[depRef]int64{}
		d.each(func(r depRef, exp int64) {
			if _, dup := got[r]; dup {
				t.Fatalf("%s: %v listed twice", step, r)
			}
			got[r] = exp
		})
		if !reflect.DeepEqual(got, want) || d.len() != len(want) {
			t.Fatalf("%s: %v (len %d), want %v", step, got, d.len(), want)
		}
	}
	a, b, c := depRef{"p", "a"}, depRef{"p", "b"}, depRef{"q", "c"}
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"add a", func() { d.add(a, 1); want[a] = 1 }},
		{"add b", func() { d.add(b, 2); want[b] = 2 }},
		{"update a", func() { d.add(a, 3); want[a] = 3 }},
		{"remove a", func() { d.remove(a); delete(want, a) }},
		{"update b in the rest", func() { d.add(b, 4); want[b] = 4 }},
		{"add c inline again", func() { d.add(c, 5); want[c] = 5 }},
		{"update b", func() { d.add(b, 6); want[b] = 6 }},
		{"remove absent", func() { d.remove(a) }},
		{"remove all", func() {
			d.each(func(r depRef, _ int64) { d.remove(r) })
			clear(want)
		}},
	} {
		step.do()
		check(step.name)
	}
}
