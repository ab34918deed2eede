package identity

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

func asVerifyError(err error, ve **VerifyError) bool { return errors.As(err, ve) }
func isErr(err, target error) bool                   { return errors.Is(err, target) }

func TestAttestationRoundTrip(t *testing.T) {
	alice, bob := newUser(t), newUser(t)
	offer, err := MakeOffer(alice.key, bob.id, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier()
	o, err := v.Offer(offer, bob.id, t0)
	if err != nil {
		t.Fatalf("offer: %v", err)
	}
	if o.Countersigned {
		t.Fatal("offer claims to be countersigned")
	}
	att, err := v.Countersign(bob.key, offer, t0.Add(time.Minute))
	if err != nil {
		t.Fatalf("countersign: %v", err)
	}
	if att.ID != o.ID {
		t.Fatalf("id changed on countersign: %s != %s", att.ID, o.ID)
	}
	// The exact bytes verify for the pair, in both orders, with a fresh verifier.
	for _, pair := range [][2]peer.ID{{alice.id, bob.id}, {bob.id, alice.id}} {
		got, err := NewVerifier().Friendship(att.Raw, pair[0], pair[1], t0.Add(30*time.Minute))
		if err != nil {
			t.Fatalf("friendship %v: %v", pair, err)
		}
		if got.Requester != alice.id || got.Accepter != bob.id || !got.Countersigned || got.ID != att.ID {
			t.Fatalf("decoded %+v", got)
		}
		if !got.ExpiresAt.Equal(t0.Add(time.Hour)) || !got.IssuedAt.Equal(t0) {
			t.Fatalf("window %v..%v", got.IssuedAt, got.ExpiresAt)
		}
	}
	if got := att.Other(alice.id); got != bob.id {
		t.Fatalf("Other(alice) = %s", got)
	}
	// An offer is not a friendship.
	if _, err := v.Attestation(offer, t0); ReasonOf(err) != ReasonBadSignature {
		t.Fatalf("offer accepted as an attestation: %v", err)
	}
	// Nobody else can countersign.
	carol := newUser(t)
	if _, err := v.Countersign(carol.key, offer, t0); ReasonOf(err) != ReasonWrongPair {
		t.Fatalf("carol countersigned bob's offer: %v", err)
	}
	// The id has a text form that round-trips.
	var id AttestationID
	if err := id.UnmarshalText([]byte(att.ID.String())); err != nil || id != att.ID {
		t.Fatalf("id text round trip: %v %s", err, id)
	}
}

// resign builds a SignedAttestation from parts, for forging.
func resign(t *testing.T, body []byte, reqSig, accSig []byte) []byte {
	t.Helper()
	raw, err := proto.Marshal(&pb.SignedAttestation{Body: body, RequesterSig: reqSig, AccepterSig: accSig})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func parts(t *testing.T, raw []byte) (*pb.SignedAttestation, *pb.AttestationBody) {
	t.Helper()
	var sa pb.SignedAttestation
	var body pb.AttestationBody
	if err := proto.Unmarshal(raw, &sa); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(sa.Body, &body); err != nil {
		t.Fatal(err)
	}
	return &sa, &body
}

func signBody(t *testing.T, k crypto.PrivKey, body *pb.AttestationBody) ([]byte, []byte) {
	t.Helper()
	b, err := proto.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sign(k, DomainAttestation, b)
	if err != nil {
		t.Fatal(err)
	}
	return b, sig
}

// TestAttestationReasons has one case per verification reason, and several
// for the ways an attacker would try each.
func TestAttestationReasons(t *testing.T) {
	alice, bob, mallory := newUser(t), newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	sa, body := parts(t, att.Raw)
	revoked := NewRevocationSet()

	tests := []struct {
		name string
		raw  func() []byte
		p, q peer.ID
		now  time.Time
		want Reason
	}{
		{"valid", func() []byte { return att.Raw }, alice.id, bob.id, t0, ReasonNone},
		{"valid just before expiry", func() []byte { return att.Raw }, alice.id, bob.id, t0.Add(time.Hour - time.Second), ReasonNone},
		{"valid within clock skew", func() []byte { return att.Raw }, alice.id, bob.id, t0.Add(-DefaultClockSkew), ReasonNone},
		{"forged: accepter signature by another key", func() []byte {
			sig, _ := sign(mallory.key, DomainAttestation, sa.Body)
			return resign(t, sa.Body, sa.RequesterSig, sig)
		}, alice.id, bob.id, t0, ReasonBadSignature},
		{"forged: both signatures by mallory", func() []byte {
			b := proto.Clone(body).(*pb.AttestationBody)
			b.Accepter = []byte(mallory.id)
			raw, s1 := signBody(t, mallory.key, b)
			return resign(t, raw, s1, s1)
		}, alice.id, mallory.id, t0, ReasonBadSignature},
		{"swapped signatures", func() []byte { return resign(t, sa.Body, sa.AccepterSig, sa.RequesterSig) }, alice.id, bob.id, t0, ReasonBadSignature},
		{"not countersigned", func() []byte { return resign(t, sa.Body, sa.RequesterSig, nil) }, alice.id, bob.id, t0, ReasonBadSignature},
		{"signature from another domain", func() []byte {
			s1, _ := sign(alice.key, DomainProfile, sa.Body)
			s2, _ := sign(bob.key, DomainProfile, sa.Body)
			return resign(t, sa.Body, s1, s2)
		}, alice.id, bob.id, t0, ReasonBadSignature},
		{"body tampered: expiry extended", func() []byte {
			b := proto.Clone(body).(*pb.AttestationBody)
			b.ExpiresAt += 365 * 24 * 3600
			raw, _ := proto.Marshal(b)
			return resign(t, raw, sa.RequesterSig, sa.AccepterSig)
		}, alice.id, bob.id, t0, ReasonBadSignature},
		{"wrong pair: claimed for alice and mallory", func() []byte { return att.Raw }, alice.id, mallory.id, t0, ReasonWrongPair},
		{"wrong pair: someone else's friendship", func() []byte { return att.Raw }, mallory.id, bob.id, t0, ReasonWrongPair},
		{"not yet valid", func() []byte { return att.Raw }, alice.id, bob.id, t0.Add(-DefaultClockSkew - time.Second), ReasonNotYetValid},
		{"expired", func() []byte { return att.Raw }, alice.id, bob.id, t0.Add(time.Hour), ReasonExpired},
		{"revoked", func() []byte {
			r, err := Revoke(bob.key, att, t0)
			if err != nil {
				t.Fatal(err)
			}
			rev, err := NewVerifier().Revocation(r)
			if err != nil {
				t.Fatal(err)
			}
			revoked.Add(rev)
			return att.Raw
		}, alice.id, bob.id, t0, ReasonRevoked},
		{"truncated", func() []byte { return att.Raw[:len(att.Raw)-7] }, alice.id, bob.id, t0, ReasonMalformed},
		{"garbage", func() []byte { return []byte("\xff\xff\xff\xff not a protobuf") }, alice.id, bob.id, t0, ReasonMalformed},
		{"oversized", func() []byte { return make([]byte, MaxRecordSize+1) }, alice.id, bob.id, t0, ReasonMalformed},
		{"empty", func() []byte { return nil }, alice.id, bob.id, t0, ReasonMissing},
		{"same peer on both sides", func() []byte {
			b := proto.Clone(body).(*pb.AttestationBody)
			b.Accepter = b.Requester
			raw, s := signBody(t, alice.key, b)
			return resign(t, raw, s, s)
		}, alice.id, alice.id, t0, ReasonMalformed},
		{"short nonce", func() []byte {
			b := proto.Clone(body).(*pb.AttestationBody)
			b.Nonce = b.Nonce[:8]
			raw, s1 := signBody(t, alice.key, b)
			_, s2 := signBody(t, bob.key, b)
			return resign(t, raw, s1, s2)
		}, alice.id, bob.id, t0, ReasonMalformed},
		{"expires before issued", func() []byte {
			b := proto.Clone(body).(*pb.AttestationBody)
			b.ExpiresAt = b.IssuedAt
			raw, s1 := signBody(t, alice.key, b)
			_, s2 := signBody(t, bob.key, b)
			return resign(t, raw, s1, s2)
		}, alice.id, bob.id, t0, ReasonMalformed},
		{"not an ed25519 peer", func() []byte {
			k, _, _ := crypto.GenerateSecp256k1Key(nil)
			id, _ := peer.IDFromPrivateKey(k)
			b := proto.Clone(body).(*pb.AttestationBody)
			b.Accepter = []byte(id)
			raw, _ := proto.Marshal(b)
			return resign(t, raw, sa.RequesterSig, sa.AccepterSig)
		}, alice.id, bob.id, t0, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, cached := range []bool{false, true} {
				// The same verdict with a cold verifier and with one that has
				// already seen (and cached) the bytes.
				v := NewVerifier(WithRevocations(revoked))
				raw := tt.raw()
				if cached {
					v.Attestation(raw, t0)
				}
				_, err := v.Friendship(raw, tt.p, tt.q, tt.now)
				wantReason(t, err, tt.want)
			}
		})
	}
}

func TestOfferReasons(t *testing.T) {
	alice, bob, carol := newUser(t), newUser(t), newUser(t)
	offer, err := MakeOffer(alice.key, bob.id, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier()
	tests := []struct {
		name     string
		raw      []byte
		accepter peer.ID
		now      time.Time
		want     Reason
	}{
		{"valid", offer, bob.id, t0, ReasonNone},
		{"addressed to someone else", offer, carol.id, t0, ReasonWrongPair},
		{"expired", offer, bob.id, t0.Add(2 * time.Hour), ReasonExpired},
		{"from the future", offer, bob.id, t0.Add(-time.Hour), ReasonNotYetValid},
		{"truncated", offer[:10], bob.id, t0, ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Offer(tt.raw, tt.accepter, tt.now)
			wantReason(t, err, tt.want)
		})
	}
	if _, err := MakeOffer(alice.key, alice.id, t0, 0); err == nil {
		t.Fatal("an offer to oneself was made")
	}
}

func TestVerifyErrorMessages(t *testing.T) {
	alice, bob, carol := newUser(t), newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	_, err := NewVerifier().Friendship(att.Raw, alice.id, carol.id, t0)
	if err == nil || !strings.Contains(err.Error(), "wrong pair") || !strings.Contains(err.Error(), ShortID(carol.id)) {
		t.Fatalf("message %q does not say wrong pair and name the peer", err)
	}
	if !errors.Is(err, ErrWrongPair) || errors.Is(err, ErrExpired) {
		t.Fatalf("errors.Is mapping is wrong for %v", err)
	}
	if ReasonOf(nil) != ReasonNone || ReasonOf(errors.New("x")) != ReasonMalformed {
		t.Fatal("ReasonOf defaults")
	}
	for _, r := range Reasons() {
		if r.Sentinel() == nil || strings.HasPrefix(r.String(), "reason(") {
			t.Fatalf("reason %d has no sentinel or name", r)
		}
	}
}

func TestCacheDoesNotBypassTimeOrRevocation(t *testing.T) {
	alice, bob := newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	revs := NewRevocationSet()
	v := NewVerifier(WithRevocations(revs), WithCacheSize(8))
	if _, err := v.Friendship(att.Raw, alice.id, bob.id, t0); err != nil {
		t.Fatal(err)
	}
	if v.CacheLen() != 1 {
		t.Fatalf("cache holds %d, want 1", v.CacheLen())
	}
	_, err := v.Friendship(att.Raw, alice.id, bob.id, t0.Add(2*time.Hour))
	wantReason(t, err, ReasonExpired)
	r, _ := Revoke(alice.key, att, t0)
	rev, err := v.Revocation(r)
	if err != nil {
		t.Fatal(err)
	}
	revs.Add(rev)
	_, err = v.Friendship(att.Raw, alice.id, bob.id, t0)
	wantReason(t, err, ReasonRevoked)
	// The cache is bounded.
	for range 20 {
		a := befriend(t, newUser(t), newUser(t), t0, time.Hour)
		v.Attestation(a.Raw, t0)
	}
	if v.CacheLen() > 8 {
		t.Fatalf("cache grew to %d, bound 8", v.CacheLen())
	}
}

// TestSealsDoNotEvictAttestations: every share brings a new seal; a
// stream of them must not push out the attestations every share needs
// again, or a busy relay checks each attestation's two signatures anew.
func TestSealsDoNotEvictAttestations(t *testing.T) {
	alice, bob := newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	v := NewVerifier(WithCacheSize(64))
	if _, err := v.Attestation(att.Raw, t0); err != nil {
		t.Fatal(err)
	}
	var last []byte
	for i := range 200 {
		last = sealFor(t, alice, i)
		if _, err := v.decodeSeal("seal", last); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, ok := v.lookup(kindAttestation, att.Raw); !ok {
		t.Fatal("200 seals evicted the attestation")
	}
	if _, _, ok := v.lookup(kindSeal, last); !ok {
		t.Fatal("the newest seal is not cached")
	}
	if v.seals.Len() > 64/sealCacheShare || v.CacheLen() != 1 {
		t.Fatalf("%d seals and %d other records cached; bounds %d and 64", v.seals.Len(), v.CacheLen(), 64/sealCacheShare)
	}
}
