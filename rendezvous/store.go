package rendezvous

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/rendezvous/pb"
)

// ErrClosed is returned for work submitted after the relay began closing.
var ErrClosed = errors.New("rendezvous: closed")

// maxGroup bounds how many operations share one datastore batch.
const maxGroup = 256

// store is the durable state of a relay: mailboxes, share records,
// revocations and profiles in a go-datastore. Every change goes through one
// committer goroutine that applies a group of operations to the model and
// writes all their mutations in one atomic batch (one sync for the group),
// then answers each operation. An operation is acknowledged only after its
// batch committed.
type store struct {
	ds    ds.Batching
	clock func() time.Time
	log   *slog.Logger

	// writeErr is the error of the last datastore write, nil once one
	// succeeds: readiness reports it.
	writeErr atomic.Pointer[error]

	mu       sync.Mutex // guards mb and profiles
	mb       *mailboxes
	profiles map[peer.ID]*identity.Profile
	revoked  *revocationSet
	seen     *seenShares // which share ids have records, without reading them
	// withdrawing holds the revocations whose delivered items a stopped
	// relay had not finished withdrawing, found by load.
	withdrawing []*identity.Revocation

	ops    chan *op
	quit   chan struct{}
	done   chan struct{}
	closed sync.Once
	hooks  storeHooks
}

// storeHooks are how the store tells the relay around it what happened,
// given to openStore so that they are in place before its first commit.
// Nil hooks do nothing.
type storeHooks struct {
	notify func(touched []peer.ID) // mailboxes that gained items
	// online reports whether r has an inbox session now, and its window:
	// items for such a recipient may be held in memory (see newItem.hold).
	online func(r peer.ID) (window int, ok bool)
	onDrop func(n int)                    // expired items dropped
	onSync func(d time.Duration, ops int) // a batch committed: its time and operations
}

func (h *storeHooks) defaults() {
	if h.notify == nil {
		h.notify = func([]peer.ID) {}
	}
	if h.online == nil {
		h.online = func(peer.ID) (int, bool) { return 0, false }
	}
	if h.onDrop == nil {
		h.onDrop = func(int) {}
	}
	if h.onSync == nil {
		h.onSync = func(time.Duration, int) {}
	}
}

// op is one unit of work for the committer. apply runs with the model
// locked and records mutations in tx; it must leave the model unchanged
// when it returns an error.
type op struct {
	apply func(tx *txn) error
	lazy  bool // losing it in a crash is harmless: no sync needed
	err   error
	done  chan struct{}
}

// txn collects a group's mutations and lets later operations in the group
// read what earlier ones wrote.
type txn struct {
	s       *store
	cur     *op // the operation being applied
	now     time.Time
	muts    []mutation
	pending map[ds.Key]*mutation
	touched []peer.ID
}

// put puts it into the model and records what that writes, and that its
// recipient's mailbox gained an item. A record of its id that only the
// datastore holds is recalled first, so that a retry long after delivery
// is still answered as one.
func (tx *txn) put(it newItem) putResult {
	tx.recall(it.recipient, it.id)
	return tx.putNew(it)
}

// putNew is put for an item whose id cannot have a record: the id of a
// share the relay has no record of.
func (tx *txn) putNew(it newItem) putResult {
	r, muts := tx.s.mb.put(it, tx.now)
	if r.outcome == putStored {
		tx.add(muts...)
		tx.touched = append(tx.touched, it.recipient)
	}
	return r
}

// recall brings r's record of id from the datastore into the model if
// the model does not hold it. A record that cannot be read is treated as
// absent: the item is stored again, and the node drops what it already
// has by id.
func (tx *txn) recall(r peer.ID, id string) {
	if tx.s.mb.knows(r, id) {
		return
	}
	v, err := tx.get(context.Background(), mboxIDKey(r, id))
	if err != nil {
		if !errors.Is(err, ds.ErrNotFound) {
			tx.s.log.Warn("reading an item's id record", "recipient", r, "err", err)
		}
		return
	}
	var rec pb.ItemRecord
	if err := proto.Unmarshal(v, &rec); err != nil {
		tx.s.log.Warn("unreadable item id record", "recipient", r, "err", err)
		return
	}
	tx.s.mb.recall(r, id, idRecordOf(&rec), tx.now)
}

// noSync marks the current operation as one whose loss in a crash is
// harmless (see doLazy), once its apply has seen what it writes.
func (tx *txn) noSync() { tx.cur.lazy = true }

func (tx *txn) add(ms ...mutation) {
	for i := range ms {
		tx.muts = append(tx.muts, ms[i])
		m := ms[i]
		tx.pending[m.key] = &m
	}
}

// get reads key as it will be once the group commits.
func (tx *txn) get(ctx context.Context, key ds.Key) ([]byte, error) {
	if m, ok := tx.pending[key]; ok {
		if m.del {
			return nil, ds.ErrNotFound
		}
		return m.value, nil
	}
	return tx.s.ds.Get(ctx, key)
}

func openStore(ctx context.Context, d ds.Batching, cfg *Config, clock func() time.Time, log *slog.Logger, hooks storeHooks) (*store, error) {
	hooks.defaults()
	s := &store{
		hooks: hooks,
		ds:    d, clock: clock, log: log,
		profiles: map[peer.ID]*identity.Profile{},
		revoked:  newRevocationSet(),
		seen:     newSeenShares(1 << 16),
		ops:      make(chan *op, 4*maxGroup),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.mb = newMailboxes(cfg.quota(), cfg.MailboxTTL.D(), s.revoked.Revoked)
	s.mb.recentTTL = cfg.DeliverWait.D() + recentSlack
	s.mb.budget = cfg.budget()
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	go s.run()
	for _, rev := range s.withdrawing {
		if err := s.withdrawDelivered(ctx, rev); err != nil {
			s.close()
			return nil, fmt.Errorf("rendezvous: finish withdrawing what rested on %s: %w", rev.AttestationID, err)
		}
		log.Info("finished withdrawing what rested on a revoked friendship", "attestation", rev.AttestationID.String())
	}
	s.withdrawing = nil
	return s, nil
}

// recentSlack is how long past deliver_wait a settled id record stays in
// memory: a sender's retry within it needs no datastore read. Nothing
// depends on it for correctness; records are recalled from disk.
const recentSlack = 10 * time.Second

// do submits an operation and waits until its batch is durable.
func (s *store) do(ctx context.Context, apply func(tx *txn) error) error {
	return s.submit(ctx, &op{apply: apply, done: make(chan struct{})})
}

// doLazy is do for changes whose loss in a crash is harmless, so their
// batch need not wait for a sync: acknowledgements (an item whose delete is
// lost is delivered again, and its id makes that harmless) and profile
// registrations (the node registers again at its next login). A later
// synced batch makes them durable too, since the write-ahead log is
// written in order.
func (s *store) doLazy(ctx context.Context, apply func(tx *txn) error) error {
	return s.submit(ctx, &op{apply: apply, lazy: true, done: make(chan struct{})})
}

func (s *store) submit(ctx context.Context, o *op) error {
	select {
	case <-s.quit:
		return ErrClosed
	default:
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		// The operation may still commit; callers retry with the same ids,
		// which are idempotent.
		return ctx.Err()
	}
}

// close stops the committer after it has finished queued work and
// written every item held in memory.
func (s *store) close() {
	s.closed.Do(func() {
		err := s.do(context.Background(), func(tx *txn) error {
			for r := range s.mb.boxes {
				tx.add(s.mb.persistHeld(r)...)
			}
			return nil
		})
		if err != nil {
			s.log.Error("writing held items at close failed", "err", err)
		}
		close(s.quit)
	})
	<-s.done
}
