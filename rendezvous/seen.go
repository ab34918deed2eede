package rendezvous

import (
	"encoding/binary"
	"sync"

	"github.com/kithnet/kith/identity"
)

// seenShares is an in-memory Bloom filter of the share ids the relay has
// recorded, so that the replay check of a new share (almost every share)
// needs no datastore read: a negative answer is certain, and only a
// positive one (a replay, a retry, or a false positive, about 1% at the
// sized capacity) reads the share record. Share ids are 16 random bytes
// chosen by their sharers, so their halves serve as the two base hashes
// of double hashing; an adversary choosing ids can only cause false
// positives, which cost one read each.
//
// It keeps the filter's bits only, not the ids (16 bytes a share for as
// long as its record lives, the relay's history again): a filter is
// rebuilt from the datastore's share records, when it fills (grow is
// signalled) and when expired records are deleted. Ids added while a
// rebuild scans go into both filters.
type seenShares struct {
	mu   sync.Mutex
	cur  *bloomFilter // answers mayHave
	next *bloomFilter // being rebuilt, or nil
	// grow is signalled (without blocking) when cur holds more ids than
	// it was sized for: its false positives climb until it is rebuilt.
	grow chan struct{}
}

type bloomFilter struct {
	bits  []uint64
	m     uint64 // bits
	k     int
	n     int // ids added
	limit int // ids it was sized for
}

// minSeenCapacity is the smallest filter: 64 Ki ids in 80 KiB.
const minSeenCapacity = 1 << 16

func newBloom(capacity int) *bloomFilter {
	capacity = max(capacity, 1024)
	m := uint64(capacity) * 10 // ~1% false positives with k=7
	return &bloomFilter{bits: make([]uint64, (m+63)/64), m: m, k: 7, limit: capacity}
}

func (b *bloomFilter) positions(id identity.ShareID, f func(uint64)) {
	h1 := binary.LittleEndian.Uint64(id[:8])
	h2 := binary.LittleEndian.Uint64(id[8:]) | 1
	for i := range uint64(b.k) {
		f((h1 + i*h2) % b.m)
	}
}

func (b *bloomFilter) set(id identity.ShareID) {
	b.positions(id, func(p uint64) { b.bits[p/64] |= 1 << (p % 64) })
	b.n++
}

func (b *bloomFilter) test(id identity.ShareID) bool {
	all := true
	b.positions(id, func(p uint64) { all = all && b.bits[p/64]&(1<<(p%64)) != 0 })
	return all
}

func newSeenShares(capacity int) *seenShares {
	return &seenShares{cur: newBloom(capacity), grow: make(chan struct{}, 1)}
}

// add records id.
func (s *seenShares) add(id identity.ShareID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur.set(id)
	if s.next != nil {
		s.next.set(id)
	}
	if s.cur.n > s.cur.limit && s.next == nil {
		select {
		case s.grow <- struct{}{}:
		default:
		}
	}
}

// mayHave reports whether id may have been recorded; false is certain.
func (s *seenShares) mayHave(id identity.ShareID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.test(id)
}

// full reports whether the current filter holds more ids than it was
// sized for.
func (s *seenShares) full() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.n > s.cur.limit
}

// count returns how many ids were added to the current filter (expired
// ones included until the next rebuild).
func (s *seenShares) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.n
}

// begin starts a rebuild of a filter for capacity ids: include the ids
// of every record into the filter it returns, then finish (or abort) it.
// Ids added meanwhile go into it too. A later begin supersedes it: its
// finish then does nothing, so two rebuilds never mix.
func (s *seenShares) begin(capacity int) *bloomFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = newBloom(max(capacity, minSeenCapacity))
	return s.next
}

// include adds the id of a record found by rebuild b's scan.
func (s *seenShares) include(b *bloomFilter, id identity.ShareID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == b {
		b.set(id)
	}
}

// finish makes rebuild b's filter the one that answers, unless another
// rebuild superseded it.
func (s *seenShares) finish(b *bloomFilter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == b {
		s.cur, s.next = b, nil
	}
}

// abort drops rebuild b, which could not scan every record.
func (s *seenShares) abort(b *bloomFilter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == b {
		s.next = nil
	}
}
