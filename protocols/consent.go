package protocols

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// DomainConsentMessage separates consent messages' signatures.
const DomainConsentMessage = "kith/consent-message/v1"

// PurposeConsent binds a consent message's sealed part.
const PurposeConsent = "consent-secret"

// maxConsentMessage caps a consent message: an attestation, a sealed
// secret (a consent and a name), the ids.
const maxConsentMessage = 4 * identity.MaxRecordSize

// ConsentSpec is a consent message to build: an ask (Answer false) or
// the answer to ask ID.
type ConsentSpec struct {
	ID          RequestID
	To          peer.ID
	Attestation []byte // the sender's friendship with To
	Answer      bool
	Secret      ConsentSecret
	CreatedAt   time.Time
	ToKey       *identity.EncPublicKey // To's encryption key: the secret is sealed to it
}

// ConsentSecret is what a consent message says in confidence.
type ConsentSecret struct {
	Target     peer.ID // ask: whom the sender would share the recipient with
	TargetName string
	Note       string
	Approved   bool   // answer
	Consent    []byte // answer, approved: the identity consent
}

// ConsentMessage is a decoded consent message, its signature not yet
// checked (VerifyConsentMessage checks it).
type ConsentMessage struct {
	ID          RequestID
	From, To    peer.ID
	Attestation []byte
	Answer      bool
	Sealed      []byte
	CreatedAt   time.Time
	Wire        *pb.ConsentMessage
}

// BuildConsentMessage signs spec with the sender's key, its secret sealed
// to the recipient.
func BuildConsentMessage(key crypto.PrivKey, spec ConsentSpec) (*pb.ConsentMessage, error) {
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if spec.ToKey == nil {
		return nil, fmt.Errorf("protocols: consent message to %s: %w", identity.ShortID(spec.To), identity.ErrNoEncKey)
	}
	if err := checkText("target name", spec.Secret.TargetName, identity.MaxNameBytes); err != nil {
		return nil, err
	}
	if err := checkText("note", spec.Secret.Note, MaxMessageText); err != nil {
		return nil, err
	}
	sec, err := proto.Marshal(&pb.ConsentSecret{Target: []byte(spec.Secret.Target), TargetName: spec.Secret.TargetName,
		Note: spec.Secret.Note, Approved: spec.Secret.Approved, Consent: spec.Secret.Consent})
	if err != nil {
		return nil, err
	}
	sealed, err := identity.SealTo(spec.ToKey, PurposeConsent, consentBinding(spec.ID, spec.Answer), sec)
	if err != nil {
		return nil, err
	}
	body, err := proto.Marshal(&pb.ConsentMessageBody{Id: spec.ID[:], From: []byte(from), To: []byte(spec.To),
		Attestation: spec.Attestation, Answer: spec.Answer, Sealed: sealed, CreatedAt: spec.CreatedAt.Unix()})
	if err != nil {
		return nil, err
	}
	sig, err := identity.SignBody(key, DomainConsentMessage, body)
	if err != nil {
		return nil, err
	}
	m := &pb.ConsentMessage{Body: body, Signature: sig}
	if _, err := DecodeConsentMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}

func consentBinding(id RequestID, answer bool) []byte {
	if answer {
		return append(id[:], 'a')
	}
	return append(id[:], 'q')
}

// DecodeConsentMessage checks a consent message's structure. Errors are
// *StatusError with BAD_REQUEST or TOO_LARGE.
func DecodeConsentMessage(m *pb.ConsentMessage) (*ConsentMessage, error) {
	if m == nil || len(m.Body) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "empty consent message")
	}
	if len(m.Body) > maxConsentMessage {
		return nil, Errorf(pb.Status_TOO_LARGE, "consent message of %d bytes, limit %d", len(m.Body), maxConsentMessage)
	}
	var b pb.ConsentMessageBody
	if err := proto.Unmarshal(m.Body, &b); err != nil {
		return nil, Errorf(pb.Status_BAD_REQUEST, "consent message does not decode: %v", err)
	}
	id, from, to, err := decodeParties("a consent message", "sender", b.Id, b.From, b.To)
	if err != nil {
		return nil, err
	}
	if len(b.Attestation) == 0 || len(b.Attestation) > identity.MaxRecordSize {
		return nil, Errorf(pb.Status_BAD_REQUEST, "a consent message needs the friendship it is sent on")
	}
	if len(b.Sealed) == 0 || len(b.Sealed) > 2*identity.MaxRecordSize {
		return nil, Errorf(pb.Status_BAD_REQUEST, "a consent message's sealed part of %d bytes", len(b.Sealed))
	}
	return &ConsentMessage{ID: id, From: from, To: to, Attestation: b.Attestation, Answer: b.Answer, Sealed: b.Sealed,
		CreatedAt: time.Unix(b.CreatedAt, 0).UTC(), Wire: m}, nil
}

// VerifyConsentMessage checks the sender's signature and their friendship
// with the recipient, and returns the friendship.
func VerifyConsentMessage(v *identity.Verifier, c *ConsentMessage, now time.Time) (*identity.Attestation, error) {
	if err := identity.VerifyBody("consent message", c.From, DomainConsentMessage, c.Wire.Body, c.Wire.Signature); err != nil {
		return nil, err
	}
	return v.Friendship(c.Attestation, c.From, c.To, now)
}

// Secret opens the message's sealed part with the recipient's keys.
// Errors wrap ErrNotRevealed.
func (c *ConsentMessage) Secret(keys *identity.Keyring) (*ConsentSecret, error) {
	raw, err := keys.Open(PurposeConsent, consentBinding(c.ID, c.Answer), c.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	var m pb.ConsentSecret
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: it does not decode: %v", ErrNotRevealed, err)
	}
	out := &ConsentSecret{TargetName: m.TargetName, Note: m.Note, Approved: m.Approved, Consent: m.Consent}
	if !c.Answer {
		t, err := identity.PeerFromBytes(m.Target)
		if err != nil {
			return nil, fmt.Errorf("%w: the target: %v", ErrNotRevealed, err)
		}
		out.Target = t
	}
	if checkText("target name", m.TargetName, identity.MaxNameBytes) != nil || checkText("note", m.Note, MaxMessageText) != nil ||
		len(m.Consent) > identity.MaxRecordSize {
		return nil, fmt.Errorf("%w: its words are too long", ErrNotRevealed)
	}
	return out, nil
}
