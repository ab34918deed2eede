package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/protocols"
)

// failingStore fails every batch commit while fail is set.
type failingStore struct {
	ds.Batching
	fail atomic.Bool
}

func (f *failingStore) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := f.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &failingBatch{Batch: b, s: f}, nil
}

type failingBatch struct {
	ds.Batch
	s *failingStore
}

func (b *failingBatch) Commit(ctx context.Context) error {
	if b.s.fail.Load() {
		return errors.New("disk full")
	}
	return b.Batch.Commit(ctx)
}

// TestBookkeepingWriteFailure: bookkeeping whose write fails (note) is
// logged, and the book goes back to what the disk says, so that nothing
// is believed done that is not recorded; once writes work again, so does
// the node.
func TestBookkeepingWriteFailure(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	key, _ := identity.GenerateKey()
	h, err := mn.AddPeer(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := &failingStore{Batching: dssync.MutexWrap(ds.NewMapDatastore())}
	var logs bytes.Buffer
	n, err := New(context.Background(), h, store, key, WithName("Alice"),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	store.fail.Store(true)
	n.note(func(b *book.Book) []book.Mutation {
		muts, err := b.CreateGroup("work")
		if err != nil {
			t.Fatal(err)
		}
		return muts
	})
	if !strings.Contains(logs.String(), "datastore write failed") || !strings.Contains(logs.String(), "disk full") {
		t.Fatalf("the failed write was not logged: %q", logs.String())
	}
	if len(n.Groups()) != 0 {
		t.Fatalf("the book believes what the disk does not hold: %+v", n.Groups())
	}

	store.fail.Store(false)
	n.note(func(b *book.Book) []book.Mutation { muts, _ := b.CreateGroup("work"); return muts })
	if g := n.Groups(); len(g) != 1 || g[0].Name != "work" {
		t.Fatalf("after writes work again: %+v", g)
	}
}

// TestFlushLeavesClaimedRequestsAlone: a queued request that a pick, an
// invite or an accept is sending now is not taken by flush (it would
// reach its recipient twice), and one flush's claim keeps the next flush
// off it until released.
func TestFlushLeavesClaimedRequestsAlone(t *testing.T) {
	mn := mocknet.New()
	defer mn.Close()
	ctx := context.Background()
	start := func(name string) *Node {
		key, _ := identity.GenerateKey()
		h, err := mn.AddPeer(key, nil)
		if err != nil {
			t.Fatal(err)
		}
		n, err := New(ctx, h, dssync.MutexWrap(ds.NewMapDatastore()), key, WithName(name),
			WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	alice, bob := start("Alice"), start("Bob")
	id, err := bob.IDView()
	if err != nil {
		t.Fatal(err)
	}
	v, err := alice.AddInvite(ctx, id.Invite, "") // no relay, no route: it stays queued
	if err != nil {
		t.Fatal(err)
	}
	rid, _ := protocols.ParseRequestID(v.ID)
	key := "request/" + rid.String()

	alice.mu.Lock()
	alice.claimMaking(key) // as a pick sending it would
	reqs, _ := alice.claimUnsent()
	alice.mu.Unlock()
	if len(reqs) != 0 {
		t.Fatalf("flush took a request being sent: %d", len(reqs))
	}
	alice.releaseMaking(key)

	alice.mu.Lock()
	first, _ := alice.claimUnsent()
	second, _ := alice.claimUnsent()
	alice.mu.Unlock()
	if len(first) != 1 || first[0].ID != rid || len(second) != 0 {
		t.Fatalf("first flush %d, second %d: want 1 then 0", len(first), len(second))
	}
}
