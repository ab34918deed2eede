package identity

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// DomainConsent separates consent signatures from every other signature.
const DomainConsent = "kith/consent/v1"

// DefaultConsentValidity is how long a consent lasts: as long as the
// share it is asked for has to reach its target.
const DefaultConsentValidity = 30 * 24 * time.Hour

// Consent is a verified consent: Subject lets Sharer share them with
// Target until ExpiresAt. A user whose profile says ShareAskFirst can
// be shared only with one.
type Consent struct {
	Subject, Sharer, Target peer.ID
	IssuedAt, ExpiresAt     time.Time
	Raw                     []byte
}

// NewConsent signs, with the subject's key, their permission for sharer
// to share them with target, valid from now for validity
// (DefaultConsentValidity when zero).
func NewConsent(subject crypto.PrivKey, sharer, target peer.ID, now time.Time, validity time.Duration) ([]byte, error) {
	me, err := peer.IDFromPrivateKey(subject)
	if err != nil {
		return nil, fmt.Errorf("identity: consent: %w", err)
	}
	if sharer == me || target == me || sharer == target {
		return nil, fmt.Errorf("identity: a consent names three different people")
	}
	if validity <= 0 {
		validity = DefaultConsentValidity
	}
	body, err := proto.Marshal(&pb.ConsentBody{Subject: []byte(me), Sharer: []byte(sharer), Target: []byte(target),
		IssuedAt: unix(now), ExpiresAt: unix(now.Add(validity))})
	if err != nil {
		return nil, err
	}
	sig, err := sign(subject, DomainConsent, body)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedRecord{Body: body, Signature: sig})
}

// Consent verifies a consent: well formed, signed by its subject, within
// its window at now.
func (v *Verifier) Consent(raw []byte, now time.Time) (*Consent, error) {
	const record = "consent"
	var body pb.ConsentBody
	sr, err := openSigned(record, "consent", raw, &body)
	if err != nil {
		return nil, err
	}
	subject, pub, err := parsePeer(body.Subject)
	if err != nil {
		return nil, malformed(record, err, "subject")
	}
	sharer, err1 := PeerFromBytes(body.Sharer)
	target, err2 := PeerFromBytes(body.Target)
	if err1 != nil || err2 != nil {
		return nil, fail(record, ReasonMalformed, "it names an invalid peer")
	}
	if sharer == subject || target == subject || sharer == target {
		return nil, fail(record, ReasonMalformed, "it does not name three different people")
	}
	if !verifySig(pub, DomainConsent, sr.Body, sr.Signature) {
		return nil, fail(record, ReasonBadSignature, "%s did not sign it", ShortID(subject))
	}
	c := &Consent{Subject: subject, Sharer: sharer, Target: target, IssuedAt: fromUnix(body.IssuedAt), ExpiresAt: fromUnix(body.ExpiresAt), Raw: raw}
	if err := v.checkWindow(record, c.IssuedAt, c.ExpiresAt, now); err != nil {
		return nil, err
	}
	return c, nil
}
