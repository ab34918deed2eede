package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
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
	cache   *lru.Cache[cacheKey, any]
	seals   *lru.Cache[cacheKey, any]
	revoked Revocations
	skew    time.Duration
	batch   *SigBatcher
}

type cacheKey struct {
	kind byte
	sum  digest
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
	v := &Verifier{revoked: cfg.revoked, skew: cfg.skew, batch: cfg.batch}
	if cfg.cacheSize > 0 {
		v.cache, _ = lru.New[cacheKey, any](cfg.cacheSize)
		v.seals, _ = lru.New[cacheKey, any](max(cfg.cacheSize/sealCacheShare, 1))
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
	k := cacheKey{kind: kind, sum: sha256.Sum256(raw)}
	val, ok := v.cacheFor(kind).Get(k)
	return k, val, ok
}

func (v *Verifier) remember(k cacheKey, val any) {
	if v != nil && v.cache != nil && k.kind != 0 {
		v.cacheFor(k.kind).Add(k, val)
	}
}

func (v *Verifier) cacheFor(kind byte) *lru.Cache[cacheKey, any] {
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
