package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// ShareID names a share; the sharer picks it at random. Relays refuse a
// share id they have seen (replay).
type ShareID [16]byte

// NewShareID returns a random share id.
func NewShareID() ShareID {
	var id ShareID
	if _, err := rand.Read(id[:]); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	return id
}

// String returns the id in hex.
func (id ShareID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler.
func (id ShareID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ShareID) UnmarshalText(b []byte) error {
	if err := DecodeHexID(id[:], string(b), "a share id"); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// ParseShareID parses the hex form of a share id.
func ParseShareID(s string) (ShareID, error) {
	var id ShareID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// ShareIDFromBytes converts the wire form of a share id.
func ShareIDFromBytes(b []byte) (ShareID, error) {
	var id ShareID
	if len(b) != len(id) {
		return id, fmt.Errorf("identity: share id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// Salt hides an introduction leaf's neighbours: without it, a subject could
// test guesses of who else was shared against the sibling hashes in its
// proof.
type Salt [16]byte

// NewSalt returns a random salt.
func NewSalt() Salt {
	var s Salt
	if _, err := rand.Read(s[:]); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	return s
}

// IntroLeaf is one introduction inside a share: the sharer introduces
// Recipient (a target of the share) to Subject (a shared friend). The sharer
// and share id come from the seal.
type IntroLeaf struct {
	Recipient peer.ID
	Subject   peer.ID
	Salt      Salt
}

const (
	leafDomainBody  = "kith/share-body/v1"
	leafDomainIntro = "kith/introduction/v1"
)

func lp(b []byte) []byte { return binary.AppendUvarint(nil, uint64(len(b))) }

// hash returns the leaf hash of l within the share (sharer, id).
func (l IntroLeaf) hash(sharer peer.ID, id ShareID) digest {
	s, r, c := []byte(sharer), []byte(l.Recipient), []byte(l.Subject)
	return leafHash([]byte(leafDomainIntro), lp(s), s, id[:], lp(r), r, lp(c), c, l.Salt[:])
}

// bodyLeaf is leaf 0 of a seal: the digest of the exact share body bytes.
func bodyLeaf(body []byte) digest {
	d := sha256.Sum256(body)
	return leafHash([]byte(leafDomainBody), d[:])
}

func sealLeaves(sharer peer.ID, id ShareID, body []byte, leaves []IntroLeaf) []digest {
	ds := make([]digest, 0, 1+len(leaves))
	ds = append(ds, bodyLeaf(body))
	for _, l := range leaves {
		ds = append(ds, l.hash(sharer, id))
	}
	return ds
}

// Seal is a verified share seal: the sharer's one signature over a share
// body and all of its introductions.
type Seal struct {
	Sharer    peer.ID
	ShareID   ShareID
	Root      [32]byte
	Leaves    int
	IssuedAt  time.Time
	ExpiresAt time.Time
	Raw       []byte // exact SignedRecord bytes
}

// SealShare signs a share: body is the exact share body bytes (leaf 0) and
// leaves its introductions, in order (leaves 1..n). One signature proves
// every introduction of the share and the body itself.
func SealShare(key crypto.PrivKey, id ShareID, body []byte, leaves []IntroLeaf, issuedAt, expiresAt time.Time) ([]byte, error) {
	if 1+len(leaves) > MaxSealLeaves {
		return nil, fmt.Errorf("identity: seal: %d introductions, limit %d", len(leaves), MaxSealLeaves-1)
	}
	if !expiresAt.After(issuedAt) {
		return nil, fmt.Errorf("identity: seal: expires before it is issued")
	}
	sharer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: seal: %w", err)
	}
	root := merkleRoot(sealLeaves(sharer, id, body, leaves))
	b, err := proto.Marshal(&pb.SealBody{
		Sharer:    []byte(sharer),
		ShareId:   id[:],
		Root:      root[:],
		Leaves:    uint32(1 + len(leaves)),
		IssuedAt:  unix(issuedAt),
		ExpiresAt: unix(expiresAt),
	})
	if err != nil {
		return nil, err
	}
	sig, err := sign(key, DomainSeal, b)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedRecord{Body: b, Signature: sig})
}

// decodeSeal parses a seal and checks its signature (not its time window).
func (v *Verifier) decodeSeal(record string, raw []byte) (*Seal, error) {
	k, cached, ok := v.lookup(kindSeal, raw)
	if ok {
		return cached.(*Seal), nil
	}
	var body pb.SealBody
	sr, err := openSigned(record, "seal", raw, &body)
	if err != nil {
		return nil, err
	}
	sharer, pub, err := parsePeer(body.Sharer)
	if err != nil {
		return nil, malformed(record, err, "sharer")
	}
	id, err := ShareIDFromBytes(body.ShareId)
	if err != nil {
		return nil, malformed(record, err, "")
	}
	if len(body.Root) != 32 {
		return nil, fail(record, ReasonMalformed, "root has %d bytes", len(body.Root))
	}
	if body.Leaves == 0 || body.Leaves > MaxSealLeaves {
		return nil, fail(record, ReasonMalformed, "%d leaves", body.Leaves)
	}
	if body.ExpiresAt <= body.IssuedAt {
		return nil, fail(record, ReasonMalformed, "expires before it is issued")
	}
	if !v.verifySig(pub, DomainSeal, sr.Body, sr.Signature) {
		return nil, fail(record, ReasonBadSignature, "sharer %s did not sign it", ShortID(sharer))
	}
	s := &Seal{
		Sharer:    sharer,
		ShareID:   id,
		Leaves:    int(body.Leaves),
		IssuedAt:  fromUnix(body.IssuedAt),
		ExpiresAt: fromUnix(body.ExpiresAt),
		Raw:       raw,
	}
	copy(s.Root[:], body.Root)
	v.remember(k, s)
	return s, nil
}

// Seal verifies that raw is sharer's seal over exactly this body and these
// introduction leaves, valid at now.
func (v *Verifier) Seal(raw []byte, sharer peer.ID, body []byte, leaves []IntroLeaf, now time.Time) (*Seal, error) {
	const record = "seal"
	s, err := v.decodeSeal(record, raw)
	if err != nil {
		return nil, err
	}
	if s.Sharer != sharer {
		return nil, fail(record, ReasonWrongPair, "sealed by %s, not %s", ShortID(s.Sharer), ShortID(sharer))
	}
	if s.Leaves != 1+len(leaves) {
		return nil, fail(record, ReasonBadSignature, "sealed %d leaves, share has %d", s.Leaves, 1+len(leaves))
	}
	if merkleRoot(sealLeaves(s.Sharer, s.ShareID, body, leaves)) != s.Root {
		return nil, fail(record, ReasonBadSignature, "the share's contents do not match what %s signed", ShortID(sharer))
	}
	if err := v.checkWindow(record, s.IssuedAt, s.ExpiresAt, now); err != nil {
		return nil, err
	}
	return s, nil
}

// Introduction is a verified introduction: the sharer, with one signature
// over its share, introduced Recipient to Subject, and is a friend of both
// (each of them signed an attestation with the sharer that holds now).
type Introduction struct {
	Sharer    peer.ID
	Recipient peer.ID
	Subject   peer.ID
	ShareID   ShareID
	IssuedAt  time.Time
	ExpiresAt time.Time
	// RecipientAttestation and SubjectAttestation are the sharer's
	// friendships the introduction rests on: revoking either ends it.
	RecipientAttestation AttestationID
	SubjectAttestation   AttestationID
	Raw                  []byte // exact Introduction bytes
}

// MakeIntroduction builds the introduction of leaves[i] from a seal over
// body and leaves: the seal, the leaf's fields, its inclusion path, and the
// sharer's both-signed attestations with the leaf's recipient (recipientAtt)
// and subject (subjectAtt), which the share carries. The recipient hands it
// to the subject, who checks it with the sharer's key and the two
// attestations alone and learns nothing else about the share.
func MakeIntroduction(seal []byte, sharer peer.ID, id ShareID, body []byte, leaves []IntroLeaf, i int, recipientAtt, subjectAtt []byte) ([]byte, error) {
	if i < 0 || i >= len(leaves) {
		return nil, fmt.Errorf("identity: introduction %d of %d", i, len(leaves))
	}
	ds := sealLeaves(sharer, id, body, leaves)
	path := merklePath(i+1, ds)
	m := &pb.Introduction{
		Seal:                 seal,
		Recipient:            []byte(leaves[i].Recipient),
		Subject:              []byte(leaves[i].Subject),
		Salt:                 leaves[i].Salt[:],
		Index:                uint32(i + 1),
		RecipientAttestation: recipientAtt,
		SubjectAttestation:   subjectAtt,
	}
	for _, p := range path {
		m.Path = append(m.Path, p[:])
	}
	return proto.Marshal(m)
}

// Introduction verifies an introduction "A introduces B to C": A's seal
// and the leaf's inclusion in the sealed tree, the seal's time window at
// now, and A's friendships with B and with C (both-signed, within their
// windows, not revoked). A key made a second ago can seal anything; only
// B's and C's own signatures on attestations with A make it count, so an
// introduction without them is refused (ReasonMissing), and one whose
// attestation fails is refused with that attestation's reason.
func (v *Verifier) Introduction(raw []byte, now time.Time) (*Introduction, error) {
	const record = "introduction"
	if len(raw) == 0 {
		return nil, fail(record, ReasonMissing, "no introduction given")
	}
	if len(raw) > MaxRecordSize {
		return nil, fail(record, ReasonMalformed, "%d bytes, limit %d", len(raw), MaxRecordSize)
	}
	var m pb.Introduction
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, malformed(record, err, "")
	}
	s, err := v.decodeSeal(record, m.Seal)
	if err != nil {
		return nil, err
	}
	rcp, err := peer.IDFromBytes(m.Recipient)
	if err != nil {
		return nil, malformed(record, err, "recipient")
	}
	sub, err := peer.IDFromBytes(m.Subject)
	if err != nil {
		return nil, malformed(record, err, "subject")
	}
	if len(m.Salt) != len(Salt{}) {
		return nil, fail(record, ReasonMalformed, "salt has %d bytes", len(m.Salt))
	}
	if m.Index == 0 || len(m.Path) > 64 {
		return nil, fail(record, ReasonMalformed, "index %d, path of %d", m.Index, len(m.Path))
	}
	path := make([]digest, len(m.Path))
	for i, p := range m.Path {
		if len(p) != 32 {
			return nil, fail(record, ReasonMalformed, "path element of %d bytes", len(p))
		}
		copy(path[i][:], p)
	}
	leaf := IntroLeaf{Recipient: rcp, Subject: sub}
	copy(leaf.Salt[:], m.Salt)
	if !verifyPath(uint64(m.Index), uint64(s.Leaves), leaf.hash(s.Sharer, s.ShareID), path, s.Root) {
		return nil, fail(record, ReasonBadSignature, "%s did not introduce %s to %s in share %s",
			ShortID(s.Sharer), ShortID(rcp), ShortID(sub), s.ShareID)
	}
	if err := v.checkWindow(record, s.IssuedAt, s.ExpiresAt, now); err != nil {
		return nil, err
	}
	rAtt, err := v.introducerFriendship(m.RecipientAttestation, s.Sharer, rcp, now)
	if err != nil {
		return nil, err
	}
	sAtt, err := v.introducerFriendship(m.SubjectAttestation, s.Sharer, sub, now)
	if err != nil {
		return nil, err
	}
	return &Introduction{
		Sharer: s.Sharer, Recipient: rcp, Subject: sub, ShareID: s.ShareID,
		IssuedAt: s.IssuedAt, ExpiresAt: s.ExpiresAt,
		RecipientAttestation: rAtt.ID, SubjectAttestation: sAtt.ID, Raw: raw,
	}, nil
}

// introducerFriendship checks that raw attests the introducer's friendship
// with p at now. A failure is the introduction's, with the attestation's
// reason and what it was about.
func (v *Verifier) introducerFriendship(raw []byte, introducer, p peer.ID, now time.Time) (*Attestation, error) {
	if len(raw) == 0 {
		return nil, fail("introduction", ReasonMissing, "it carries no proof that %s is a friend of %s (a node from before introductions carried their friendships sends none)",
			ShortID(introducer), ShortID(p))
	}
	a, err := v.Friendship(raw, introducer, p, now)
	if err != nil {
		ve := &VerifyError{Record: "introduction", Reason: ReasonOf(err), Err: err,
			Detail: fmt.Sprintf("%s's friendship with %s does not hold", ShortID(introducer), ShortID(p))}
		return nil, ve
	}
	return a, nil
}

// IntroductionTo verifies an introduction and checks that it introduces
// recipient to subject.
func (v *Verifier) IntroductionTo(raw []byte, recipient, subject peer.ID, now time.Time) (*Introduction, error) {
	in, err := v.Introduction(raw, now)
	if err != nil {
		return nil, err
	}
	if in.Recipient != recipient || in.Subject != subject {
		return nil, fail("introduction", ReasonWrongPair, "it introduces %s to %s, not %s to %s",
			ShortID(in.Recipient), ShortID(in.Subject), ShortID(recipient), ShortID(subject))
	}
	return in, nil
}
