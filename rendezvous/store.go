package rendezvous

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	protopb "github.com/kithnet/kith/protocols/pb"
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

	mu       sync.Mutex // guards mb and profiles
	mb       *mailboxes
	profiles map[peer.ID]*identity.Profile
	revoked  *identity.RevocationSet
	seen     *seenShares // which share ids have records, without reading them
	// withdrawing holds the revocations whose delivered items a stopped
	// relay had not finished withdrawing, found by load.
	withdrawing []*identity.Revocation

	ops    chan *op
	quit   chan struct{}
	done   chan struct{}
	closed sync.Once
	notify func(touched []peer.ID) // mailboxes that gained items
	// online reports whether r has an inbox session now, and its window:
	// items for such a recipient may be held in memory (see newItem.hold).
	online func(r peer.ID) (window int, ok bool)
	onDrop func(n int) // expired items dropped
	onSync func(d time.Duration, ops int)
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

func openStore(ctx context.Context, d ds.Batching, cfg *Config, clock func() time.Time, log *slog.Logger) (*store, error) {
	s := &store{
		ds: d, clock: clock, log: log,
		profiles: map[peer.ID]*identity.Profile{},
		revoked:  identity.NewRevocationSet(),
		seen:     newSeenShares(1 << 16),
		ops:      make(chan *op, 4*maxGroup),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		notify:   func([]peer.ID) {},
		online:   func(peer.ID) (int, bool) { return 0, false },
		onDrop:   func(int) {},
		onSync:   func(time.Duration, int) {},
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

// load rebuilds the model from the datastore.
func (s *store) load(ctx context.Context) error {
	verifier := identity.NewVerifier(identity.WithCacheSize(0))
	mb := newMailboxes(s.mb.quota, s.mb.ttl, s.revoked.Revoked)
	mb.recentTTL = s.mb.recentTTL
	mb.budget = s.mb.budget
	layout, err := s.ds.Get(ctx, layoutKey)
	if err != nil && !errors.Is(err, ds.ErrNotFound) {
		return fmt.Errorf("rendezvous: load layout: %w", err)
	}
	if len(layout) > 0 && string(layout) != layoutVersion {
		return fmt.Errorf("rendezvous: the datastore was written by a newer relay (key layout %q; this relay reads %q)", layout, layoutVersion)
	}
	// A datastore written before layout 2 kept delivered items'
	// dependencies only in their id records: index them once.
	migrate := len(layout) == 0
	var migration []mutation
	var withdrawing []*identity.Revocation
	now := s.clock()
	scan := func(prefix string, keysOnly bool, f func(rest []string, value []byte) error) error {
		res, err := s.ds.Query(ctx, query.Query{Prefix: prefix, KeysOnly: keysOnly})
		if err != nil {
			return fmt.Errorf("rendezvous: load %s: %w", prefix, err)
		}
		defer res.Close()
		for r := range res.Next() {
			if r.Error != nil {
				return fmt.Errorf("rendezvous: load %s: %w", prefix, r.Error)
			}
			if err := f(splitKey(r.Key, prefix), r.Value); err != nil {
				// A record we cannot read is logged and skipped: one bad
				// record must not keep the relay from serving everyone else.
				s.log.Warn("skipping unreadable record", "key", r.Key, "err", err)
			}
		}
		return nil
	}
	// Id records are read only to index an older datastore: pending items'
	// records are rebuilt from the items, and settled ones stay on disk, so
	// a relay's start does not grow with its history.
	migrateScan := func(f func(k []string, v []byte) error) error {
		if !migrate {
			return nil
		}
		return scan(prefixMboxID, false, f)
	}
	// The replay filter is rebuilt from the share records, counted first
	// so that it is sized without holding every id (two passes over the
	// keys, on pebble without the query machinery).
	shareKeys := func(f func(key string)) error {
		return s.each(ctx, prefixShares, func(k string, _ []byte) { f(k) })
	}
	shares := 0
	if err := shareKeys(func(string) { shares++ }); err != nil {
		return fmt.Errorf("rendezvous: load %s: %w", prefixShares, err)
	}
	rebuild := s.seen.begin(2 * shares)
	err = errors.Join(
		shareKeys(func(k string) {
			id, err := identity.ParseShareID(strings.TrimPrefix(k, prefixShares))
			if err != nil {
				s.log.Warn("skipping unreadable record", "key", k, "err", err)
				return
			}
			s.seen.include(rebuild, id)
		}),
		scan(prefixRevoked, false, func(_ []string, v []byte) error {
			r, err := verifier.Revocation(v)
			if err != nil {
				return err
			}
			s.revoked.Add(r)
			return nil
		}),
		scan(prefixWithdraw, false, func(_ []string, v []byte) error {
			r, err := verifier.Revocation(v)
			if err != nil {
				return err
			}
			withdrawing = append(withdrawing, r)
			return nil
		}),
		scan(prefixProfiles, false, func(_ []string, v []byte) error {
			p, err := verifier.Profile(v, s.clock().Add(identity.DefaultClockSkew))
			if err != nil {
				return err
			}
			s.profiles[p.Owner] = p
			return nil
		}),
		scan(prefixMboxMeta, false, func(k []string, v []byte) error {
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			var meta pb.BoxMeta
			if err := proto.Unmarshal(v, &meta); err != nil {
				return err
			}
			mb.loadMeta(r, &meta)
			return nil
		}),
		scan(prefixMbox, false, func(k []string, v []byte) error {
			if len(k) != 2 {
				return fmt.Errorf("bad key")
			}
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			seq, err := parseSeq(k[1])
			if err != nil {
				return err
			}
			var st pb.StoredItem
			if err := proto.Unmarshal(v, &st); err != nil {
				return err
			}
			var item protopb.InboxItem
			if err := proto.Unmarshal(st.Item, &item); err != nil {
				return err
			}
			from, _ := peer.IDFromBytes(item.From)
			mb.loadItem(r, seq, len(v), &st, item.Kind, from)
			if migrate {
				// Layout 2 lists a stored item from when it is stored.
				rec, _ := mb.state(r, string(st.Id))
				migration = append(migration, indexEntries(r, string(st.Id), rec)...)
			}
			return nil
		}),
		migrateScan(func(k []string, v []byte) error {
			if len(k) != 2 {
				return fmt.Errorf("bad key")
			}
			r, err := parsePeerText(k[0])
			if err != nil {
				return err
			}
			id, err := parseHexID(k[1])
			if err != nil {
				return err
			}
			var rec pb.ItemRecord
			if err := proto.Unmarshal(v, &rec); err != nil {
				return err
			}
			if rec.State == pb.ItemState_ACKED && now.Unix() < rec.ExpiresAt {
				for _, a := range idRecordOf(&rec).deps {
					if !s.revoked.Revoked(a) {
						migration = append(migration, mutation{key: mboxDepKey(a, r, id), value: expiryValue(rec.ExpiresAt)})
					}
				}
			}
			return nil
		}),
	)
	if err != nil {
		s.seen.abort(rebuild)
		return err
	}
	if migrate {
		migration = append(migration, mutation{key: layoutKey, value: []byte(layoutVersion)})
		if err := s.write(migration, true); err != nil {
			s.seen.abort(rebuild)
			return fmt.Errorf("rendezvous: index delivered items: %w", err)
		}
		if len(migration) > 1 {
			s.log.Info("indexed delivered items by attestation", "entries", len(migration)-1)
		}
	}
	mb.finishLoad()
	s.mb = mb
	s.withdrawing = withdrawing
	s.seen.finish(rebuild)
	return nil
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

func (s *store) run() {
	defer close(s.done)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Finish what was already queued, then stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
		group := []*op{first}
	drain:
		for len(group) < maxGroup {
			select {
			case o := <-s.ops:
				group = append(group, o)
			default:
				break drain
			}
		}
		s.commit(group)
	}
}

func (s *store) commit(group []*op) {
	tx := &txn{s: s, now: s.clock(), pending: map[ds.Key]*mutation{}}
	s.mu.Lock()
	for _, o := range group {
		tx.cur = o
		o.err = o.apply(tx)
	}
	s.mu.Unlock()
	if len(tx.muts) > 0 {
		start := time.Now()
		lazy := true
		for _, o := range group {
			lazy = lazy && o.lazy
		}
		if err := s.write(tx.muts, !lazy); err != nil {
			s.log.Error("datastore commit failed; reloading state", "err", err, "ops", len(group))
			s.mu.Lock()
			if lerr := s.load(context.Background()); lerr != nil {
				s.log.Error("reload failed", "err", lerr)
			}
			s.mu.Unlock()
			for _, o := range group {
				if o.err == nil {
					o.err = fmt.Errorf("rendezvous: store: %w", err)
				}
			}
			tx.touched = nil
		} else {
			s.onSync(time.Since(start), len(group))
		}
	}
	if len(tx.touched) > 0 {
		s.notify(tx.touched)
	}
	for _, o := range group {
		close(o.done)
	}
}

// unsyncedBatcher is a datastore that can also commit a batch without
// waiting for a sync (see pebbleStore).
type unsyncedBatcher interface {
	UnsyncedBatch(ctx context.Context) (ds.Batch, error)
}

func (s *store) write(muts []mutation, sync bool) error {
	ctx := context.Background()
	var b ds.Batch
	var err error
	if u, ok := s.ds.(unsyncedBatcher); ok && !sync {
		b, err = u.UnsyncedBatch(ctx)
	} else {
		b, err = s.ds.Batch(ctx)
	}
	if err != nil {
		return err
	}
	for _, m := range muts {
		if m.del {
			err = b.Delete(ctx, m.key)
		} else {
			err = b.Put(ctx, m.key, m.value)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(ctx)
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

// ---- operations

// orderedScanner is a datastore that can scan a key range in order from a
// start key (see PebbleStore); the store uses it to read a mailbox in one
// pass instead of one lookup per item.
type orderedScanner interface {
	ScanFrom(prefix, start []byte, f func(key, value []byte) bool) error
}

// itemsAfter returns up to n items of r's mailbox with seqs after `after`,
// in order, with their marshalled InboxItems: one ordered scan where the
// datastore can, else one lookup per pending seq. A seq in the model whose
// batch is not yet on disk ends the list (the commit's kick brings the
// caller back); seqs acknowledged meanwhile are skipped. next is the last
// seq dealt with; more reports that n seqs were wanted and all were dealt
// with, so that more may be waiting after next.
func (s *store) itemsAfter(ctx context.Context, r peer.ID, after uint64, n int) (seqs []uint64, items [][]byte, next uint64, more bool) {
	next = after
	want := s.pendingRefs(r, after, n)
	if len(want) == 0 {
		return nil, nil, after, false
	}
	take := func(seq uint64, stored []byte) {
		var st pb.StoredItem
		if err := proto.Unmarshal(stored, &st); err != nil {
			// Written by us and checked on load: skip it rather than block
			// the mailbox behind it.
			s.log.Warn("skipping unreadable mailbox item", "peer", r, "seq", seq, "err", err)
			return
		}
		seqs = append(seqs, seq)
		items = append(items, st.Item)
	}
	i := 0 // want[:i] are dealt with
	// takeHeld takes the held items at want[i:], which need no read.
	takeHeld := func() {
		for ; i < len(want) && want[i].item != nil; i++ {
			seqs = append(seqs, want[i].seq)
			items = append(items, want[i].item)
			next = want[i].seq
		}
	}
	takeHeld()
	if sc, ok := s.ds.(orderedScanner); ok && i < len(want) {
		prefix := []byte(prefixMbox + peerText(r) + "/")
		err := sc.ScanFrom(prefix, mboxKey(r, want[i].seq).Bytes(), func(key, value []byte) bool {
			seq, err := parseSeq(string(key[len(prefix):]))
			if err != nil {
				return true
			}
			for i < len(want) && want[i].seq < seq {
				if want[i].item != nil {
					takeHeld()
					continue
				}
				if s.isPending(r, want[i].seq) {
					return false // not on disk yet
				}
				next = want[i].seq // acknowledged meanwhile
				i++
			}
			if i == len(want) {
				return false
			}
			if want[i].seq != seq {
				return true // on disk, not in the model: acknowledged or not yet announced
			}
			if want[i].item != nil { // written since want was read
				takeHeld()
			} else {
				take(seq, value)
				next = seq
				i++
			}
			return i < len(want)
		})
		if err != nil {
			s.log.Error("mailbox scan failed", "peer", r, "err", err)
		}
		// Past the last item on disk, only held items can follow.
		if i < len(want) && want[i].item != nil {
			takeHeld()
		}
	} else {
		for ; i < len(want); i++ {
			seq := want[i].seq
			if want[i].item != nil {
				seqs = append(seqs, seq)
				items = append(items, want[i].item)
				next = seq
				continue
			}
			v, err := s.ds.Get(ctx, mboxKey(r, seq))
			if err != nil {
				if s.isPending(r, seq) {
					break // not on disk yet
				}
				next = seq // acknowledged meanwhile
				continue
			}
			take(seq, v)
			next = seq
		}
	}
	return seqs, items, next, len(want) == n && i == len(want)
}

// pendingRefs returns up to n items waiting for r after seq `after`.
func (s *store) pendingRefs(r peer.ID, after uint64, n int) []pendingRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.pendingRefs(r, after, n)
}

// isPending reports whether seq is still waiting in r's mailbox.
func (s *store) isPending(r peer.ID, seq uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.mb.boxes[r]
	return b != nil && b.find(seq) >= 0
}

// depth returns how many items wait for r, and for everyone.
func (s *store) depth(r peer.ID) (mine, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.depth(r), s.mb.total
}

// pendingBytes returns the stored bytes of the items waiting in all
// mailboxes.
func (s *store) pendingBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.bytes
}

// strangersOf returns how many add requests wait in r's mailbox.
func (s *store) strangersOf(r peer.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.mb.boxes[r]; b != nil {
		return b.strangers
	}
	return 0
}

// strangerItems returns how many add requests wait in all mailboxes.
func (s *store) strangerItems() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.strangers
}

// itemState returns what r's mailbox knows of item id.
func (s *store) itemState(r peer.ID, id string) (idRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.state(r, id)
}

// ack deletes acknowledged items durably.
func (s *store) ack(ctx context.Context, r peer.ID, seqs []uint64) ([]uint64, error) {
	var acked []uint64
	err := s.doLazy(ctx, func(tx *txn) error {
		a, muts := s.mb.ack(r, seqs, tx.now)
		acked = a
		tx.add(muts...)
		return nil
	})
	if err != nil {
		return nil, err // the operation may still run: read nothing it writes
	}
	return acked, nil
}

// put stores items, each for its own recipient, in one batch.
func (s *store) put(ctx context.Context, items []newItem) ([]putResult, error) {
	res := make([]putResult, len(items))
	err := s.do(ctx, func(tx *txn) error {
		for i, it := range items {
			res[i] = tx.put(it)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// errReplay is returned by acceptShare for a share id already used for
// other bytes or by another sharer.
var errReplay = errors.New("rendezvous: share id already used")

// shareOutcome is what acceptShare did for each target.
type shareOutcome struct {
	retry   bool        // the same bytes were accepted before
	results []putResult // per target, in order
}

// acceptShare records a share and stores it for each target, atomically;
// a share id seen before is a replay unless it is the same sharer sending
// the same bytes again (a retry), which is answered with what happened the
// first time.
func (s *store) acceptShare(ctx context.Context, rec *pb.ShareRecord, id identity.ShareID, items []newItem) (*shareOutcome, error) {
	out := &shareOutcome{results: make([]putResult, len(items))}
	err := s.do(ctx, func(tx *txn) error {
		key := shareKey(id)
		// Almost every share is new: the in-memory filter says so without
		// a read.
		var old []byte
		err := ds.ErrNotFound
		if _, inGroup := tx.pending[key]; inGroup || s.seen.mayHave(id) {
			old, err = tx.get(ctx, key)
		}
		switch {
		case err == nil:
			var prev pb.ShareRecord
			if perr := proto.Unmarshal(old, &prev); perr == nil && tx.now.Unix() < prev.ExpiresAt {
				if !bytes.Equal(prev.Sharer, rec.Sharer) || !bytes.Equal(prev.BodyHash, rec.BodyHash) {
					return errReplay
				}
				out.retry = true
				for i, it := range items {
					tx.recall(it.recipient, it.id)
					st, ok := s.mb.state(it.recipient, it.id)
					switch {
					case !ok:
						// Refused at quota the first time, or its id
						// record expired: try again.
						out.results[i] = tx.putNew(it)
					case st.state == pb.ItemState_PENDING:
						out.results[i] = putResult{outcome: putDupPending, seq: st.seq, held: s.mb.box(it.recipient).isHeld(st.seq)}
					case st.state == pb.ItemState_ACKED:
						out.results[i] = putResult{outcome: putDupDelivered, seq: st.seq}
					default:
						out.results[i] = putResult{outcome: putWithdrawn, seq: st.seq}
					}
				}
				return nil
			}
		case !errors.Is(err, ds.ErrNotFound):
			return err
		}
		tx.add(mutation{key: key, value: mustMarshal(rec)})
		s.seen.add(id)
		allHeld := true
		for i, it := range items {
			// No record of the share: no item of it was ever stored.
			it.hold = s.mayHold(it.recipient)
			out.results[i] = tx.putNew(it)
			allHeld = allHeld && out.results[i].held
		}
		if allHeld {
			// Nothing the sender will be told rests on this write alone:
			// it hears "delivered" once an acknowledgement is written, or
			// "stored" once persist wrote the item with a sync. A crash
			// before either loses only what the sender will retry.
			tx.noSync()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// mayHold reports whether a new item for r may be held in memory: r is
// online and nothing stored waits before it, so that it will be pushed at
// once, and fewer than r's window are held already.
func (s *store) mayHold(r peer.ID) bool {
	window, ok := s.online(r)
	if !ok {
		return false
	}
	stored, held := s.mb.backlog(r)
	return stored == 0 && held < window
}

// persist makes r's held item durable (a synced write) unless it was
// acknowledged or withdrawn meanwhile, and returns its state: PENDING
// (stored), ACKED or WITHDRAWN. ok is false if the relay no longer knows
// the item (a failed commit reloaded the model), so that the sender must
// be told to retry.
func (s *store) persist(ctx context.Context, r peer.ID, id string, seq uint64) (pb.ItemState, bool, error) {
	var state pb.ItemState
	var ok bool
	err := s.do(ctx, func(tx *txn) error {
		_, muts := s.mb.persist(r, seq)
		tx.add(muts...)
		tx.recall(r, id) // settled long enough ago to have left memory
		rec, known := s.mb.state(r, id)
		state, ok = rec.state, known && rec.seq == seq
		return nil
	})
	if err != nil {
		return 0, false, err // the operation may still run: read nothing it writes
	}
	return state, ok, nil
}

// persistHeld makes every item held for r durable: r's session ended.
func (s *store) persistHeld(ctx context.Context, r peer.ID) error {
	return s.do(ctx, func(tx *txn) error {
		tx.add(s.mb.persistHeld(r)...)
		return nil
	})
}

// shareRecord returns the record of an accepted share, if the relay has one.
func (s *store) shareRecord(ctx context.Context, id identity.ShareID) (*pb.ShareRecord, bool) {
	if !s.seen.mayHave(id) {
		return nil, false
	}
	v, err := s.ds.Get(ctx, shareKey(id))
	if err != nil {
		return nil, false
	}
	var rec pb.ShareRecord
	if proto.Unmarshal(v, &rec) != nil {
		return nil, false
	}
	return &rec, true
}

// revoke records a verified revocation and withdraws what rested on it.
// It reports whether the revocation was new. One operation records it,
// withdraws the items still waiting and marks the revocation as being
// withdrawn; from then on nothing new can rest on the attestation, so the
// delivered items it withdraws are a fixed set, read outside the store's
// lock and withdrawn a chunk per operation (see withdrawDelivered): a
// revocation by a busy sender does not stop every other commit. A relay
// that stops before the last chunk resumes at its next start.
func (s *store) revoke(ctx context.Context, r *identity.Revocation) (bool, error) {
	fresh, unfinished := false, false
	err := s.do(ctx, func(tx *txn) error {
		if s.revoked.Revoked(r.AttestationID) {
			// Heard again while (or after) its withdrawal failed halfway:
			// finish it now rather than at the next start.
			_, err := tx.get(ctx, withdrawingKey(r.AttestationID))
			unfinished = err == nil
			return nil
		}
		fresh = true
		s.revoked.Add(r)
		tx.add(mutation{key: revokedKey(r.AttestationID), value: r.Raw},
			mutation{key: withdrawingKey(r.AttestationID), value: r.Raw})
		touched, muts := s.mb.withdraw(r, tx.now, nil)
		tx.add(muts...)
		tx.touched = append(tx.touched, touched...)
		// Tell the other friend, if this is their relay: the friendship
		// is over. (Every relay hears the revocation; only the one that
		// knows the other friend's profile keeps a notice for them.)
		if s.profiles[r.Other] != nil {
			payload := mustMarshal(&protopb.Withdrawal{ItemId: r.AttestationID[:], Revocation: r.Raw})
			tx.put(newItem{recipient: r.Other, id: withdrawalID("friendship", r.AttestationID),
				kind: protopb.ItemKind_WITHDRAWAL, payload: payload, from: r.Revoker})
		}
		return nil
	})
	if err != nil || !(fresh || unfinished) {
		return fresh, err
	}
	return fresh, s.withdrawDelivered(ctx, r)
}

// withdrawChunk is how many delivered items one operation of
// withdrawDelivered handles.
const withdrawChunk = 512

// withdrawDelivered withdraws the delivered items resting on rev's
// attestation (a withdrawal notice each), then clears the mark revoke
// left. It may run again for the same revocation (after a restart):
// what it already withdrew says so in its record and is skipped.
func (s *store) withdrawDelivered(ctx context.Context, rev *identity.Revocation) error {
	cands, err := s.storedDeps(ctx, rev)
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(cands, withdrawChunk) {
		err := s.do(ctx, func(tx *txn) error {
			for i := range chunk {
				d := &chunk[i]
				d.rec, d.found = idRecord{}, false
				if d.recipient == "" {
					continue // an unreadable index entry: withdraw deletes it
				}
				v, err := tx.get(ctx, mboxIDKey(d.recipient, d.id))
				switch {
				case err == nil:
					var rec pb.ItemRecord
					if proto.Unmarshal(v, &rec) == nil {
						d.rec, d.found = idRecordOf(&rec), true
					}
				case !errors.Is(err, ds.ErrNotFound):
					return fmt.Errorf("rendezvous: read a delivered item's record: %w", err)
				}
			}
			touched, muts := s.mb.withdraw(rev, tx.now, chunk)
			tx.add(muts...)
			tx.touched = append(tx.touched, touched...)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return s.do(ctx, func(tx *txn) error {
		tx.add(mutation{key: withdrawingKey(rev.AttestationID), del: true})
		return nil
	})
}

// storedDeps lists from the datastore the delivered items that may rest
// on rev's attestation: those indexed under it, and those from or to
// either friend (see storedDep). Their records are read when each chunk
// is withdrawn.
func (s *store) storedDeps(ctx context.Context, rev *identity.Revocation) ([]storedDep, error) {
	type ref struct {
		r  peer.ID
		id string
	}
	byRef := map[ref]int{}
	var out []storedDep
	note := func(r peer.ID, id string, keys ...ds.Key) {
		k := ref{r, id}
		i, ok := byRef[k]
		if !ok {
			i = len(out)
			byRef[k] = i
			out = append(out, storedDep{recipient: r, id: id})
		}
		out[i].keys = append(out[i].keys, keys...)
	}
	// Index entries: <prefix><recipient>/<id>.
	indexed := func(prefix string) error {
		return s.each(ctx, prefix, func(k string, _ []byte) {
			parts := splitKey(k, prefix)
			var r peer.ID
			var id string
			err := fmt.Errorf("bad key")
			if len(parts) == 2 {
				if r, err = parsePeerText(parts[0]); err == nil {
					id, err = parseHexID(parts[1])
				}
			}
			if err != nil {
				out = append(out, storedDep{keys: []ds.Key{ds.RawKey(k)}}) // withdraw deletes it
				return
			}
			note(r, id, ds.RawKey(k))
		})
	}
	friends := []peer.ID{rev.Revoker}
	if rev.Other != "" && rev.Other != rev.Revoker {
		friends = append(friends, rev.Other)
	}
	if err := indexed(mboxDepPrefix(rev.AttestationID)); err != nil {
		return nil, fmt.Errorf("rendezvous: read items resting on %s: %w", rev.AttestationID, err)
	}
	for _, p := range friends {
		if err := indexed(mboxFromPrefix(p)); err != nil {
			return nil, fmt.Errorf("rendezvous: read items from %s: %w", p, err)
		}
		// Items to p: its mailbox's records of delivered items that rest
		// on something.
		prefix := prefixMboxID + peerText(p) + "/"
		err := s.each(ctx, prefix, func(k string, v []byte) {
			id, err := parseHexID(strings.TrimPrefix(k, prefix))
			var rec pb.ItemRecord
			if err != nil || proto.Unmarshal(v, &rec) != nil || rec.State != pb.ItemState_ACKED || len(rec.Deps) == 0 {
				return
			}
			note(p, id)
		})
		if err != nil {
			return nil, fmt.Errorf("rendezvous: read items to %s: %w", p, err)
		}
	}
	return out, nil
}

// putProfile keeps p if it is newer than the profile held for its owner.
func (s *store) putProfile(ctx context.Context, p *identity.Profile) error {
	return s.doLazy(ctx, func(tx *txn) error {
		if old := s.profiles[p.Owner]; old != nil && old.Seq > p.Seq {
			return nil
		}
		s.profiles[p.Owner] = p
		tx.add(mutation{key: profileKey(p.Owner), value: p.Raw})
		return nil
	})
}

// allProfiles returns every profile held.
func (s *store) allProfiles() []*identity.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*identity.Profile, 0, len(s.profiles))
	for _, p := range s.profiles {
		out = append(out, p)
	}
	return out
}

// profile returns the newest profile held for p, or nil.
func (s *store) profile(p peer.ID) *identity.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[p]
}

// expire drops expired items and records.
func (s *store) expire(ctx context.Context) error {
	return s.do(ctx, func(tx *txn) error {
		n, muts := s.mb.expire(tx.now)
		tx.add(muts...)
		if n > 0 {
			s.onDrop(n)
		}
		return nil
	})
}

// expireShares deletes share records whose seals have expired (a replay
// of them is refused by the seal's own expiry) and rebuilds the replay
// filter from the records that remain, sized for four times as many as the
// old one held (expired ones included: a roomier filter only has fewer
// false positives, and the next rebuild sizes it for what is live). It
// runs hourly and whenever the filter fills; growing fourfold, the scans
// of a growing relay add up to a third of its records again.
func (s *store) expireShares(ctx context.Context) error {
	now := s.clock().Unix()
	var old []ds.Key
	rebuild := s.seen.begin(4 * s.seen.count())
	visit := func(key string, value []byte) {
		id, err := identity.ParseShareID(strings.TrimPrefix(key, prefixShares))
		if err == nil && shareExpiry(value) > now {
			s.seen.include(rebuild, id)
			return
		}
		old = append(old, ds.RawKey(key))
	}
	if err := s.each(ctx, prefixShares, visit); err != nil {
		s.seen.abort(rebuild)
		return err
	}
	s.seen.finish(rebuild)
	return s.deleteShares(ctx, old)
}

// each calls f with every key and value under prefix, in key order, with
// pebble's iterator where it can (the query machinery costs about 7 us a
// record); the value is valid only during the call.
func (s *store) each(ctx context.Context, prefix string, f func(key string, value []byte)) error {
	if sc, ok := s.ds.(orderedScanner); ok {
		return sc.ScanFrom([]byte(prefix), []byte(prefix), func(k, v []byte) bool {
			f(string(k), v)
			return true
		})
	}
	return queryEach(ctx, s.ds, prefix, f)
}

// queryEach calls f with every key and value under prefix.
func queryEach(ctx context.Context, d ds.Datastore, prefix string, f func(key string, value []byte)) error {
	res, err := d.Query(ctx, query.Query{Prefix: prefix})
	if err != nil {
		return err
	}
	defer res.Close()
	for r := range res.Next() {
		if r.Error != nil {
			return r.Error
		}
		f(r.Key, r.Value)
	}
	return nil
}

// shareExpiry reads a ShareRecord's expires_at without decoding the rest
// (the last one, as a decode would); 0 if the record cannot be read.
func shareExpiry(v []byte) int64 {
	var exp int64
	for len(v) > 0 {
		num, typ, n := protowire.ConsumeTag(v)
		if n < 0 {
			return 0
		}
		v = v[n:]
		if num == 3 && typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return 0
			}
			exp = int64(x)
			v = v[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, v)
		if n < 0 {
			return 0
		}
		v = v[n:]
	}
	return exp
}

// deleteShares deletes share records.
func (s *store) deleteShares(ctx context.Context, keys []ds.Key) error {
	for chunk := range slices.Chunk(keys, 4096) {
		err := s.do(ctx, func(tx *txn) error {
			for _, k := range chunk {
				tx.add(mutation{key: k, del: true})
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// expireSettled deletes, from the datastore, the id records of settled
// items and the index entries of delivered items that have expired: the
// model no longer holds them, so its expire cannot. It returns how many
// keys it deleted. Each key is checked again when it is deleted, in case it
// was written anew since the scan.
func (s *store) expireSettled(ctx context.Context) (int, error) {
	now := s.clock().Unix()
	expiredRecord := func(v []byte) bool {
		var rec pb.ItemRecord
		if proto.Unmarshal(v, &rec) != nil {
			return true
		}
		return rec.State != pb.ItemState_PENDING && now >= rec.ExpiresAt
	}
	expiredDep := func(v []byte) bool { return now >= parseExpiryValue(v) }
	deleted := 0
	for _, kind := range []struct {
		prefix  string
		expired func([]byte) bool
	}{{prefixMboxID, expiredRecord}, {prefixMboxFrom, expiredDep}, {prefixMboxDep, expiredDep}} {
		var old []ds.Key
		err := s.each(ctx, kind.prefix, func(k string, v []byte) {
			if kind.expired(v) {
				old = append(old, ds.RawKey(k))
			}
		})
		if err != nil {
			return deleted, err
		}
		for chunk := range slices.Chunk(old, 4096) {
			err := s.do(ctx, func(tx *txn) error {
				for _, k := range chunk {
					if v, err := tx.get(ctx, k); err == nil && kind.expired(v) {
						tx.add(mutation{key: k, del: true})
						deleted++
					}
				}
				return nil
			})
			if err != nil {
				return deleted, err
			}
		}
	}
	return deleted, nil
}

func bodyHash(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}
