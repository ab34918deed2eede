package rendezvous

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// syncSide is one relay's set for the reconciler tests: ids, and a
// stand-in record per id (the test's "revocation" is the id itself).
type syncSide struct {
	set *revocationSet
	raw map[identity.AttestationID][]byte
}

func newSyncSide() *syncSide {
	return &syncSide{set: newRevocationSet(), raw: map[identity.AttestationID][]byte{}}
}

func (s *syncSide) add(id identity.AttestationID) {
	s.set.addID(id, 1<<40)
	s.raw[id] = append([]byte("rev:"), id[:]...)
}

func (s *syncSide) reconciler() *reconciler {
	return &reconciler{set: s.set, get: func(id identity.AttestationID) ([]byte, bool) { v, ok := s.raw[id]; return v, ok }}
}

// apply takes records the other side sent, as applySynced would after
// verifying them.
func (s *syncSide) apply(raws [][]byte) {
	for _, r := range raws {
		var id identity.AttestationID
		copy(id[:], r[4:])
		if _, ok := s.raw[id]; !ok {
			s.add(id)
		}
	}
}

// exchange plays a whole sync between a (the initiator) and b, as
// syncWith and handleRevSync do over a stream, and returns its rounds and
// the bytes that crossed.
func exchange(t *testing.T, a, b *syncSide) (rounds, bytes int) {
	t.Helper()
	ra, rb := a.reconciler(), b.reconciler()
	step := ra.first()
	for ; !emptyStep(step); rounds++ {
		if rounds > syncMaxRounds {
			t.Fatal("the sync does not end")
		}
		bytes += proto.Size(step)
		reply, received, err := rb.answer(step)
		if err != nil {
			t.Fatal(err)
		}
		b.apply(received)
		bytes += proto.Size(reply)
		step, received, err = ra.answer(reply)
		if err != nil {
			t.Fatal(err)
		}
		a.apply(received)
	}
	return rounds, bytes
}

func randomID() identity.AttestationID {
	var id identity.AttestationID
	rand.Read(id[:])
	return id
}

// TestRevSyncReconciles: two relays end with the same revocations,
// whatever each lacked, at a cost that follows the difference.
func TestRevSyncReconciles(t *testing.T) {
	tests := []struct {
		common, onlyA, onlyB int
	}{
		{0, 0, 0}, {100, 0, 0}, {0, 5, 0}, {0, 0, 300}, {10, 1, 1},
		{5000, 1, 0}, {5000, 0, 1}, {5000, 30, 20}, {20000, 1000, 1000}, {0, 20000, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d common, %d and %d apart", tt.common, tt.onlyA, tt.onlyB), func(t *testing.T) {
			a, b := newSyncSide(), newSyncSide()
			for range tt.common {
				id := randomID()
				a.add(id)
				b.add(id)
			}
			for range tt.onlyA {
				a.add(randomID())
			}
			for range tt.onlyB {
				b.add(randomID())
			}
			var rounds, bytes int
			for i := 0; i < 10; i++ { // each sync sends at most syncMaxRevocations a step
				r, n := exchange(t, a, b)
				rounds, bytes = rounds+r, bytes+n
				if a.set.len() == b.set.len() && a.set.roots() == b.set.roots() {
					break
				}
			}
			want := tt.common + tt.onlyA + tt.onlyB
			if a.set.len() != want || b.set.len() != want || a.set.roots() != b.set.roots() {
				t.Fatalf("after the sync: %d and %d, want %d each", a.set.len(), b.set.len(), want)
			}
			t.Logf("%d rounds, %d bytes", rounds, bytes)
			// Equal sets cost the opening step and an empty answer; a
			// small difference in a large set costs far less than the set.
			if tt.onlyA+tt.onlyB == 0 && rounds != 1 {
				t.Fatalf("equal sets took %d rounds", rounds)
			}
			if d := tt.onlyA + tt.onlyB; d > 0 && d <= 50 && tt.common >= 5000 && bytes > 40*(d+1)*1024 {
				t.Fatalf("a difference of %d in %d cost %d bytes", d, tt.common, bytes)
			}
		})
	}
}

// TestRevSyncRefusesBadSteps: a step no honest relay sends is refused
// whole, with a status, and nothing of it is applied.
func TestRevSyncRefusesBadSteps(t *testing.T) {
	rc := newSyncSide().reconciler()
	id := randomID()
	tests := []struct {
		name string
		step *pb.RevSyncStep
	}{
		{"a list of too many ids", &pb.RevSyncStep{Lists: []*pb.RevSyncList{{Prefix: nil, Ids: make([][]byte, 4*syncListMax+1)}}}},
		{"a long prefix", &pb.RevSyncStep{Ranges: []*pb.RevSyncRange{{Prefix: make([]byte, 33), Fingerprint: make([]byte, 16)}}}},
		{"a short fingerprint", &pb.RevSyncStep{Ranges: []*pb.RevSyncRange{{Prefix: []byte{1}, Fingerprint: []byte{1}}}}},
		{"an id outside its list's range", &pb.RevSyncStep{Lists: []*pb.RevSyncList{{Prefix: []byte{id[0] + 1}, Ids: [][]byte{id[:]}}}}},
		{"a short id", &pb.RevSyncStep{Lists: []*pb.RevSyncList{{Prefix: []byte{1}, Ids: [][]byte{{1, 2}}}}}},
		{"a fetch of a short id", &pb.RevSyncStep{Fetch: [][]byte{{1}}}},
		{"too many fetches", &pb.RevSyncStep{Fetch: make([][]byte, syncMaxFetch+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, received, err := rc.answer(tt.step); err == nil || received != nil {
				t.Fatalf("answered %v, %d received", err, len(received))
			}
		})
	}
}

// FuzzRevSyncStep feeds the reconciler any step: it answers or refuses,
// and never panics.
func FuzzRevSyncStep(f *testing.F) {
	a := newSyncSide()
	for range 300 {
		a.add(randomID())
	}
	seed, _ := proto.Marshal(a.reconciler().first())
	f.Add(seed)
	f.Add([]byte{})
	rng := mrand.New(mrand.NewPCG(1, 2))
	b := newSyncSide()
	for range 50 {
		b.add(identity.AttestationID{byte(rng.IntN(256))})
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m pb.RevSyncStep
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		out, _, err := b.reconciler().answer(&m)
		if err == nil && out == nil {
			t.Fatal("no answer and no error")
		}
	})
}

// TestRevocationReachesARelayThatWasDown: a revocation made while a relay
// is down reaches it when it is back (it reconciles with its peer on
// connecting), and it then refuses what rests on it.
func TestRevocationReachesARelayThatWasDown(t *testing.T) {
	cfg := DefaultConfig()
	keys := federation(&cfg, 2)
	r1 := startRelayWithKey(t, keys[0], nil, WithConfig(cfg))
	cfg.Peers = []string{r1.h.Addrs()[0].String() + "/p2p/" + r1.h.ID().String()}
	key2 := keys[1]
	d2 := dssync.MutexWrap(ds.NewMapDatastore())
	r2 := startRelayWithKey(t, key2, d2, WithConfig(cfg))
	waitFor(t, "relays connected", func() bool { return len(r2.h.Network().ConnsToPeer(r1.h.ID())) > 0 })
	c := newCast(t)

	// r2 goes down; Carol unfriends Alice at r1.
	r2.Close()
	r2.h.Close()
	att, _ := identity.NewVerifier().Attestation(c.att[c.carol.id], time.Now())
	rev, _ := identity.Revoke(c.carol.key, att, time.Now())
	c.carol.meet(r1)
	if _, err := client.Revoke(context.Background(), c.carol.h, r1.h.ID(), [][]byte{rev}); err != nil {
		t.Fatal(err)
	}
	if !r1.store.revoked.Revoked(att.ID) {
		t.Fatal("r1 did not apply the revocation")
	}

	// r2 comes back on its datastore and learns it.
	r2 = startRelayWithKey(t, key2, d2, WithConfig(cfg))
	waitFor(t, "the revocation reaching the relay that was down", func() bool { return r2.store.revoked.Revoked(att.ID) })
	resp, err := c.alice.share(r2, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
	if err == nil || resp.Status != pb.Status_REFUSED || resp.Failures[0].Reason != pb.Reason_REVOKED {
		t.Fatalf("a share on the revoked friendship at the relay that was down: %v %v", resp, err)
	}
}
