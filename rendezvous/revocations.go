package rendezvous

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"github.com/kithnet/kith/identity"
)

// revocationSet is the relay's revocations as memory holds them: the
// revoked attestations' ids with when each attestation would have expired
// (about 50 bytes a revocation; the signed records are on disk, under
// /kith/revoked/), and for each first byte of an id the count and sum of
// the ids under it, which the relays' reconciliation compares (see
// revsync.go). A revocation is kept until its attestation has expired
// (plus revocationGrace): past that the attestation fails verification on
// its own. It implements identity.Revocations, and is safe for concurrent
// use.
type revocationSet struct {
	mu      sync.RWMutex
	ids     map[identity.AttestationID]int64 // -> the attestation's expiry, Unix seconds
	buckets [256]rangeSum
}

// revocationGrace is how long past its attestation's expiry a revocation
// is kept, for relays and nodes whose clocks lag.
const revocationGrace = 24 * time.Hour

func newRevocationSet() *revocationSet {
	return &revocationSet{ids: map[identity.AttestationID]int64{}}
}

// Revoked reports whether id has been revoked.
func (s *revocationSet) Revoked(id identity.AttestationID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.ids[id]
	return ok
}

// add records a verified revocation. It reports whether it was new.
func (s *revocationSet) add(r *identity.Revocation) bool {
	return s.addID(r.AttestationID, r.AttestationExpires.Unix())
}

func (s *revocationSet) addID(id identity.AttestationID, expires int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = expires
	s.buckets[id[0]].add(id, 1)
	return true
}

// remove forgets id.
func (s *revocationSet) remove(id identity.AttestationID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		delete(s.ids, id)
		s.buckets[id[0]].add(id, -1)
	}
}

// expired returns the ids whose attestations expired more than
// revocationGrace before now.
func (s *revocationSet) expired(now time.Time) []identity.AttestationID {
	cut := now.Add(-revocationGrace).Unix()
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []identity.AttestationID
	for id, exp := range s.ids {
		if exp <= cut {
			out = append(out, id)
		}
	}
	return out
}

// len returns the number of revocations held.
func (s *revocationSet) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}

// roots returns the sums of the ids under each first byte.
func (s *revocationSet) roots() [256]rangeSum {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.buckets
}

// collect returns the ids under each of prefixes (which do not overlap),
// sorted, in one pass over the set: callers ask only for ranges that
// differ from another relay's.
func (s *revocationSet) collect(prefixes [][]byte) [][]identity.AttestationID {
	out := make([][]identity.AttestationID, len(prefixes))
	byLen := map[int]map[string]int{}
	for i, p := range prefixes {
		if byLen[len(p)] == nil {
			byLen[len(p)] = map[string]int{}
		}
		byLen[len(p)][string(p)] = i
	}
	s.mu.RLock()
	for id := range s.ids {
		for n, m := range byLen {
			if n > len(id) {
				continue
			}
			if i, ok := m[string(id[:n])]; ok {
				out[i] = append(out[i], id)
			}
		}
	}
	s.mu.RUnlock()
	for _, ids := range out {
		sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	}
	return out
}

// rangeSum summarises a set of ids: how many, and their sum modulo 2^256.
// Sums are additive, so a set's summary is kept up to date as ids come and
// go, and two sets with the same summary are, short of a collision on a
// 256-bit sum of SHA-256 outputs, the same.
type rangeSum struct {
	count uint32
	sum   [32]byte
}

// add adds (sign 1) or subtracts (sign -1) id.
func (r *rangeSum) add(id identity.AttestationID, sign int) {
	var carry uint64
	for i := 3; i >= 0; i-- {
		a := binary.BigEndian.Uint64(r.sum[i*8:])
		b := binary.BigEndian.Uint64(id[i*8:])
		var v uint64
		if sign > 0 {
			v = a + b + carry
			carry = boolBit(v < a || (carry == 1 && v == a))
		} else {
			v = a - b - carry
			carry = boolBit(a < b || (carry == 1 && a == b))
		}
		binary.BigEndian.PutUint64(r.sum[i*8:], v)
	}
	if sign > 0 {
		r.count++
	} else {
		r.count--
	}
}

func boolBit(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// fingerprint is what travels for a range: 16 bytes of SHA-256 over the
// count and the sum.
func (r rangeSum) fingerprint() []byte {
	h := sha256.New()
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], r.count)
	h.Write(n[:])
	h.Write(r.sum[:])
	return h.Sum(nil)[:16]
}

// sumOf summarises ids.
func sumOf(ids []identity.AttestationID) rangeSum {
	var r rangeSum
	for _, id := range ids {
		r.add(id, 1)
	}
	return r
}
