package rendezvous

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
	"github.com/kithnet/kith/rendezvous/pb"
)

func TestSeenShares(t *testing.T) {
	s := newSeenShares(1024)
	var ids []identity.ShareID
	for range 1000 {
		id := identity.NewShareID()
		s.add(id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		if !s.mayHave(id) {
			t.Fatal("a recorded id is reported unseen (a Bloom filter has no false negatives)")
		}
	}
	fp := 0
	for range 10000 {
		if s.mayHave(identity.NewShareID()) {
			fp++
		}
	}
	if fp > 300 { // ~1% expected; 3% is a broken filter
		t.Fatalf("%d false positives in 10000", fp)
	}
	select {
	case <-s.grow:
		t.Fatal("asked to grow below its capacity")
	default:
	}
	// Past its capacity it asks to be rebuilt larger.
	for range 100 {
		s.add(identity.NewShareID())
	}
	select {
	case <-s.grow:
	default:
		t.Fatal("a full filter did not ask to grow")
	}
	// A rebuild keeps what it includes and what is added meanwhile, and
	// drops the rest.
	b := s.begin(4096)
	for _, id := range ids[1:] {
		s.include(b, id)
	}
	during := identity.NewShareID()
	s.add(during)
	s.finish(b)
	for _, id := range append(ids[1:], during) {
		if !s.mayHave(id) {
			t.Fatal("the rebuild lost an id")
		}
	}
	if s.count() != len(ids) {
		t.Fatalf("rebuilt filter holds %d ids, want %d", s.count(), len(ids))
	}
	// A superseded rebuild changes nothing.
	stale := s.begin(4096)
	fresh := s.begin(4096)
	s.include(stale, ids[0])
	s.finish(stale)
	if s.count() != len(ids) {
		t.Fatal("a superseded rebuild replaced the filter")
	}
	s.abort(fresh)
}

// TestReplayFilterRebuilt: the relay keeps no share id in memory, only
// the filter's bits; rebuilding the filter from the datastore (at start,
// when it fills, hourly) keeps every live record's id and forgets the
// expired ones, which are deleted.
func TestReplayFilterRebuilt(t *testing.T) {
	onBothDatastores(t, testReplayFilterRebuilt)
}

func testReplayFilterRebuilt(t *testing.T, d ds.Batching) {
	ctx := context.Background()
	clock := &testClock{now: t0}
	s := openTestStore(t, d, clock)
	defer s.close()
	var live, old []identity.ShareID
	for i := range 300 {
		id := identity.NewShareID()
		exp := t0.Add(time.Hour)
		if i%3 == 0 {
			exp = t0.Add(time.Minute)
			old = append(old, id)
		} else {
			live = append(live, id)
		}
		rec := &pb.ShareRecord{Sharer: []byte("x"), BodyHash: []byte{1}, ExpiresAt: exp.Unix()}
		if _, err := s.acceptShare(ctx, rec, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(2 * time.Minute)
	if err := s.expireShares(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range live {
		if !s.seen.mayHave(id) {
			t.Fatal("a live record's id was lost by the rebuild")
		}
		if _, ok := s.shareRecord(ctx, id); !ok {
			t.Fatal("a live record was deleted")
		}
	}
	for _, id := range old {
		if ok, _ := d.Has(ctx, shareKey(id)); ok {
			t.Fatal("an expired record was kept")
		}
	}
	if s.seen.count() != len(live) {
		t.Fatalf("filter holds %d ids, want the %d live ones", s.seen.count(), len(live))
	}
	// A reopened store rebuilds the same from disk.
	cfg := DefaultConfig()
	s2, err := openStore(ctx, d, &cfg, clock.Now, slog.Default(), storeHooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.close()
	if s2.seen.count() != len(live) {
		t.Fatalf("reopened filter holds %d ids, want %d", s2.seen.count(), len(live))
	}
	for _, id := range live {
		if !s2.seen.mayHave(id) {
			t.Fatal("the reopened filter lost a live id")
		}
	}
}

// TestShareRecordLifetimeCapped: a share record lives while its seal
// does, but no longer than the mailbox keeps items, whatever validity the
// sharer chose.
func TestShareRecordLifetimeCapped(t *testing.T) {
	d := dssync.MutexWrap(ds.NewMapDatastore())
	cfg := DefaultConfig()
	cfg.MailboxTTL = Duration(time.Hour)
	r := startRelay(t, d, WithConfig(cfg))
	s := newBenchSharer(t)
	s.spec.Validity = 100 * 365 * 24 * time.Hour
	u := s.share(t)
	if resp := r.acceptShare(context.Background(), s.id, u.Raw, nil); resp.Status != protopb.Status_OK {
		t.Fatalf("%v %s", resp.Status, resp.Text)
	}
	v, err := d.Get(context.Background(), shareKey(u.ID))
	if err != nil {
		t.Fatal(err)
	}
	var rec pb.ShareRecord
	if err := proto.Unmarshal(v, &rec); err != nil {
		t.Fatal(err)
	}
	if limit := time.Now().Add(time.Hour + time.Minute).Unix(); rec.ExpiresAt > limit {
		t.Fatalf("record kept until %s, past the mailbox TTL", time.Unix(rec.ExpiresAt, 0))
	}
}

// FuzzShareExpiry: the expiry read without decoding the record agrees
// with a full decode, and bytes that are not a record read as 0 (deleted
// as expired) without a panic.
func FuzzShareExpiry(f *testing.F) {
	rec := &pb.ShareRecord{Sharer: []byte("sharer"), BodyHash: make([]byte, 32), ExpiresAt: 1798200000,
		Atts: []*pb.PeerAttestation{{Peer: []byte("p"), AttestationId: make([]byte, 32)}}, Targets: [][]byte{[]byte("t")}}
	f.Add(mustMarshal(rec))
	f.Add(mustMarshal(&pb.ShareRecord{ExpiresAt: -5}))
	f.Add([]byte{0x18})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		got := shareExpiry(v)
		var rec pb.ShareRecord
		if proto.Unmarshal(v, &rec) == nil && got != rec.ExpiresAt {
			t.Fatalf("read %d, a full decode says %d", got, rec.ExpiresAt)
		}
	})
}

// TestStoreBudgetRefusesShares: past store_items a share is refused for
// its target with MAILBOX_FULL, and the sender is told it is the relay's
// store that is full, not the target's mailbox.
func TestStoreBudgetRefusesShares(t *testing.T) {
	cfg := DefaultConfig()
	cfg.StoreItems = 1
	r := startRelay(t, nil, WithConfig(cfg))
	s := newBenchSharer(t)
	if resp := r.acceptShare(context.Background(), s.id, s.share(t).Raw, nil); resp.Status != protopb.Status_OK {
		t.Fatalf("first share: %v %s", resp.Status, resp.Text)
	}
	resp := r.acceptShare(context.Background(), s.id, s.share(t).Raw, nil)
	if resp.Status != protopb.Status_QUOTA_EXCEEDED || len(resp.Failures) != 1 ||
		resp.Failures[0].Reason != protopb.Reason_MAILBOX_FULL || !strings.Contains(resp.Failures[0].Detail, "store is full") {
		t.Fatalf("share past the budget: %v %s %v", resp.Status, resp.Text, resp.Failures)
	}
}

// TestRecordsOfOlderRelays: a share record stored before seals were
// hashed names its share by a hash of the whole share; a retry of the
// same bytes is still a retry, other bytes under the id still a replay.
func TestRecordsOfOlderRelays(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: t0}
	s := openTestStore(t, dssync.MutexWrap(ds.NewMapDatastore()), clock)
	defer s.close()
	id := identity.NewShareID()
	raw := []byte("the exact share bytes")
	sum := sha256.Sum256(raw)
	old := &pb.ShareRecord{Sharer: []byte("x"), BodyHash: sum[:], ExpiresAt: t0.Add(time.Hour).Unix()}
	if _, err := s.acceptShare(ctx, old, id, nil); err != nil {
		t.Fatal(err)
	}
	item := func(payload []byte) []newItem {
		return []newItem{{recipient: "bob", id: string(id[:]), kind: protopb.ItemKind_SHARE, payload: payload, from: "x"}}
	}
	retry := &pb.ShareRecord{Sharer: []byte("x"), SealHash: make([]byte, 32), ExpiresAt: old.ExpiresAt}
	if out, err := s.acceptShare(ctx, retry, id, item(raw)); err != nil || !out.retry {
		t.Fatalf("the same bytes again: %v %+v", err, out)
	}
	if _, err := s.acceptShare(ctx, retry, id, item([]byte("other bytes"))); !errors.Is(err, errReplay) {
		t.Fatalf("other bytes under the id: %v", err)
	}
}
