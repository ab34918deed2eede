package rendezvous

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/rendezvous/pb"
)

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

// nonEmptyBoxes returns how many mailboxes hold an item.
func (s *store) nonEmptyBoxes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mb.nonEmpty
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
				if !bytes.Equal(prev.Sharer, rec.Sharer) || !sameShare(&prev, rec, items) {
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
	window, ok := s.hooks.online(r)
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

// sameShare reports whether rec is the share prev recorded: the same seal,
// or, for a record stored before seals were hashed, the same bytes.
func sameShare(prev, rec *pb.ShareRecord, items []newItem) bool {
	if len(prev.SealHash) > 0 {
		return bytes.Equal(prev.SealHash, rec.SealHash)
	}
	if len(items) == 0 {
		return false
	}
	h := sha256.Sum256(items[0].payload)
	return bytes.Equal(prev.BodyHash, h[:])
}

// errReplay is returned by acceptShare for a share id already used for
// other bytes or by another sharer.
var errReplay = errors.New("rendezvous: share id already used")
