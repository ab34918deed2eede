package rendezvous

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// recordingDS remembers every key written under the mailbox item prefix.
type recordingDS struct {
	ds.Batching
	mu    sync.Mutex
	items map[string]bool
}

func newRecordingDS() *recordingDS {
	return &recordingDS{Batching: dssync.MutexWrap(ds.NewMapDatastore()), items: map[string]bool{}}
}

func (r *recordingDS) note(k ds.Key) {
	if strings.HasPrefix(k.String(), prefixMbox) {
		r.mu.Lock()
		r.items[k.String()] = true
		r.mu.Unlock()
	}
}

func (r *recordingDS) written() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

func (r *recordingDS) Put(ctx context.Context, k ds.Key, v []byte) error {
	r.note(k)
	return r.Batching.Put(ctx, k, v)
}

func (r *recordingDS) Batch(ctx context.Context) (ds.Batch, error) {
	b, err := r.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &recordingBatch{Batch: b, r: r}, nil
}

type recordingBatch struct {
	ds.Batch
	r *recordingDS
}

func (b *recordingBatch) Put(ctx context.Context, k ds.Key, v []byte) error {
	b.r.note(k)
	return b.Batch.Put(ctx, k, v)
}

// heldWorld starts a relay with deliver_wait set to wait over a recording
// datastore, logs bob in and builds one share from alice to him.
func heldWorld(t *testing.T, wait time.Duration) (*recordingDS, *testRelay, *cast, *client.Inbox, *protocols.UnverifiedShare) {
	t.Helper()
	d := newRecordingDS()
	cfg := DefaultConfig()
	cfg.DeliverWait = Duration(wait)
	r := startRelay(t, d, WithConfig(cfg))
	c := newCast(t)
	inbox := c.bob.login(r)
	return d, r, c, inbox, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
}

// TestOnlineDeliveryWritesNoItem: shares to a target that is online and
// acknowledges are pushed from memory and never written as mailbox items;
// only their id records are, so that retries stay idempotent.
func TestOnlineDeliveryWritesNoItem(t *testing.T) {
	d := newRecordingDS()
	r := startRelay(t, d)
	c := newCast(t)
	ackAll(c.bob.login(r), nil)
	for i := range 20 {
		s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
		resp, err := c.alice.share(r, s.Raw)
		if err != nil || delivery(resp, c.bob.id) != pb.Delivery_DELIVERED {
			t.Fatalf("share %d: %v %v", i, resp, err)
		}
		// A retry is answered from the id record, and not pushed again.
		if resp, err := c.alice.share(r, s.Raw); err != nil || delivery(resp, c.bob.id) != pb.Delivery_DELIVERED {
			t.Fatalf("retry of share %d: %v %v", i, resp, err)
		}
		if v, err := d.Get(context.Background(), mboxIDKey(c.bob.id, string(s.ID[:]))); err != nil || len(v) == 0 {
			t.Fatalf("no id record for share %d: %v", i, err)
		}
	}
	if n := d.written(); n != 0 {
		t.Fatalf("%d mailbox items written for an online target that acknowledged them all", n)
	}
}

// TestHeldItemStoredWhenNotAcknowledged: a target online that does not
// acknowledge within deliver_wait: the item is written before the sender
// hears "stored", survives a restart and comes at the next login.
func TestHeldItemStoredWhenNotAcknowledged(t *testing.T) {
	d, r, c, inbox, s := heldWorld(t, 300*time.Millisecond)
	resp, err := c.alice.share(r, s.Raw)
	if err != nil || delivery(resp, c.bob.id) != pb.Delivery_STORED {
		t.Fatalf("share: %v %v, want STORED", resp, err)
	}
	if d.written() != 1 {
		t.Fatalf("%d items written, want 1 before the sender heard STORED", d.written())
	}
	first := next(t, inbox) // pushed, never acknowledged
	inbox.Close()
	r.Close()
	r.h.Close()

	r2 := startRelay(t, d)
	in2 := c.bob.login(r2)
	if in2.Result.Waiting != 1 {
		t.Fatalf("%d waiting after the restart, want 1", in2.Result.Waiting)
	}
	it := next(t, in2)
	if it.Seq != first.Seq || string(it.Id) != string(s.ID[:]) {
		t.Fatalf("after restart: seq %d id %x, want seq %d id %s", it.Seq, it.Id, first.Seq, s.ID)
	}
}

// TestHeldItemStoredWhenSessionEnds: the target goes away while the relay
// holds an item for it: the item is written at once, and the sender,
// waiting for the acknowledgement, hears "stored" without waiting out
// deliver_wait.
func TestHeldItemStoredWhenSessionEnds(t *testing.T) {
	d, r, c, inbox, s := heldWorld(t, 30*time.Second)
	type result struct {
		resp *pb.ShareResponse
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := c.alice.share(r, s.Raw)
		done <- result{resp, err}
	}()
	next(t, inbox)
	inbox.Close()
	res := <-done
	if res.err != nil || delivery(res.resp, c.bob.id) != pb.Delivery_STORED {
		t.Fatalf("share: %v %v, want STORED", res.resp, res.err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the sender waited %v", el)
	}
	if d.written() != 1 || r.Waiting(c.bob.id) != 1 {
		t.Fatalf("%d written, %d waiting; want 1 and 1", d.written(), r.Waiting(c.bob.id))
	}
}

// TestRelayCloseStoresHeldItems: a relay shutting down writes what it held
// in memory.
func TestRelayCloseStoresHeldItems(t *testing.T) {
	d, r, c, inbox, s := heldWorld(t, 30*time.Second)
	go c.alice.share(r, s.Raw)
	next(t, inbox)
	if d.written() != 0 {
		t.Fatal("the item was written while the target was online and the sender waiting")
	}
	r.Close()
	if d.written() != 1 {
		t.Fatalf("%d items written at close, want 1", d.written())
	}
	r2 := startRelay(t, d)
	if n := r2.Waiting(c.bob.id); n != 1 {
		t.Fatalf("%d waiting after restart, want 1", n)
	}
}

// TestIdleSessionsHaveNoPusher: a logged-in node with nothing to receive
// costs the relay its reader goroutine only; a pusher comes when an item
// does and leaves when it is sent.
func TestIdleSessionsHaveNoPusher(t *testing.T) {
	r := startRelay(t, nil)
	c := newCast(t)
	pushers := func() int {
		var buf bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&buf, 1)
		return strings.Count(buf.String(), "rendezvous.(*Relay).pushInbox")
	}
	inbox := c.bob.login(r)
	c.erin.login(r)
	waitFor(t, "no pusher while idle", func() bool { return pushers() == 0 })
	s := c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol})
	go c.alice.share(r, s.Raw)
	it := next(t, inbox)
	inbox.Ack(it.Seq)
	waitFor(t, "the pusher gone after the push", func() bool { return pushers() == 0 })
	// And it comes back for the next item.
	go c.alice.share(r, c.buildShare(t, []*tuser{c.bob}, []*tuser{c.carol}).Raw)
	next(t, inbox)
}
