package identity

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// Revocation is a verified statement, signed by one of two friends, that
// their attestation no longer holds (unfriend). It embeds the attestation's
// body, so anyone can check that the revoker is a party to it without
// holding the attestation itself.
type Revocation struct {
	AttestationID AttestationID
	Revoker       peer.ID
	Other         peer.ID // the other friend
	RevokedAt     time.Time
	// AttestationExpires is when the revoked attestation would have
	// expired: past it the attestation fails verification on its own, so
	// the revocation need not be kept.
	AttestationExpires time.Time
	Raw                []byte // exact SignedRecord bytes
}

// Revoke signs a revocation of a by the holder of key, who must be one of
// its two friends.
func Revoke(key crypto.PrivKey, a *Attestation, now time.Time) ([]byte, error) {
	me, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: revoke: %w", err)
	}
	if a.Other(me) == "" {
		return nil, fmt.Errorf("identity: revoke: %s is not a party to attestation %s", me, a.ID.Short())
	}
	body, err := proto.Marshal(&pb.RevocationBody{Attestation: a.Body, Revoker: []byte(me), RevokedAt: unix(now)})
	if err != nil {
		return nil, err
	}
	sig, err := sign(key, DomainRevocation, body)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedRecord{Body: body, Signature: sig})
}

// Revocation verifies a revocation: well formed, made by one of the two
// friends it names, and signed by them. A revocation has no expiry.
func (v *Verifier) Revocation(raw []byte) (*Revocation, error) {
	k, cached, ok := v.lookup(kindRevocation, raw)
	if ok {
		return cached.(*Revocation), nil
	}
	const record = "revocation"
	var body pb.RevocationBody
	sr, err := openSigned(record, "revocation", raw, &body)
	if err != nil {
		return nil, err
	}
	var ab pb.AttestationBody
	if err := proto.Unmarshal(body.Attestation, &ab); err != nil {
		return nil, malformed(record, err, "attestation body")
	}
	revoker, pub, err := parsePeer(body.Revoker)
	if err != nil {
		return nil, malformed(record, err, "revoker")
	}
	req, err1 := peer.IDFromBytes(ab.Requester)
	acc, err2 := peer.IDFromBytes(ab.Accepter)
	if err1 != nil || err2 != nil {
		return nil, fail(record, ReasonMalformed, "the attestation names an invalid peer")
	}
	var other peer.ID
	switch revoker {
	case req:
		other = acc
	case acc:
		other = req
	default:
		return nil, fail(record, ReasonWrongPair, "%s is not a party to the attestation", ShortID(revoker))
	}
	if !verifySig(pub, DomainRevocation, sr.Body, sr.Signature) {
		return nil, fail(record, ReasonBadSignature, "revoker %s did not sign it", ShortID(revoker))
	}
	r := &Revocation{
		AttestationID:      sha256.Sum256(body.Attestation),
		Revoker:            revoker,
		Other:              other,
		RevokedAt:          fromUnix(body.RevokedAt),
		AttestationExpires: fromUnix(ab.ExpiresAt),
		Raw:                raw,
	}
	v.remember(k, r)
	return r, nil
}
