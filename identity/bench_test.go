package identity

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/hdevalence/ed25519consensus"
	"github.com/libp2p/go-libp2p/core/peer"
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

// BenchmarkVerifyIntroduction measures what a shared friend pays to check
// that its friend introduced someone to it (one seal signature and a Merkle
// path through a share of 16 items).
func BenchmarkVerifyIntroduction(b *testing.B) {
	alice, bob := newUser(b), newUser(b)
	var items []peer.ID
	for range 16 {
		items = append(items, newUser(b).id)
	}
	f := newShare(b, alice, []peer.ID{bob.id}, items)
	raw, _ := MakeIntroduction(f.seal, alice.id, f.id, f.body, f.leaves, 7)
	v := NewVerifier(WithCacheSize(0))
	for b.Loop() {
		if _, err := v.IntroductionTo(raw, bob.id, items[7], t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealShare measures the sharer's cost of sealing a share of 5
// items to one target, and the relay's cost of checking the seal.
func BenchmarkSealShare(b *testing.B) {
	alice, bob := newUser(b), newUser(b)
	var items []peer.ID
	for range 5 {
		items = append(items, newUser(b).id)
	}
	f := newShare(b, alice, []peer.ID{bob.id}, items)
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
