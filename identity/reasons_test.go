package identity

import (
	"testing"
	"time"
)

// TestEveryReason has one case per verification reason, named by it, so
// that `go test -v -run TestEveryReason` lists them all. Each reason is also
// covered from several angles in the per-record tests.
func TestEveryReason(t *testing.T) {
	alice, bob, mallory := newUser(t), newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	revs := NewRevocationSet()
	raw, _ := Revoke(bob.key, att, t0)
	rev, _ := NewVerifier().Revocation(raw)
	revs.Add(rev)
	shy, _ := NewProfile(alice.key, ProfileInfo{Name: "Alice", Policy: ShareByNobody}, t0)
	sa, _ := parts(t, att.Raw)
	sig, _ := sign(mallory.key, DomainAttestation, sa.Body)
	forged := resign(t, sa.Body, sa.RequesterSig, sig) // Mallory signed for Bob
	cases := map[Reason]func() error{
		ReasonMalformed: func() error {
			_, err := NewVerifier().Attestation(att.Raw[:len(att.Raw)-1], t0)
			return err
		},
		ReasonBadSignature: func() error {
			_, err := NewVerifier().Attestation(forged, t0)
			return err
		},
		ReasonWrongPair: func() error {
			_, err := NewVerifier().Friendship(att.Raw, alice.id, mallory.id, t0)
			return err
		},
		ReasonNotYetValid: func() error {
			_, err := NewVerifier().Attestation(att.Raw, t0.Add(-time.Hour))
			return err
		},
		ReasonExpired: func() error {
			_, err := NewVerifier().Attestation(att.Raw, t0.Add(2*time.Hour))
			return err
		},
		ReasonRevoked: func() error {
			_, err := NewVerifier(WithRevocations(revs)).Attestation(att.Raw, t0)
			return err
		},
		ReasonOptedOut: func() error {
			p, err := NewVerifier().Profile(shy, t0)
			if err != nil {
				return err
			}
			return p.Shareable(alice.id)
		},
		ReasonMissing: func() error {
			_, err := NewVerifier().Attestation(nil, t0)
			return err
		},
	}
	for _, r := range Reasons() {
		t.Run(r.String(), func(t *testing.T) {
			c, ok := cases[r]
			if !ok {
				t.Fatalf("no case for reason %v", r)
			}
			wantReason(t, c(), r)
		})
	}
}
