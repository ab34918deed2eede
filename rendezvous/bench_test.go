package rendezvous

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	protopb "github.com/kithnet/kith/protocols/pb"
)

// Benchmarks of the relay's hot paths. The machine is shared: compare
// ratios within one run.

type benchSharer struct {
	key    crypto.PrivKey
	id     peer.ID
	target peer.ID
	spec   protocols.ShareSpec
}

func benchAttestation(b testing.TB, a, c crypto.PrivKey) []byte {
	b.Helper()
	cid, _ := peer.IDFromPrivateKey(c)
	offer, err := identity.MakeOffer(a, cid, time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	att, err := identity.NewVerifier().Countersign(c, offer, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return att.Raw
}

// newBenchSharer is a sharer with a target and five friends to share.
func newBenchSharer(b testing.TB) *benchSharer {
	k, _ := identity.GenerateKey()
	tk, _ := identity.GenerateKey()
	s := &benchSharer{key: k}
	s.id, _ = peer.IDFromPrivateKey(k)
	s.target, _ = peer.IDFromPrivateKey(tk)
	enc, err := identity.GenerateEncKey(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	s.spec = protocols.ShareSpec{SharerName: "bench", Targets: []protocols.ShareTarget{{Peer: s.target, Attestation: benchAttestation(b, k, tk), Key: enc.Public()}}}
	for range 5 {
		ik, _ := identity.GenerateKey()
		iid, _ := peer.IDFromPrivateKey(ik)
		// Each item carries its profile, as a node's share does: with its
		// encryption key and its name sealed.
		ienc, _ := identity.GenerateEncKey(time.Now())
		pk := identity.NewProfileKey()
		prof, _ := identity.NewProfile(ik, identity.ProfileInfo{Name: "friend", Seq: 1, EncKey: ienc.Public(), ProfileKey: &pk}, time.Now())
		s.spec.Items = append(s.spec.Items, protocols.ShareItem{Peer: iid, Name: "friend", Attestation: benchAttestation(b, k, ik), Profile: prof})
	}
	return s
}

func (s *benchSharer) share(b testing.TB) *protocols.UnverifiedShare {
	spec := s.spec
	spec.CreatedAt = time.Now()
	spec.Items = append([]protocols.ShareItem(nil), spec.Items...)
	u, err := protocols.BuildShare(s.key, spec)
	if err != nil {
		b.Fatal(err)
	}
	return u
}

// BenchmarkVerifyShare is what the relay pays to verify a share of five
// friends: cold (the seal and 12 attestation signatures) and warm (the
// attestations seen in earlier shares; the new seal's one signature).
func BenchmarkVerifyShare(b *testing.B) {
	s := newBenchSharer(b)
	b.Run("cold", func(b *testing.B) {
		sh := s.share(b)
		v := identity.NewVerifier(identity.WithCacheSize(0))
		for b.Loop() {
			if _, err := protocols.VerifyShare(v, sh, time.Now(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		v := identity.NewVerifier()
		protocols.VerifyShare(v, s.share(b), time.Now(), nil)
		shares := make([]*protocols.UnverifiedShare, b.N)
		for i := range shares {
			shares[i] = s.share(b)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := protocols.VerifyShare(v, shares[i], time.Now(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMailbox stores items for one recipient through the store (one
// operation per item, as shares arrive) and drains them (read, push
// bytes, acknowledge in batches of 64), on the in-memory datastore and on
// go-ds-pebble with synced writes.
func BenchmarkMailbox(b *testing.B) {
	backends := map[string]func(b *testing.B) ds.Batching{
		"memory": func(*testing.B) ds.Batching { return dssync.MutexWrap(ds.NewMapDatastore()) },
		"pebble": func(b *testing.B) ds.Batching { return tempPebble(b) },
	}
	for _, name := range []string{"memory", "pebble"} {
		b.Run(name+"/store", func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MailboxItems = 1 << 30
			cfg.MailboxBytes = 1 << 40
			st, err := openStore(context.Background(), backends[name](b), &cfg, time.Now, testLogger(b), storeHooks{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.close()
			r := testPeer(b)
			payload := make([]byte, 2000)
			i := 0
			for b.Loop() {
				if _, err := st.put(context.Background(), []newItem{{recipient: r, id: fmt.Sprint(i), kind: protopb.ItemKind_SHARE, payload: payload}}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		// The same per-item cost at 1,000 and 12,000 items says the
		// drain is linear (ns/item is reported for that comparison).
		for _, n := range []int{1000, 12000} {
			b.Run(fmt.Sprintf("%s/drain-%d", name, n), func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.MailboxItems = n
				cfg.MailboxBytes = int64(n) << 12
				for b.Loop() {
					b.StopTimer()
					st, err := openStore(context.Background(), backends[name](b), &cfg, time.Now, testLogger(b), storeHooks{})
					if err != nil {
						b.Fatal(err)
					}
					r := testPeer(b)
					items := make([]newItem, n)
					for i := range items {
						items[i] = newItem{recipient: r, id: fmt.Sprint(i), kind: protopb.ItemKind_SHARE, payload: make([]byte, 2000)}
					}
					if _, err := st.put(context.Background(), items); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					var after uint64
					drained := 0
					for {
						seqs, got, _, _ := st.itemsAfter(context.Background(), r, after, 64)
						if len(seqs) == 0 {
							break
						}
						if len(got) != len(seqs) {
							b.Fatalf("%d items for %d seqs", len(got), len(seqs))
						}
						if _, err := st.ack(context.Background(), r, seqs); err != nil {
							b.Fatal(err)
						}
						after = seqs[len(seqs)-1]
						drained += len(seqs)
					}
					b.StopTimer()
					if drained != n {
						b.Fatalf("drained %d of %d", drained, n)
					}
					st.close()
					b.StartTimer()
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
			})
		}
	}
}

// BenchmarkHandleShare is the relay's whole handling of one share in
// process, without the network: decode, verify (warm), replay check,
// store for an offline target, answer.
func BenchmarkHandleShare(b *testing.B) {
	r := startRelay(b, nil, WithConfig(func() Config {
		c := DefaultConfig()
		c.ShareRate = Rate{PerSecond: 1e9, Burst: 1 << 30}
		c.MailboxItems = 1 << 30
		c.MailboxBytes = 1 << 40
		return c
	}()))
	s := newBenchSharer(b)
	shares := make([][]byte, b.N+1)
	for i := range shares {
		shares[i] = s.share(b).Raw
	}
	r.acceptShare(context.Background(), s.id, shares[b.N], nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if resp := r.acceptShare(context.Background(), s.id, shares[i], nil); resp.Status != protopb.Status_OK {
			b.Fatalf("%v %s", resp.Status, resp.Text)
		}
	}
	b.ReportMetric(float64(len(shares[0])), "share-bytes")
}

// BenchmarkRevokeBusySender is a revocation by a sender with n delivered
// items on a pebble store: it reads every item from or to either friend
// (see storedDep) and withdraws the fifth of them that rest on the
// revoked friendship, withdrawChunk items per commit.
func BenchmarkRevokeBusySender(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				cfg := DefaultConfig()
				cfg.MailboxItems = 1 << 30
				cfg.MailboxBytes = 1 << 40
				st, err := openStore(ctx, tempPebble(b), &cfg, time.Now, testLogger(b), storeHooks{})
				if err != nil {
					b.Fatal(err)
				}
				rev := realRevocation(b)
				bob := testPeer(b)
				items := make([]newItem, n)
				seqs := make([]uint64, n)
				for i := range items {
					dep := identity.AttestationID{byte(i), byte(i >> 8), 1}
					if i%5 == 0 {
						dep = rev.AttestationID
					}
					items[i] = sent(rev.Revoker, bob, fmt.Sprint(i), dep)
					items[i].payload = make([]byte, 2000)
					seqs[i] = uint64(i + 1)
				}
				for chunk := range slices.Chunk(items, 1000) {
					if _, err := st.put(ctx, chunk); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := st.ack(ctx, bob, seqs); err != nil {
					b.Fatal(err)
				}
				st.mu.Lock()
				st.mb.forget(time.Now().Add(time.Hour)) // delivered long ago: on disk only
				st.mu.Unlock()
				b.StartTimer()
				if _, err := st.revoke(ctx, rev); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := len(st.pending(bob, 0, n)); got != n/5 {
					b.Fatalf("%d withdrawal notices, want %d", got, n/5)
				}
				st.close()
				b.StartTimer()
			}
		})
	}
}
