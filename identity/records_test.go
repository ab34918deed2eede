package identity

import (
	"crypto/sha256"
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
		if r.AttestationID != att.ID || r.Revoker != who.id || r.Other != att.Other(who.id) || !r.AttestationExpires.Equal(att.ExpiresAt) {
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

	// Withdrawn invites travel in the profile.
	gone, kept := [16]byte{1, 2, 3}, [16]byte{4, 5, 6}
	withdrawn, err := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 5, RevokedInvites: [][16]byte{gone}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	wp, err := NewVerifier().Profile(withdrawn, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !wp.InviteRevoked(gone) || wp.InviteRevoked(kept) || p.InviteRevoked(gone) || (*Profile)(nil).InviteRevoked(gone) {
		t.Fatal("InviteRevoked does not say what the profile lists")
	}
	if _, err := NewProfile(alice.key, ProfileInfo{Name: "Alice", RevokedInvites: make([][16]byte, MaxRevokedInvites+1)}, t0); err == nil {
		t.Fatal("a profile with too many revoked invites was signed")
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
		{"short revoked invite token", tamper(func(b *pb.ProfileBody) { b.RevokedInvites = [][]byte{{1, 2}} }, alice), t0, ReasonMalformed},
		{"too many revoked invites", tamper(func(b *pb.ProfileBody) { b.RevokedInvites = make([][]byte, MaxRevokedInvites+1) }, alice), t0, ReasonMalformed},
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

// shareFixture is a sealed share of items to targets, as protocols builds it,
// with the sharer's friendships with every target and item.
type shareFixture struct {
	sharer  user
	id      ShareID
	body    []byte
	leaves  []IntroLeaf
	seal    []byte
	targets []peer.ID
	items   []peer.ID
	atts    map[peer.ID][]byte // sharer <-> peer, both signatures
}

func ids(us []user) []peer.ID {
	out := make([]peer.ID, len(us))
	for i, u := range us {
		out[i] = u.id
	}
	return out
}

func newShare(t testing.TB, sharer user, targets, items []user) *shareFixture {
	t.Helper()
	f := &shareFixture{sharer: sharer, id: NewShareID(), body: []byte("share body bytes"), targets: ids(targets), items: ids(items),
		atts: map[peer.ID][]byte{}}
	for _, u := range append(append([]user(nil), targets...), items...) {
		if _, ok := f.atts[u.id]; !ok {
			f.atts[u.id] = befriend(t, sharer, u, t0, 0).Raw
		}
	}
	for _, tg := range f.targets {
		for _, it := range f.items {
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

// intro returns the introduction of leaf i, with the sharer's friendships
// with its recipient and subject.
func (f *shareFixture) intro(t testing.TB, i int) []byte {
	t.Helper()
	l := f.leaves[i]
	raw, err := MakeIntroduction(f.seal, f.sharer.id, f.id, f.body, f.leaves, i, f.atts[l.Recipient], f.atts[l.Subject])
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestSeal(t *testing.T) {
	alice, bob, carol, dave, mallory := newUser(t), newUser(t), newUser(t), newUser(t), newUser(t)
	f := newShare(t, alice, []user{bob}, []user{carol, dave})
	v := NewVerifier()
	s, err := v.Seal(f.seal, alice.id, f.body, f.leaves, t0)
	if err != nil {
		t.Fatal(err)
	}
	if s.ShareID != f.id || s.Leaves != 3 || s.Sharer != alice.id {
		t.Fatalf("decoded %+v", s)
	}
	other := newShare(t, alice, []user{bob}, []user{carol})
	forged := newShare(t, mallory, []user{bob}, []user{carol, dave})

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
	var items []user
	for range 5 {
		items = append(items, newUser(t))
	}
	f := newShare(t, alice, []user{bob, erin}, items)
	v := NewVerifier()
	for i, l := range f.leaves {
		in, err := v.IntroductionTo(f.intro(t, i), l.Recipient, l.Subject, t0)
		if err != nil {
			t.Fatalf("introduction %d: %v", i, err)
		}
		if in.Sharer != alice.id || in.ShareID != f.id {
			t.Fatalf("decoded %+v", in)
		}
		if in.RecipientAttestation != sha256.Sum256(attBody(t, f.atts[l.Recipient])) || in.SubjectAttestation != sha256.Sum256(attBody(t, f.atts[l.Subject])) {
			t.Fatal("the introduction does not name the friendships it rests on")
		}
	}

	subject := items[2]
	raw := f.intro(t, 2)
	var m pb.Introduction
	proto.Unmarshal(raw, &m)
	edit := func(fn func(*pb.Introduction)) []byte {
		c := proto.Clone(&m).(*pb.Introduction)
		fn(c)
		out, _ := proto.Marshal(c)
		return out
	}
	mallory, puppet := newUser(t), newUser(t)
	otherShare := newShare(t, alice, []user{bob}, items)
	// A sock puppet: a key made a second ago seals "puppet introduces
	// Mallory to the subject", with a friendship of its own with Mallory
	// (two keys of one person) and none with the subject.
	sock := newShare(t, puppet, []user{mallory}, []user{subject})
	sockNoSubject := sock.intro(t, 0)
	var sm pb.Introduction
	proto.Unmarshal(sockNoSubject, &sm)
	sm.SubjectAttestation = nil
	sockNoSubject, _ = proto.Marshal(&sm)
	sm.SubjectAttestation = f.atts[subject.id] // Alice's real friendship with the subject
	sockBorrowed, _ := proto.Marshal(&sm)
	forgedOffer, _ := MakeOffer(puppet.key, subject.id, t0, 0)
	var fa pb.SignedAttestation
	proto.Unmarshal(forgedOffer, &fa)
	fa.AccepterSig, _ = sign(mallory.key, DomainAttestation, fa.Body) // not the subject's key
	sm.SubjectAttestation, _ = proto.Marshal(&fa)
	sockForged, _ := proto.Marshal(&sm)
	// Alice, a real friend of the subject, introduces a stranger she has
	// no friendship with: the recipient's attestation is a half-signed
	// offer (the stranger signed, Alice did not).
	offer, _ := MakeOffer(mallory.key, alice.id, t0, 0)
	halfSigned := edit(func(c *pb.Introduction) { c.RecipientAttestation = offer })
	// Revoked, and expired, friendships of the introducer.
	revoked := NewRevocationSet()
	rev, _ := Revoke(alice.key, mustAttestation(t, f.atts[subject.id]), t0)
	rv, err := NewVerifier().Revocation(rev)
	if err != nil {
		t.Fatal(err)
	}
	revoked.Add(rv)
	shortLived := befriend(t, alice, subject, t0, time.Hour).Raw

	tests := []struct {
		name               string
		raw                []byte
		recipient, subject peer.ID
		now                time.Time
		v                  *Verifier
		want               Reason
	}{
		{"valid", raw, bob.id, subject.id, t0, nil, ReasonNone},
		{"claimed for another recipient", edit(func(c *pb.Introduction) { c.Recipient = []byte(mallory.id) }), mallory.id, subject.id, t0, nil, ReasonBadSignature},
		{"claimed for another subject", edit(func(c *pb.Introduction) { c.Subject = []byte(mallory.id) }), bob.id, mallory.id, t0, nil, ReasonBadSignature},
		{"salt changed", edit(func(c *pb.Introduction) { c.Salt[0] ^= 1 }), bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"index changed", edit(func(c *pb.Introduction) { c.Index = 4 }), bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"path element dropped", edit(func(c *pb.Introduction) { c.Path = c.Path[1:] }), bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"seal of another share", edit(func(c *pb.Introduction) { c.Seal = otherShare.seal }), bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"index past the tree", edit(func(c *pb.Introduction) { c.Index = 99 }), bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"genuine but for someone else", raw, erin.id, subject.id, t0, nil, ReasonWrongPair},
		{"expired", raw, bob.id, subject.id, t0.Add(25 * time.Hour), nil, ReasonExpired},
		{"short salt", edit(func(c *pb.Introduction) { c.Salt = c.Salt[:4] }), bob.id, subject.id, t0, nil, ReasonMalformed},
		{"index zero names the body leaf", edit(func(c *pb.Introduction) { c.Index = 0 }), bob.id, subject.id, t0, nil, ReasonMalformed},
		{"truncated", raw[:len(raw)-5], bob.id, subject.id, t0, nil, ReasonMalformed},
		{"missing", nil, bob.id, subject.id, t0, nil, ReasonMissing},
		{"without the introducer's friendships (an older node)", edit(func(c *pb.Introduction) { c.RecipientAttestation, c.SubjectAttestation = nil, nil }), bob.id, subject.id, t0, nil, ReasonMissing},
		{"without the friendship with the subject", edit(func(c *pb.Introduction) { c.SubjectAttestation = nil }), bob.id, subject.id, t0, nil, ReasonMissing},
		{"sock puppet: sealed by a fresh key, no friendship with the subject", sockNoSubject, mallory.id, subject.id, t0, nil, ReasonMissing},
		{"sock puppet borrowing Alice's friendship with the subject", sockBorrowed, mallory.id, subject.id, t0, nil, ReasonWrongPair},
		{"sock puppet with a friendship forged in the subject's name", sockForged, mallory.id, subject.id, t0, nil, ReasonBadSignature},
		{"an introducer the subject really befriended", sock.intro(t, 0), mallory.id, subject.id, t0, nil, ReasonNone},
		{"introducer friends with the subject only: recipient's is a bare offer", halfSigned, bob.id, subject.id, t0, nil, ReasonBadSignature},
		{"friendships swapped between the sides", edit(func(c *pb.Introduction) {
			c.RecipientAttestation, c.SubjectAttestation = c.SubjectAttestation, c.RecipientAttestation
		}), bob.id, subject.id, t0, nil, ReasonWrongPair},
		{"the introducer's friendship with the subject was revoked", raw, bob.id, subject.id, t0, NewVerifier(WithRevocations(revoked)), ReasonRevoked},
		{"the introducer's friendship with the subject expired", edit(func(c *pb.Introduction) { c.SubjectAttestation = shortLived }), bob.id, subject.id, t0.Add(2 * time.Hour), nil, ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v
			if v == nil {
				v = NewVerifier()
			}
			_, err := v.IntroductionTo(tt.raw, tt.recipient, tt.subject, tt.now)
			wantReason(t, err, tt.want)
		})
	}
}

func attBody(t testing.TB, raw []byte) []byte {
	t.Helper()
	return mustAttestation(t, raw).Body
}

func mustAttestation(t testing.TB, raw []byte) *Attestation {
	t.Helper()
	a, err := NewVerifier().Attestation(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	return a
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

// TestCacheKeepsItsOwnBytes: the verifier's cache compares a record's
// exact bytes with its own copy, so a caller that reads records into one
// buffer and reuses it gets each record as it is now, never the one
// cached before.
func TestCacheKeepsItsOwnBytes(t *testing.T) {
	alice := newUser(t)
	first, _ := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 1}, t0)
	second, _ := NewProfile(alice.key, ProfileInfo{Name: "Alice", Seq: 2}, t0)
	if len(first) != len(second) {
		t.Fatalf("profiles of %d and %d bytes", len(first), len(second))
	}
	v := NewVerifier()
	buf := append([]byte(nil), first...)
	if p, err := v.Profile(buf, t0); err != nil || p.Seq != 1 {
		t.Fatalf("first: %v %+v", err, p)
	}
	copy(buf, second) // the reader's buffer, reused for the next record
	if p, err := v.Profile(buf, t0); err != nil || p.Seq != 2 {
		t.Fatalf("the reused buffer read as %+v, %v", p, err)
	}
	if p, err := v.Profile(first, t0); err != nil || p.Seq != 1 {
		t.Fatalf("the first again: %+v, %v", p, err)
	}
}

func TestConsent(t *testing.T) {
	carol, alice, bob := newUser(t), newUser(t), newUser(t)
	raw, err := NewConsent(carol.key, alice.id, bob.id, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewVerifier().Consent(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != carol.id || c.Sharer != alice.id || c.Target != bob.id || !c.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := NewConsent(carol.key, carol.id, bob.id, t0, 0); err == nil {
		t.Error("a consent to share oneself by oneself was signed")
	}
	var sr pb.SignedRecord
	proto.Unmarshal(raw, &sr)
	var body pb.ConsentBody
	proto.Unmarshal(sr.Body, &body)
	resign := func(edit func(*pb.ConsentBody), signer user) []byte {
		b := proto.Clone(&body).(*pb.ConsentBody)
		edit(b)
		bb, _ := proto.Marshal(b)
		sig, _ := sign(signer.key, DomainConsent, bb)
		out, _ := proto.Marshal(&pb.SignedRecord{Body: bb, Signature: sig})
		return out
	}
	asProfile := func() []byte { // a signature of another domain
		sig, _ := sign(carol.key, DomainProfile, sr.Body)
		out, _ := proto.Marshal(&pb.SignedRecord{Body: sr.Body, Signature: sig})
		return out
	}()
	for _, tt := range []struct {
		name string
		raw  []byte
		now  time.Time
		want Reason
	}{
		{"valid", raw, t0, ReasonNone},
		{"signed by the sharer", resign(func(*pb.ConsentBody) {}, alice), t0, ReasonBadSignature},
		{"signed as a profile", asProfile, t0, ReasonBadSignature},
		{"target changed", resign(func(b *pb.ConsentBody) { b.Target = []byte(alice.id) }, carol), t0, ReasonMalformed},
		{"expired", raw, t0.Add(2 * time.Hour), ReasonExpired},
		{"issued in the future", raw, t0.Add(-time.Hour), ReasonNotYetValid},
		{"empty", nil, t0, ReasonMissing},
		{"truncated", raw[:len(raw)/2], t0, ReasonMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier().Consent(tt.raw, tt.now)
			wantReason(t, err, tt.want)
		})
	}
}
