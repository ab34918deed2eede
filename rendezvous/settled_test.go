package rendezvous

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/rendezvous/pb"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openTestStore(t *testing.T, d ds.Batching, clock *testClock) *store {
	t.Helper()
	cfg := DefaultConfig()
	cfg.MailboxTTL = Duration(24 * time.Hour)
	s, err := openStore(context.Background(), d, &cfg, clock.Now, slog.Default(), storeHooks{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// inMemory returns how many id records, pending-index entries and
// settled refs the model holds.
func (s *store) inMemory() (ids, deps, recent int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.mb.boxes {
		ids += len(b.ids)
	}
	for _, refs := range s.mb.deps {
		deps += refs.len()
	}
	return ids, deps, len(s.mb.recent)
}

// sent is item with a sender.
func sent(from, to peer.ID, id string, deps ...identity.AttestationID) newItem {
	it := item(to, id, deps...)
	it.from = from
	return it
}

// TestSettledRecordsLeaveMemory: a relay's memory holds what is pending,
// not its history. Delivered items' records are dropped from memory a
// while after delivery, and everything they were kept for still works
// from disk: a late retry is a duplicate, a revocation withdraws what was
// delivered, and both expire from disk with the mailbox TTL.
func TestSettledRecordsLeaveMemory(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	clock := &testClock{now: t0}
	s := openTestStore(t, d, clock)
	defer s.close()
	bob, carol, erin := testPeer(t), testPeer(t), testPeer(t)
	rev := realRevocation(t)
	alice, other := rev.Revoker, identity.AttestationID{9}

	// n shares from alice to bob resting on the friendship she revokes
	// (and another), one resting on another only, an add request from
	// carol to alice's friend resting on it (an introduction), and one
	// item still waiting for erin.
	const n = 500
	var items []newItem
	for i := range n {
		items = append(items, sent(alice, bob, fmt.Sprint("b", i), rev.AttestationID, other))
	}
	items = append(items,
		sent(alice, bob, "unrelated", other),
		sent(carol, rev.Other, "request", identity.AttestationID{8}, rev.AttestationID),
		sent(carol, erin, "e0", other))
	if _, err := s.put(ctx, items); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for i := range n + 1 {
		seqs = append(seqs, uint64(i+1))
	}
	if acked, err := s.ack(ctx, bob, seqs); err != nil || len(acked) != n+1 {
		t.Fatalf("ack: %d %v", len(acked), err)
	}
	if _, err := s.ack(ctx, rev.Other, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if ids, deps, _ := s.inMemory(); ids != n+3 || deps != 1 {
		t.Fatalf("just after delivery: %d id records, %d index entries in memory; want %d and 1", ids, deps, n+3)
	}
	// Within the recent window a retry is answered from memory.
	if res, err := s.put(ctx, []newItem{sent(alice, bob, "b7", rev.AttestationID, other)}); err != nil || res[0].outcome != putDupDelivered {
		t.Fatalf("quick retry: %+v %v", res, err)
	}

	clock.Add(s.mb.recentTTL + time.Second)
	if err := s.expire(ctx); err != nil {
		t.Fatal(err)
	}
	if ids, deps, recent := s.inMemory(); ids != 1 || deps != 1 || recent != 0 {
		t.Fatalf("after the recent window: %d id records, %d index entries, %d settled refs in memory; want erin's pending one only", ids, deps, recent)
	}
	if len(s.mb.boxes[bob].ids) != 0 || s.mb.boxes[bob].idsPeak > 1 {
		t.Fatalf("bob's id map was not rebuilt small: %d entries, peak %d", len(s.mb.boxes[bob].ids), s.mb.boxes[bob].idsPeak)
	}

	// A late retry is still a duplicate: its record is read from disk.
	if res, err := s.put(ctx, []newItem{sent(alice, bob, "b42", rev.AttestationID, other)}); err != nil || res[0].outcome != putDupDelivered {
		t.Fatalf("late retry: %+v %v", res, err)
	}
	if got := s.pending(bob, 0, 10); len(got) != 0 {
		t.Fatalf("a late retry was stored again: %v", got)
	}

	// A revocation withdraws every delivered item resting on it, found on
	// disk: one notice each, and the records say withdrawn; the items
	// that do not rest on it are untouched.
	if fresh, err := s.revoke(ctx, rev); err != nil || !fresh {
		t.Fatalf("revoke: %v %v", fresh, err)
	}
	if got := s.pending(bob, 0, 2*n); len(got) != n {
		t.Fatalf("%d withdrawal notices to bob for %d delivered items", len(got), n)
	}
	if got := s.pending(rev.Other, 0, 10); len(got) != 1 {
		t.Fatalf("%d withdrawal notices for the delivered introduction", len(got))
	}
	state := func(r peer.ID, id string) pb.ItemState {
		var rec pb.ItemRecord
		v, err := d.Get(ctx, mboxIDKey(r, id))
		if err != nil || proto.Unmarshal(v, &rec) != nil {
			t.Fatalf("%s's record: %v", id, err)
		}
		return rec.State
	}
	if state(bob, "b3") != pb.ItemState_WITHDRAWN || state(rev.Other, "request") != pb.ItemState_WITHDRAWN || state(bob, "unrelated") != pb.ItemState_ACKED {
		t.Fatal("records after the revocation: want b3 and request withdrawn, unrelated delivered")
	}
	if keys := dsKeys(t, d, mboxFromPrefix(alice)); len(keys) != 1 || keys[0] != mboxFromKey(alice, bob, "unrelated").String() {
		t.Fatalf("alice's index after the revocation: %d entries, want only the unrelated item's", len(keys))
	}

	// Past the TTL the disk forgets them too; erin's undelivered item and
	// the withdrawal notices expire with their mailboxes.
	clock.Add(25 * time.Hour)
	if err := s.expire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.expireSettled(ctx); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{prefixMboxID, prefixMboxFrom, prefixMboxDep} {
		if keys := dsKeys(t, d, prefix); len(keys) != 0 {
			t.Fatalf("%d keys left under %s after the TTL: %v", len(keys), prefix, keys[:min(3, len(keys))])
		}
	}
	if ids, deps, recent := s.inMemory(); ids != 0 || deps != 0 || recent != 0 {
		t.Fatalf("after the TTL: %d id records, %d index entries, %d settled refs in memory", ids, deps, recent)
	}
}

// TestSettledSweepKeepsLiveRecords: the sweep deletes only what has
// expired, on either kind of datastore (pebble is scanned with its own
// iterator).
func TestSettledSweepKeepsLiveRecords(t *testing.T) {
	onBothDatastores(t, testSettledSweep)
}

// onBothDatastores runs f on the in-memory datastore and on pebble (which
// the store scans with its own iterator).
func onBothDatastores(t *testing.T, f func(t *testing.T, d ds.Batching)) {
	t.Run("memory", func(t *testing.T) { f(t, dssync.MutexWrap(ds.NewMapDatastore())) })
	t.Run("pebble", func(t *testing.T) { f(t, tempPebble(t)) })
}

func testSettledSweep(t *testing.T, d ds.Batching) {
	ctx := context.Background()
	clock := &testClock{now: t0}
	s := openTestStore(t, d, clock)
	defer s.close()
	alice, bob := testPeer(t), testPeer(t)
	att := identity.AttestationID{3}
	if _, err := s.put(ctx, []newItem{sent(alice, bob, "old", att), sent(alice, bob, "waiting", att)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ack(ctx, bob, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	clock.Add(12 * time.Hour)
	if _, err := s.put(ctx, []newItem{sent(alice, bob, "young", att)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ack(ctx, bob, []uint64{3}); err != nil {
		t.Fatal(err)
	}
	clock.Add(13 * time.Hour) // "old" expired, "young" has 11 hours left
	if n, err := s.expireSettled(ctx); err != nil || n != 3 {
		t.Fatalf("swept %d keys (%v), want old's record and the index entries of old and the expired waiting item", n, err)
	}
	for _, k := range []ds.Key{mboxIDKey(bob, "young"), mboxFromKey(alice, bob, "young")} {
		if ok, _ := d.Has(ctx, k); !ok {
			t.Fatalf("%s was swept before it expired", k)
		}
	}
	// "waiting" expired pending: the model's expire deletes it, not the
	// sweep of settled records.
	if ok, _ := d.Has(ctx, mboxIDKey(bob, "waiting")); !ok {
		t.Fatal("the sweep deleted a pending item's record")
	}
	if err := s.expire(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Has(ctx, mboxIDKey(bob, "waiting")); ok {
		t.Fatal("the expired pending item's record survived expire")
	}
}

// TestLayoutMigration: a datastore written before the dependency index
// (delivered items' dependencies only in their records) is indexed once
// at open, so that a revocation still withdraws what was delivered.
func TestLayoutMigration(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	clock := &testClock{now: t0}
	bob := testPeer(t)
	rev := realRevocation(t)
	expires := t0.Add(24 * time.Hour).Unix()
	old := &pb.ItemRecord{Seq: 1, State: pb.ItemState_ACKED, ExpiresAt: expires, Kind: 1, Deps: [][]byte{rev.AttestationID[:]}}
	gone := &pb.ItemRecord{Seq: 2, State: pb.ItemState_ACKED, ExpiresAt: t0.Unix() - 1, Kind: 1, Deps: [][]byte{rev.AttestationID[:]}}
	for id, rec := range map[string]*pb.ItemRecord{"delivered": old, "expired": gone} {
		if err := d.Put(ctx, mboxIDKey(bob, id), mustMarshal(rec)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Put(ctx, mboxMetaKey(bob), mustMarshal(&pb.BoxMeta{NextSeq: 3})); err != nil {
		t.Fatal(err)
	}
	s := openTestStore(t, d, clock)
	if v, err := d.Get(ctx, layoutKey); err != nil || string(v) != layoutVersion {
		t.Fatalf("layout after open: %q %v", v, err)
	}
	if keys := dsKeys(t, d, prefixMboxDep); len(keys) != 1 || keys[0] != mboxDepKey(rev.AttestationID, bob, "delivered").String() {
		t.Fatalf("index after migration: %v", keys)
	}
	s.close()
	// A second open finds the layout current and writes nothing more.
	if err := d.Delete(ctx, mboxDepKey(rev.AttestationID, bob, "delivered")); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, d, clock)
	defer s.close()
	if keys := dsKeys(t, d, prefixMboxDep); len(keys) != 0 {
		t.Fatalf("migrated twice: %v", keys)
	}
	// A newer layout is refused, not rewritten.
	newer := dssync.MutexWrap(ds.NewMapDatastore())
	if err := newer.Put(ctx, layoutKey, []byte("3")); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if _, err := openStore(ctx, newer, &cfg, clock.Now, slog.Default(), storeHooks{}); err == nil {
		t.Fatal("a datastore of a newer layout was opened")
	}
	if err := d.Put(ctx, mboxDepKey(rev.AttestationID, bob, "delivered"), expiryValue(expires)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.revoke(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if got := s.pending(bob, 0, 10); len(got) != 1 || got[0] != 3 {
		t.Fatalf("withdrawal notice for the migrated item: %v", got)
	}
}

// dsKeys lists the keys under prefix.
func dsKeys(t *testing.T, d ds.Datastore, prefix string) []string {
	t.Helper()
	res, err := d.Query(context.Background(), query.Query{Prefix: prefix, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	all, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range all {
		out = append(out, e.Key)
	}
	sort.Strings(out)
	return out
}

// TestPersistAfterForget: the sender's wait for a held item may end after
// the item's record left memory (a slow commit queue); persist reads it
// back and reports what happened instead of "lost".
func TestPersistAfterForget(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: t0}
	s := openTestStore(t, dssync.MutexWrap(ds.NewMapDatastore()), clock)
	defer s.close()
	alice, bob := testPeer(t), testPeer(t)
	it := sent(alice, bob, "held", identity.AttestationID{4})
	it.hold = true
	res, err := s.put(ctx, []newItem{it})
	if err != nil || !res[0].held {
		t.Fatalf("put: %+v %v", res, err)
	}
	if _, err := s.ack(ctx, bob, []uint64{res[0].seq}); err != nil {
		t.Fatal(err)
	}
	clock.Add(s.mb.recentTTL + time.Second)
	if err := s.expire(ctx); err != nil {
		t.Fatal(err)
	}
	if s.mb.knows(bob, "held") {
		t.Fatal("the record is still in memory")
	}
	state, ok, err := s.persist(ctx, bob, "held", res[0].seq)
	if err != nil || !ok || state != pb.ItemState_ACKED {
		t.Fatalf("persist after forget: %v %v %v, want ACKED", state, ok, err)
	}
}

// TestPendingItemKeepsItsIndexEntry: an item is listed under its sender
// from when it is stored; a revocation of another friendship of the
// sender's, heard while the item waits, must leave the entry for the day
// a revocation of its own friendship comes after delivery.
func TestPendingItemKeepsItsIndexEntry(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	clock := &testClock{now: t0}
	s := openTestStore(t, d, clock)
	defer s.close()
	rev := realRevocation(t)
	alice, bob := rev.Revoker, testPeer(t)
	if _, err := s.put(ctx, []newItem{sent(alice, bob, "waiting", identity.AttestationID{5})}); err != nil {
		t.Fatal(err)
	}
	key := mboxFromKey(alice, bob, "waiting")
	if ok, _ := d.Has(ctx, key); !ok {
		t.Fatal("a stored item is not listed under its sender")
	}
	if _, err := s.revoke(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Has(ctx, key); !ok {
		t.Fatal("a revocation of another friendship dropped the waiting item's entry")
	}
	if _, err := s.ack(ctx, bob, []uint64{1}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Has(ctx, key); !ok {
		t.Fatal("the delivered item lost its entry")
	}
}

// TestWithdrawalResumesAtStart: a relay stopped between recording a
// revocation and withdrawing the delivered items resting on it (which
// happens a chunk at a time) finishes at its next start, once.
func TestWithdrawalResumesAtStart(t *testing.T) {
	ctx := context.Background()
	d := dssync.MutexWrap(ds.NewMapDatastore())
	clock := &testClock{now: t0}
	s := openTestStore(t, d, clock)
	rev := realRevocation(t)
	bob := testPeer(t)
	const n = 2*withdrawChunk + 10
	var items []newItem
	var seqs []uint64
	for i := range n {
		items = append(items, sent(rev.Revoker, bob, fmt.Sprint("d", i), rev.AttestationID))
		seqs = append(seqs, uint64(i+1))
	}
	if _, err := s.put(ctx, items); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ack(ctx, bob, seqs); err != nil {
		t.Fatal(err)
	}
	s.close()
	// What the revocation's first operation writes, and no more.
	for _, k := range []ds.Key{revokedKey(rev.AttestationID), withdrawingKey(rev.AttestationID)} {
		if err := d.Put(ctx, k, rev.Raw); err != nil {
			t.Fatal(err)
		}
	}
	s = openTestStore(t, d, clock)
	if got := s.pending(bob, 0, 2*n); len(got) != n {
		t.Fatalf("%d withdrawal notices after the restart, want %d", len(got), n)
	}
	if ok, _ := d.Has(ctx, withdrawingKey(rev.AttestationID)); ok {
		t.Fatal("the mark survived the finished withdrawal")
	}
	s.close()
	// A second start has nothing to do.
	s = openTestStore(t, d, clock)
	defer s.close()
	if got := s.pending(bob, 0, 2*n); len(got) != n {
		t.Fatalf("%d withdrawal notices after a second restart, want %d", len(got), n)
	}
}
