package identity

import (
	"bytes"
	"crypto/ed25519"
	"hash/maphash"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Revocations answers whether an attestation has been revoked. Relays back
// it with their datastore; nodes with their own; RevocationSet is an
// in-memory implementation.
type Revocations interface {
	Revoked(id AttestationID) bool
}

// DefaultCacheSize is the number of verified records a Verifier remembers.
const DefaultCacheSize = 1 << 16

// sealCacheShare is the share of a Verifier's cache that seals may take:
// every share brings a seal never seen before (met again only in a retry
// or in the introductions of add requests soon after), so seals live in a
// cache of their own, a sixteenth of the size, instead of pushing the
// attestations and profiles that every share needs again out of the main
// one (at 6,000 shares/s, seals would have emptied 65,536 entries every 11
// seconds).
const sealCacheShare = 16

// Verifier checks signed records. It remembers records whose signatures it
// has verified (keyed by the SHA-256 of their exact bytes, bounded in
// number), so a relay that sees the same attestation in many shares pays
// for its signatures once. Time, pair and revocation are checked on every
// call. A Verifier is safe for concurrent use.
type Verifier struct {
	cache   *lru.Cache[cacheKey, cacheEntry]
	seals   *lru.Cache[cacheKey, cacheEntry]
	seed    maphash.Seed
	revoked Revocations
	skew    time.Duration
	batch   *SigBatcher
}

// The cache finds a record by a keyed 64-bit hash of its exact bytes
// (maphash, a fresh random seed per Verifier, so nobody can aim at a
// collision) and takes it only if the bytes are equal: a record of
// several kilobytes (a profile with its encryption key) costs a fast hash
// and a comparison instead of a SHA-256.
type cacheKey struct {
	kind byte
	h    uint64
}

// cacheEntry is a verified record and the exact bytes it was decoded
// from: the record's own copy, which nobody else holds.
type cacheEntry struct {
	raw []byte
	val any
}

const (
	kindAttestation byte = iota + 1
	kindOffer
	kindProfile
	kindRevocation
	kindSeal
)

type verifierConfig struct {
	cacheSize int
	revoked   Revocations
	skew      time.Duration
	batch     *SigBatcher
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig)

// WithCacheSize sets how many verified records are remembered (default
// DefaultCacheSize); 0 disables the cache.
func WithCacheSize(n int) VerifierOption { return func(c *verifierConfig) { c.cacheSize = n } }

// WithRevocations makes the Verifier refuse attestations that r says are
// revoked.
func WithRevocations(r Revocations) VerifierOption { return func(c *verifierConfig) { c.revoked = r } }

// WithClockSkew sets how far in the future an issue time may be (default
// DefaultClockSkew).
func WithClockSkew(d time.Duration) VerifierOption { return func(c *verifierConfig) { c.skew = d } }

// WithSigBatcher makes the Verifier check share seals, the one signature
// every share brings, through b, so that concurrent shares share batch
// verifications (a relay's hot path).
func WithSigBatcher(b *SigBatcher) VerifierOption { return func(c *verifierConfig) { c.batch = b } }

// NewVerifier returns a Verifier.
func NewVerifier(opts ...VerifierOption) *Verifier {
	cfg := verifierConfig{cacheSize: DefaultCacheSize, skew: DefaultClockSkew}
	for _, o := range opts {
		o(&cfg)
	}
	v := &Verifier{revoked: cfg.revoked, skew: cfg.skew, batch: cfg.batch, seed: maphash.MakeSeed()}
	if cfg.cacheSize > 0 {
		v.cache, _ = lru.New[cacheKey, cacheEntry](cfg.cacheSize)
		v.seals, _ = lru.New[cacheKey, cacheEntry](max(cfg.cacheSize/sealCacheShare, 1))
	}
	return v
}

// Batcher returns the SigBatcher the Verifier checks seals through, or
// nil.
func (v *Verifier) Batcher() *SigBatcher { return v.batch }

// verifySig is the package's verifySig, through the batcher if v has one.
func (v *Verifier) verifySig(pub ed25519.PublicKey, domain string, body, sig []byte) bool {
	if v == nil || v.batch == nil {
		return verifySig(pub, domain, body, sig)
	}
	return v.batch.Verify(pub, signingBytes(domain, body), sig)
}

func (v *Verifier) lookup(kind byte, raw []byte) (cacheKey, any, bool) {
	if v == nil || v.cache == nil {
		return cacheKey{}, nil, false
	}
	k := cacheKey{kind: kind, h: maphash.Bytes(v.seed, raw)}
	e, ok := v.cacheFor(kind).Get(k)
	if !ok || !bytes.Equal(e.raw, raw) {
		return k, nil, false
	}
	return k, e.val, true
}

// remember keeps a record just decoded and verified. Its Raw becomes a
// copy of its own, so that a caller reusing the buffer it was read from
// can never change what the cache compares against.
func (v *Verifier) remember(k cacheKey, val any) {
	if v == nil || v.cache == nil || k.kind == 0 {
		return
	}
	var raw *[]byte
	switch r := val.(type) {
	case *Attestation:
		raw = &r.Raw
	case *Profile:
		raw = &r.Raw
	case *Revocation:
		raw = &r.Raw
	case *Seal:
		raw = &r.Raw
	default:
		return
	}
	*raw = bytes.Clone(*raw)
	v.cacheFor(k.kind).Add(k, cacheEntry{raw: *raw, val: val})
}

func (v *Verifier) cacheFor(kind byte) *lru.Cache[cacheKey, cacheEntry] {
	if kind == kindSeal {
		return v.seals
	}
	return v.cache
}

// CacheLen returns the number of records the cache holds, seals aside.
func (v *Verifier) CacheLen() int {
	if v.cache == nil {
		return 0
	}
	return v.cache.Len()
}

func (v *Verifier) clockSkew() time.Duration {
	if v == nil {
		return DefaultClockSkew
	}
	return v.skew
}

func (v *Verifier) isRevoked(id AttestationID) bool {
	return v != nil && v.revoked != nil && v.revoked.Revoked(id)
}

// checkWindow refuses a record issued beyond the clock skew in the future
// or past its expiry. A zero expiry means none.
func (v *Verifier) checkWindow(record string, issued, expires, now time.Time) error {
	if issued.After(now.Add(v.clockSkew())) {
		return fail(record, ReasonNotYetValid, "issued at %s, now %s", issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if !expires.IsZero() && !now.Before(expires) {
		return fail(record, ReasonExpired, "expired at %s", expires.Format(time.RFC3339))
	}
	return nil
}

// RevocationSet is an in-memory Revocations, safe for concurrent use.
type RevocationSet struct {
	mu  sync.RWMutex
	ids map[AttestationID]*Revocation
}

// NewRevocationSet returns an empty set.
func NewRevocationSet() *RevocationSet {
	return &RevocationSet{ids: make(map[AttestationID]*Revocation)}
}

// Add records a verified revocation. It reports whether it was new.
func (s *RevocationSet) Add(r *Revocation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[r.AttestationID]; ok {
		return false
	}
	s.ids[r.AttestationID] = r
	return true
}

// Revoked reports whether id has been revoked.
func (s *RevocationSet) Revoked(id AttestationID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.ids[id]
	return ok
}

// Len returns the number of revocations held.
func (s *RevocationSet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}
