package identity

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

func TestRevocation(t *testing.T) {
	alice, bob, mallory := newUser(t), newUser(t), newUser(t)
	att := befriend(t, alice, bob, t0, time.Hour)
	v := NewVerifier()

	for _, who := range []user{alice, bob} {
		raw, err := Revoke(who.key, att, t0)
		if err != nil {
			t.Fatal(err)
		}
		r, err := v.Revocation(raw)
		if err != nil {
			t.Fatalf("revocation by %s: %v", who.id, err)
		}
		if r.AttestationID != att.ID || r.Revoker != who.id || r.Other != att.Other(who.id) {
			t.Fatalf("decoded %+v", r)
		}
	}
	if _, err := Revoke(mallory.key, att, t0); err == nil {
		t.Fatal("mallory revoked a friendship she is not in")
	}

	// Hand-made revocations, as an attacker would send.
	signed := func(body *pb.RevocationBody, signer user) []byte {
		b, _ := proto.Marshal(body)
		sig, _ := sign(signer.key, DomainRevocation, b)
		raw, _ := proto.Marshal(&pb.SignedRecord{Body: b, Signature: sig})
		return raw
	}
	good := signed(&pb.RevocationBody{Attestation: att.Body, Revoker: []byte(alice.id), RevokedAt: t0.Unix()}, alice)
	tests := []struct {
		name string
		raw  []byte
		want Reason
	}{
		{"valid", good, ReasonNone},
		{"not a party", signed(&pb.RevocationBody{Attestation: att.Body, Revoker: []byte(mallory.id)}, mallory), ReasonWrongPair},
		{"signed by someone else", signed(&pb.RevocationBody{Attestation: att.Body, Revoker: []byte(alice.id)}, mallory), ReasonBadSignature},
		{"truncated", good[:len(good)-3], ReasonMalformed},
		{"garbage attestation body", signed(&pb.RevocationBody{Attestation: []byte{0xff, 0xff}, Revoker: []byte(alice.id)}, alice), ReasonMalformed},
		{"empty", nil, ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().Revocation(tt.raw)
			wantReason(t, err, tt.want)
		})
	}
}

func TestProfile(t *testing.T) {
	alice, bob := newUser(t), newUser(t)
	relay := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	raw, err := NewProfile(alice.key, ProfileInfo{Name: "Alice Liddell", Relays: []ma.Multiaddr{relay}, Seq: 3}, t0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewVerifier().Profile(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Owner != alice.id || p.Name != "Alice Liddell" || p.Seq != 3 || len(p.Relays) != 1 || !p.Relays[0].Equal(relay) || p.Policy != ShareByFriends {
		t.Fatalf("decoded %+v", p)
	}
	if err := p.Shareable(alice.id); err != nil {
		t.Fatalf("default policy refuses sharing: %v", err)
	}
	wantReason(t, p.Shareable(bob.id), ReasonWrongPair)

	nobody, err := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 4, Policy: ShareByNobody}, t0)
	if err != nil {
		t.Fatal(err)
	}
	np, err := NewVerifier().Profile(nobody, t0)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, np.Shareable(alice.id), ReasonOptedOut)
	if err := (*Profile)(nil).Shareable(alice.id); err != nil {
		t.Fatalf("unknown profile should allow sharing: %v", err)
	}

	var sr pb.SignedRecord
	proto.Unmarshal(raw, &sr)
	var body pb.ProfileBody
	proto.Unmarshal(sr.Body, &body)
	tamper := func(f func(*pb.ProfileBody), signer user) []byte {
		b := proto.Clone(&body).(*pb.ProfileBody)
		f(b)
		bb, _ := proto.Marshal(b)
		sig, _ := sign(signer.key, DomainProfile, bb)
		out, _ := proto.Marshal(&pb.SignedRecord{Body: bb, Signature: sig})
		return out
	}
	tests := []struct {
		name string
		raw  []byte
		now  time.Time
		want Reason
	}{
		{"valid", raw, t0, ReasonNone},
		{"signed by another key", tamper(func(*pb.ProfileBody) {}, bob), t0, ReasonBadSignature},
		{"name changed after signing", func() []byte {
			b := proto.Clone(&body).(*pb.ProfileBody)
			b.Name = "Mallory"
			bb, _ := proto.Marshal(b)
			out, _ := proto.Marshal(&pb.SignedRecord{Body: bb, Signature: sr.Signature})
			return out
		}(), t0, ReasonBadSignature},
		{"issued in the future", raw, t0.Add(-time.Hour), ReasonNotYetValid},
		{"control characters in name", tamper(func(b *pb.ProfileBody) { b.Name = "Al\x00ice" }, alice), t0, ReasonMalformed},
		{"name too long", tamper(func(b *pb.ProfileBody) { b.Name = string(make([]byte, 65)) }, alice), t0, ReasonMalformed},
		{"bad relay address", tamper(func(b *pb.ProfileBody) { b.Relays = [][]byte{{0xff, 0xff, 0xff}} }, alice), t0, ReasonMalformed},
		{"unknown policy", tamper(func(b *pb.ProfileBody) { b.Policy = 9 }, alice), t0, ReasonMalformed},
		{"truncated", raw[:len(raw)/2], t0, ReasonMalformed},
		{"empty", nil, t0, ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().Profile(tt.raw, tt.now)
			wantReason(t, err, tt.want)
		})
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"Bob": true, "Zoë Ångström": true, "李雷": true, "": false, "   ": false,
		"a\nb": false, "\xff": false, string(make([]byte, MaxNameBytes+1)): false,
	} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// shareFixture is a sealed share of items to targets, as protocols builds it.
type shareFixture struct {
	sharer  user
	id      ShareID
	body    []byte
	leaves  []IntroLeaf
	seal    []byte
	targets []peer.ID
	items   []peer.ID
}

func newShare(t testing.TB, sharer user, targets, items []peer.ID) *shareFixture {
	t.Helper()
	f := &shareFixture{sharer: sharer, id: NewShareID(), body: []byte("share body bytes"), targets: targets, items: items}
	for _, tg := range targets {
		for _, it := range items {
			f.leaves = append(f.leaves, IntroLeaf{Recipient: tg, Subject: it, Salt: NewSalt()})
		}
	}
	var err error
	f.seal, err = SealShare(sharer.key, f.id, f.body, f.leaves, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSeal(t *testing.T) {
	alice, bob, carol, dave, mallory := newUser(t), newUser(t), newUser(t), newUser(t), newUser(t)
	f := newShare(t, alice, []peer.ID{bob.id}, []peer.ID{carol.id, dave.id})
	v := NewVerifier()
	s, err := v.Seal(f.seal, alice.id, f.body, f.leaves, t0)
	if err != nil {
		t.Fatal(err)
	}
	if s.ShareID != f.id || s.Leaves != 3 || s.Sharer != alice.id {
		t.Fatalf("decoded %+v", s)
	}
	other := newShare(t, alice, []peer.ID{bob.id}, []peer.ID{carol.id})
	forged := newShare(t, mallory, []peer.ID{bob.id}, []peer.ID{carol.id, dave.id})

	swappedLeaves := append([]IntroLeaf(nil), f.leaves...)
	swappedLeaves[0], swappedLeaves[1] = swappedLeaves[1], swappedLeaves[0]
	addedLeaf := append(append([]IntroLeaf(nil), f.leaves...), IntroLeaf{Recipient: bob.id, Subject: mallory.id})
	changedSubject := append([]IntroLeaf(nil), f.leaves...)
	changedSubject[1].Subject = mallory.id

	tests := []struct {
		name   string
		seal   []byte
		sharer peer.ID
		body   []byte
		leaves []IntroLeaf
		now    time.Time
		want   Reason
	}{
		{"valid", f.seal, alice.id, f.body, f.leaves, t0, ReasonNone},
		{"body changed", f.seal, alice.id, []byte("share body bytes!"), f.leaves, t0, ReasonBadSignature},
		{"items reordered", f.seal, alice.id, f.body, swappedLeaves, t0, ReasonBadSignature},
		{"item added", f.seal, alice.id, f.body, addedLeaf, t0, ReasonBadSignature},
		{"subject replaced", f.seal, alice.id, f.body, changedSubject, t0, ReasonBadSignature},
		{"seal of another share", other.seal, alice.id, f.body, f.leaves, t0, ReasonBadSignature},
		{"sealed by someone else", forged.seal, alice.id, f.body, f.leaves, t0, ReasonWrongPair},
		{"expired", f.seal, alice.id, f.body, f.leaves, t0.Add(24 * time.Hour), ReasonExpired},
		{"not yet valid", f.seal, alice.id, f.body, f.leaves, t0.Add(-time.Hour), ReasonNotYetValid},
		{"truncated", f.seal[:20], alice.id, f.body, f.leaves, t0, ReasonMalformed},
		{"missing", nil, alice.id, f.body, f.leaves, t0, ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().Seal(tt.seal, tt.sharer, tt.body, tt.leaves, tt.now)
			wantReason(t, err, tt.want)
		})
	}
}

func TestIntroduction(t *testing.T) {
	alice, bob, erin := newUser(t), newUser(t), newUser(t)
	var items []peer.ID
	for range 5 {
		items = append(items, newUser(t).id)
	}
	f := newShare(t, alice, []peer.ID{bob.id, erin.id}, items)
	v := NewVerifier()
	for i, l := range f.leaves {
		raw, err := MakeIntroduction(f.seal, alice.id, f.id, f.body, f.leaves, i)
		if err != nil {
			t.Fatal(err)
		}
		in, err := v.IntroductionTo(raw, l.Recipient, l.Subject, t0)
		if err != nil {
			t.Fatalf("introduction %d: %v", i, err)
		}
		if in.Sharer != alice.id || in.ShareID != f.id {
			t.Fatalf("decoded %+v", in)
		}
	}

	raw, _ := MakeIntroduction(f.seal, alice.id, f.id, f.body, f.leaves, 2)
	var m pb.Introduction
	proto.Unmarshal(raw, &m)
	edit := func(fn func(*pb.Introduction)) []byte {
		c := proto.Clone(&m).(*pb.Introduction)
		fn(c)
		out, _ := proto.Marshal(c)
		return out
	}
	mallory := newUser(t)
	otherShare := newShare(t, alice, []peer.ID{bob.id}, items)
	tests := []struct {
		name               string
		raw                []byte
		recipient, subject peer.ID
		now                time.Time
		want               Reason
	}{
		{"valid", raw, bob.id, items[2], t0, ReasonNone},
		{"claimed for another recipient", edit(func(c *pb.Introduction) { c.Recipient = []byte(mallory.id) }), mallory.id, items[2], t0, ReasonBadSignature},
		{"claimed for another subject", edit(func(c *pb.Introduction) { c.Subject = []byte(mallory.id) }), bob.id, mallory.id, t0, ReasonBadSignature},
		{"salt changed", edit(func(c *pb.Introduction) { c.Salt[0] ^= 1 }), bob.id, items[2], t0, ReasonBadSignature},
		{"index changed", edit(func(c *pb.Introduction) { c.Index = 4 }), bob.id, items[2], t0, ReasonBadSignature},
		{"path element dropped", edit(func(c *pb.Introduction) { c.Path = c.Path[1:] }), bob.id, items[2], t0, ReasonBadSignature},
		{"seal of another share", edit(func(c *pb.Introduction) { c.Seal = otherShare.seal }), bob.id, items[2], t0, ReasonBadSignature},
		{"index past the tree", edit(func(c *pb.Introduction) { c.Index = 99 }), bob.id, items[2], t0, ReasonBadSignature},
		{"genuine but for someone else", raw, erin.id, items[2], t0, ReasonWrongPair},
		{"expired", raw, bob.id, items[2], t0.Add(25 * time.Hour), ReasonExpired},
		{"short salt", edit(func(c *pb.Introduction) { c.Salt = c.Salt[:4] }), bob.id, items[2], t0, ReasonMalformed},
		{"index zero names the body leaf", edit(func(c *pb.Introduction) { c.Index = 0 }), bob.id, items[2], t0, ReasonMalformed},
		{"truncated", raw[:len(raw)-5], bob.id, items[2], t0, ReasonMalformed},
		{"missing", nil, bob.id, items[2], t0, ReasonMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().IntroductionTo(tt.raw, tt.recipient, tt.subject, tt.now)
			wantReason(t, err, tt.want)
		})
	}
}

func TestMerkleProofs(t *testing.T) {
	for n := 1; n <= 70; n++ {
		leaves := make([]digest, n)
		for i := range leaves {
			leaves[i] = leafHash([]byte{byte(i), byte(n)})
		}
		root := merkleRoot(leaves)
		for m := range n {
			path := merklePath(m, leaves)
			if !verifyPath(uint64(m), uint64(n), leaves[m], path, root) {
				t.Fatalf("n=%d m=%d: valid proof refused", n, m)
			}
			if n > 1 {
				if verifyPath(uint64((m+1)%n), uint64(n), leaves[m], path, root) {
					t.Fatalf("n=%d m=%d: proof accepted at another index", n, m)
				}
				bad := append([]digest(nil), path...)
				bad[0][0] ^= 1
				if verifyPath(uint64(m), uint64(n), leaves[m], bad, root) {
					t.Fatalf("n=%d m=%d: tampered proof accepted", n, m)
				}
			}
		}
	}
}
