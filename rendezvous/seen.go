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
// positives, which cost one read each. The filter doubles when it fills.
type seenShares struct {
	mu    sync.Mutex
	bits  []uint64
	m     uint64 // bits
	k     int
	n     int // ids added
	limit int // ids before the filter doubles
	ids   []identity.ShareID
}

func newSeenShares(capacity int) *seenShares {
	s := &seenShares{k: 7}
	s.resize(capacity)
	return s
}

func (s *seenShares) resize(capacity int) {
	if capacity < 1024 {
		capacity = 1024
	}
	s.m = uint64(capacity) * 10 // ~1% false positives with k=7
	s.bits = make([]uint64, (s.m+63)/64)
	s.limit = capacity
	s.n = 0
	for _, id := range s.ids {
		s.set(id)
	}
}

func (s *seenShares) positions(id identity.ShareID, f func(uint64)) {
	h1 := binary.LittleEndian.Uint64(id[:8])
	h2 := binary.LittleEndian.Uint64(id[8:]) | 1
	for i := range uint64(s.k) {
		f((h1 + i*h2) % s.m)
	}
}

func (s *seenShares) set(id identity.ShareID) {
	s.positions(id, func(p uint64) { s.bits[p/64] |= 1 << (p % 64) })
	s.n++
}

// add records id.
func (s *seenShares) add(id identity.ShareID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	if s.n >= s.limit {
		s.resize(2 * s.limit)
		return
	}
	s.set(id)
}

// mayHave reports whether id may have been recorded; false is certain.
func (s *seenShares) mayHave(id identity.ShareID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := true
	s.positions(id, func(p uint64) { all = all && s.bits[p/64]&(1<<(p%64)) != 0 })
	return all
}

// replace makes s hold exactly ids (after a reload, or after expired
// share records were deleted).
func (s *seenShares) replace(ids []identity.ShareID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids[:0], ids...)
	s.resize(max(2*len(ids), 1<<16))
}

// forget drops ids whose records expired.
func (s *seenShares) forget(expired map[identity.ShareID]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.ids[:0]
	for _, id := range s.ids {
		if !expired[id] {
			kept = append(kept, id)
		}
	}
	s.ids = kept
	s.resize(max(2*len(kept), 1<<16))
}
