package identity

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/hdevalence/ed25519consensus"
)

// BenchmarkVerifyAttestation compares what a relay pays per attestation:
// cold (decode and two signature checks every time), cached (seen before),
// and a bare Ed25519 verify for scale. Compare ratios within one run: the
// machine is shared.
func BenchmarkVerifyAttestation(b *testing.B) {
	alice, bob := newUser(b), newUser(b)
	att := befriend(b, alice, bob, t0, time.Hour)
	b.Run("cold", func(b *testing.B) {
		v := NewVerifier(WithCacheSize(0))
		for b.Loop() {
			if _, err := v.Friendship(att.Raw, alice.id, bob.id, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v := NewVerifier()
		for b.Loop() {
			if _, err := v.Friendship(att.Raw, alice.id, bob.id, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := signingBytes(DomainAttestation, att.Body)
	sig := ed25519.Sign(priv, msg)
	b.Run("bare-ed25519", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("bad")
			}
		}
	})
	b.Run("bare-ed25519consensus", func(b *testing.B) {
		for b.Loop() {
			if !ed25519consensus.Verify(pub, msg, sig) {
				b.Fatal("bad")
			}
		}
	})
}

// BenchmarkVerifyIntroduction measures what a relay or a shared friend pays
// to check an introduction through a share of 16 items: cold, every
// signature (the seal's and both signatures of each of the introducer's two
// friendships, five in all) and the Merkle path; warm, with the records'
// signatures remembered from the share the relay verified before.
func BenchmarkVerifyIntroduction(b *testing.B) {
	alice, bob := newUser(b), newUser(b)
	var items []user
	for range 16 {
		items = append(items, newUser(b))
	}
	f := newShare(b, alice, []user{bob}, items)
	raw := f.intro(b, 7)
	for _, bc := range []struct {
		name string
		v    *Verifier
	}{{"cold", NewVerifier(WithCacheSize(0))}, {"warm", NewVerifier()}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.v.IntroductionTo(raw, bob.id, items[7].id, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSealShare measures the sharer's cost of sealing a share of 5
// items to one target, and the relay's cost of checking the seal.
func BenchmarkSealShare(b *testing.B) {
	alice, bob := newUser(b), newUser(b)
	var items []user
	for range 5 {
		items = append(items, newUser(b))
	}
	f := newShare(b, alice, []user{bob}, items)
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := SealShare(alice.key, f.id, f.body, f.leaves, t0, t0.Add(time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		v := NewVerifier(WithCacheSize(0))
		for b.Loop() {
			if _, err := v.Seal(f.seal, alice.id, f.body, f.leaves, t0); err != nil {
				b.Fatal(err)
			}
		}
	})
}
