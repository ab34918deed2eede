package identity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// AttestationID names an attestation: the SHA-256 of its body bytes, the
// same for the offer and the countersigned friendship.
type AttestationID [32]byte

// String returns the id in hex.
func (id AttestationID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for tables and logs.
func (id AttestationID) Short() string { return id.String()[:12] }

// MarshalText implements encoding.TextMarshaler.
func (id AttestationID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *AttestationID) UnmarshalText(b []byte) error {
	if err := DecodeHexID(id[:], string(b), "an attestation id"); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// ParseAttestationID parses the hex form of an attestation id.
func ParseAttestationID(s string) (AttestationID, error) {
	var id AttestationID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// DefaultAttestationValidity is how long a friendship attestation lasts
// unless renewed.
const DefaultAttestationValidity = 2 * 365 * 24 * time.Hour

// Attestation is a decoded attestation whose signatures have been checked:
// a friendship when Countersigned, otherwise an offer (the requester's half).
type Attestation struct {
	ID            AttestationID
	Requester     peer.ID
	Accepter      peer.ID
	IssuedAt      time.Time
	ExpiresAt     time.Time
	Countersigned bool
	// Body is the exact body bytes both parties sign.
	Body []byte
	// Raw is the exact SignedAttestation bytes as received or produced; store
	// and forward these.
	Raw []byte
}

// Between reports whether the attestation is about p and q, in either order.
func (a *Attestation) Between(p, q peer.ID) bool {
	return (a.Requester == p && a.Accepter == q) || (a.Requester == q && a.Accepter == p)
}

// Other returns the friend of p named in the attestation, or "" if p is not
// one of them.
func (a *Attestation) Other(p peer.ID) peer.ID {
	switch p {
	case a.Requester:
		return a.Accepter
	case a.Accepter:
		return a.Requester
	}
	return ""
}

// MakeOffer creates the requester's half of a friendship with accepter,
// valid from now for validity (DefaultAttestationValidity when zero). The
// result is SignedAttestation bytes with only the requester's signature.
func MakeOffer(requester crypto.PrivKey, accepter peer.ID, now time.Time, validity time.Duration) ([]byte, error) {
	if validity <= 0 {
		validity = DefaultAttestationValidity
	}
	req, err := peer.IDFromPrivateKey(requester)
	if err != nil {
		return nil, fmt.Errorf("identity: offer: %w", err)
	}
	if _, err := PublicKey(accepter); err != nil {
		return nil, fmt.Errorf("identity: offer to %s: %w", accepter, err)
	}
	if req == accepter {
		return nil, fmt.Errorf("identity: offer: cannot befriend oneself")
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	body, err := proto.Marshal(&pb.AttestationBody{
		Requester: []byte(req),
		Accepter:  []byte(accepter),
		IssuedAt:  unix(now),
		ExpiresAt: unix(now.Add(validity)),
		Nonce:     nonce,
	})
	if err != nil {
		return nil, err
	}
	sig, err := sign(requester, DomainAttestation, body)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedAttestation{Body: body, RequesterSig: sig})
}

// Countersign verifies an offer made to the holder of accepter and returns
// the friendship: the same body, now signed by both.
func (v *Verifier) Countersign(accepter crypto.PrivKey, offer []byte, now time.Time) (*Attestation, error) {
	me, err := peer.IDFromPrivateKey(accepter)
	if err != nil {
		return nil, fmt.Errorf("identity: countersign: %w", err)
	}
	a, err := v.Offer(offer, me, now)
	if err != nil {
		return nil, err
	}
	var sa pb.SignedAttestation
	if err := proto.Unmarshal(offer, &sa); err != nil {
		return nil, malformed("offer", err, "")
	}
	sig, err := sign(accepter, DomainAttestation, a.Body)
	if err != nil {
		return nil, err
	}
	raw, err := proto.Marshal(&pb.SignedAttestation{Body: a.Body, RequesterSig: sa.RequesterSig, AccepterSig: sig})
	if err != nil {
		return nil, err
	}
	full := *a
	full.Countersigned = true
	full.Raw = raw
	return &full, nil
}

// decodeAttestation parses raw and checks the signatures present. With
// needBoth it refuses an attestation lacking the accepter's signature.
func decodeAttestation(raw []byte, needBoth bool) (*Attestation, error) {
	record := "attestation"
	if !needBoth {
		record = "offer"
	}
	var sa pb.SignedAttestation
	if err := openRecord(record, "attestation", raw, &sa); err != nil {
		return nil, err
	}
	var body pb.AttestationBody
	if err := proto.Unmarshal(sa.Body, &body); err != nil {
		return nil, malformed(record, err, "body")
	}
	req, reqPub, err := parsePeer(body.Requester)
	if err != nil {
		return nil, malformed(record, err, "requester")
	}
	acc, accPub, err := parsePeer(body.Accepter)
	if err != nil {
		return nil, malformed(record, err, "accepter")
	}
	if req == acc {
		return nil, fail(record, ReasonMalformed, "requester and accepter are the same peer")
	}
	if len(body.Nonce) != 16 {
		return nil, fail(record, ReasonMalformed, "nonce has %d bytes, want 16", len(body.Nonce))
	}
	if body.ExpiresAt <= body.IssuedAt {
		return nil, fail(record, ReasonMalformed, "expires before it is issued")
	}
	if !verifySig(reqPub, DomainAttestation, sa.Body, sa.RequesterSig) {
		return nil, fail(record, ReasonBadSignature, "requester %s did not sign it", req)
	}
	countersigned := len(sa.AccepterSig) > 0
	if needBoth && !countersigned {
		return nil, fail(record, ReasonBadSignature, "accepter %s has not countersigned it", acc)
	}
	if countersigned && !verifySig(accPub, DomainAttestation, sa.Body, sa.AccepterSig) {
		return nil, fail(record, ReasonBadSignature, "accepter %s did not sign it", acc)
	}
	if countersigned && bytes.Equal(sa.RequesterSig, sa.AccepterSig) {
		return nil, fail(record, ReasonBadSignature, "the two signatures are the same")
	}
	return &Attestation{
		ID:            sha256.Sum256(sa.Body),
		Requester:     req,
		Accepter:      acc,
		IssuedAt:      fromUnix(body.IssuedAt),
		ExpiresAt:     fromUnix(body.ExpiresAt),
		Countersigned: countersigned,
		Body:          sa.Body,
		Raw:           raw,
	}, nil
}

// Attestation verifies a friendship attestation: well formed, signed by
// both friends, within its validity window at now, and not revoked.
func (v *Verifier) Attestation(raw []byte, now time.Time) (*Attestation, error) {
	k, cached, ok := v.lookup(kindAttestation, raw)
	var a *Attestation
	if ok {
		a = cached.(*Attestation)
	} else {
		var err error
		if a, err = decodeAttestation(raw, true); err != nil {
			return nil, err
		}
		v.remember(k, a)
	}
	if err := v.checkWindow("attestation", a.IssuedAt, a.ExpiresAt, now); err != nil {
		return nil, err
	}
	if v.isRevoked(a.ID) {
		return nil, fail("attestation", ReasonRevoked, "attestation %s was revoked", a.ID.Short())
	}
	return a, nil
}

// Friendship verifies that raw attests a friendship between p and q (in
// either order) that holds at now.
func (v *Verifier) Friendship(raw []byte, p, q peer.ID, now time.Time) (*Attestation, error) {
	a, err := v.Attestation(raw, now)
	if err != nil {
		return nil, err
	}
	if !a.Between(p, q) {
		return nil, fail("attestation", ReasonWrongPair, "it is between %s and %s, not %s and %s",
			ShortID(a.Requester), ShortID(a.Accepter), ShortID(p), ShortID(q))
	}
	return a, nil
}

// Offer verifies an offer (a half-signed attestation) addressed to
// accepter: signed by its requester, within its window, not revoked.
func (v *Verifier) Offer(raw []byte, accepter peer.ID, now time.Time) (*Attestation, error) {
	k, cached, ok := v.lookup(kindOffer, raw)
	var a *Attestation
	if ok {
		a = cached.(*Attestation)
	} else {
		var err error
		if a, err = decodeAttestation(raw, false); err != nil {
			return nil, err
		}
		v.remember(k, a)
	}
	if a.Accepter != accepter {
		return nil, fail("offer", ReasonWrongPair, "it is addressed to %s, not %s", ShortID(a.Accepter), ShortID(accepter))
	}
	if err := v.checkWindow("offer", a.IssuedAt, a.ExpiresAt, now); err != nil {
		return nil, err
	}
	if v.isRevoked(a.ID) {
		return nil, fail("offer", ReasonRevoked, "attestation %s was revoked", a.ID.Short())
	}
	return a, nil
}
