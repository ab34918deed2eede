package protocols

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// DomainAddRequest separates add request signatures from every other
// signature a key makes.
const DomainAddRequest = "kith/add-request/v1"

// RequestID names an add request. A node derives it from what was picked,
// so picking the same friend from the same share twice yields the same id
// and nobody is asked twice.
type RequestID [16]byte

// NewRequestID returns a random request id.
func NewRequestID() RequestID {
	var id RequestID
	if _, err := rand.Read(id[:]); err != nil {
		panic("protocols: crypto/rand failed: " + err.Error())
	}
	return id
}

// String returns the id in hex.
func (id RequestID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText implements encoding.TextMarshaler.
func (id RequestID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *RequestID) UnmarshalText(b []byte) error {
	if err := identity.DecodeHexID(id[:], string(b), "a request id"); err != nil {
		return fmt.Errorf("protocols: %w", err)
	}
	return nil
}

// ParseRequestID parses the hex form of a request id.
func ParseRequestID(s string) (RequestID, error) {
	var id RequestID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// decodeParties decodes the id, sender and recipient of a message (what,
// for the error), refusing a message to oneself.
func decodeParties(what, senderRole string, idb, fromb, tob []byte) (RequestID, peer.ID, peer.ID, error) {
	id, err := requestIDFromBytes(idb)
	if err != nil {
		return id, "", "", err
	}
	from, err := decodePeer(senderRole, fromb)
	if err != nil {
		return id, "", "", err
	}
	to, err := decodePeer("recipient", tob)
	if err != nil {
		return id, "", "", err
	}
	if from == to {
		return id, "", "", Errorf(pb.Status_BAD_REQUEST, "%s to oneself", what)
	}
	return id, from, to, nil
}

func requestIDFromBytes(b []byte) (RequestID, error) {
	var id RequestID
	if len(b) != len(id) {
		return id, Errorf(pb.Status_BAD_REQUEST, "request id has %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// AddRequestSpec is what a requester asks; BuildAddRequest signs it.
type AddRequestSpec struct {
	ID           RequestID
	To           peer.ID
	Offer        []byte // identity.MakeOffer(requester, To, ...)
	Introduction []byte // how the requester was introduced to To, or
	Invite       []byte // To's invite
	// MoreIntroductions are further introductions of the requester to To,
	// by other friends of To (after Introduction; MaxIntroductions in all).
	MoreIntroductions [][]byte
	Message           string
	FromName          string
	FromProfile       []byte // the requester's signed profile (home relays)
	CreatedAt         time.Time
	// The message, the requester's name and their profile key are sealed
	// to the recipient: to ToKey (from the recipient's profile), or with
	// InviteSecret (from the recipient's invite link).
	ToKey        *identity.EncPublicKey
	InviteSecret []byte
	ProfileKey   *identity.ProfileKey
}

// BuildAddRequest signs spec with the requester's key. A request with
// words (a message, a name, a profile key) but neither ToKey nor
// InviteSecret fails with identity.ErrNoEncKey: words are never sent in
// clear.
func BuildAddRequest(key crypto.PrivKey, spec AddRequestSpec) (*pb.AddRequest, error) {
	from, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("protocols: add request: %w", err)
	}
	if err := checkText("message", spec.Message, MaxMessageText); err != nil {
		return nil, err
	}
	if err := checkText("requester name", spec.FromName, identity.MaxNameBytes); err != nil {
		return nil, err
	}
	secret := &pb.RequestSecret{Message: spec.Message, FromName: spec.FromName}
	if spec.ProfileKey != nil {
		secret.ProfileKey = spec.ProfileKey[:]
	}
	secretRaw, err := proto.Marshal(secret)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	switch {
	case spec.ToKey == nil && spec.InviteSecret == nil && spec.Message == "" && spec.FromName == "" && spec.ProfileKey == nil:
		// Nothing to say in confidence.
	case spec.ToKey != nil:
		sealed, err = identity.SealTo(spec.ToKey, PurposeRequest, spec.ID[:], secretRaw)
	case len(spec.InviteSecret) > 0:
		sealed, err = identity.SealWithSecret(spec.InviteSecret, PurposeRequest, spec.ID[:], secretRaw)
	default:
		err = identity.ErrNoEncKey
	}
	if err != nil {
		return nil, fmt.Errorf("protocols: add request to %s: %w", identity.ShortID(spec.To), err)
	}
	body, err := proto.Marshal(&pb.AddRequestBody{
		RequestId:         spec.ID[:],
		To:                []byte(spec.To),
		Offer:             spec.Offer,
		Introduction:      spec.Introduction,
		MoreIntroductions: spec.MoreIntroductions,
		Invite:            spec.Invite,
		CreatedAt:         spec.CreatedAt.Unix(),
		From:              []byte(from),
		FromProfile:       spec.FromProfile,
		Sealed:            sealed,
	})
	if err != nil {
		return nil, err
	}
	sig, err := identity.SignBody(key, DomainAddRequest, body)
	if err != nil {
		return nil, err
	}
	m := &pb.AddRequest{Body: body, Signature: sig}
	if _, err := DecodeAddRequest(m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnverifiedAddRequest is an add request that decoded and follows the
// structural rules; VerifyAddRequest checks its signatures. Message and
// FromName are in clear only in requests of older nodes; Secret opens the
// sealed ones.
type UnverifiedAddRequest struct {
	ID           RequestID
	From, To     peer.ID
	Offer        []byte
	Introduction []byte
	// MoreIntroductions follow Introduction when several friends of To
	// shared From.
	MoreIntroductions [][]byte
	Invite            []byte
	Message           string
	FromName          string
	FromProfile       []byte
	CreatedAt         time.Time
	Sealed            []byte         // identity Sealed to To: a RequestSecret
	Wire              *pb.AddRequest // exact body and signature, to forward untouched
}

// DecodeAddRequest checks an add request's structure. Errors are
// *StatusError with BAD_REQUEST or TOO_LARGE.
func DecodeAddRequest(m *pb.AddRequest) (*UnverifiedAddRequest, error) {
	if m == nil || len(m.Body) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "empty add request")
	}
	if len(m.Body) > (3+MaxIntroductions)*identity.MaxRecordSize {
		return nil, Errorf(pb.Status_TOO_LARGE, "add request of %d bytes", len(m.Body))
	}
	var b pb.AddRequestBody
	if err := proto.Unmarshal(m.Body, &b); err != nil {
		return nil, Errorf(pb.Status_BAD_REQUEST, "add request does not decode: %v", err)
	}
	id, from, to, err := decodeParties("an add request", "requester", b.RequestId, b.From, b.To)
	if err != nil {
		return nil, err
	}
	if len(b.Offer) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "add request without an offer")
	}
	if len(b.Introduction) == 0 && len(b.Invite) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "add request with neither an introduction nor an invite")
	}
	if len(b.MoreIntroductions) > 0 && len(b.Introduction) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "further introductions without a first one")
	}
	if 1+len(b.MoreIntroductions) > MaxIntroductions {
		return nil, Errorf(pb.Status_TOO_LARGE, "%d introductions, limit %d", 1+len(b.MoreIntroductions), MaxIntroductions)
	}
	for _, in := range b.MoreIntroductions {
		if len(in) == 0 || len(in) > identity.MaxRecordSize {
			return nil, Errorf(pb.Status_BAD_REQUEST, "an introduction of %d bytes", len(in))
		}
	}
	if err := checkText("message", b.Message, MaxMessageText); err != nil {
		return nil, err
	}
	if err := checkText("requester name", b.FromName, identity.MaxNameBytes); err != nil {
		return nil, err
	}
	if len(b.FromProfile) > identity.MaxRecordSize {
		return nil, Errorf(pb.Status_TOO_LARGE, "requester profile of %d bytes", len(b.FromProfile))
	}
	if len(b.Sealed) > maxRequestSecret {
		return nil, Errorf(pb.Status_TOO_LARGE, "sealed part of %d bytes, limit %d", len(b.Sealed), maxRequestSecret)
	}
	return &UnverifiedAddRequest{
		ID: id, From: from, To: to, Offer: b.Offer, Introduction: b.Introduction, MoreIntroductions: b.MoreIntroductions, Invite: b.Invite,
		Message: b.Message, FromName: b.FromName, FromProfile: b.FromProfile, CreatedAt: time.Unix(b.CreatedAt, 0).UTC(),
		Sealed: b.Sealed, Wire: m,
	}, nil
}

// AddRequest is a verified add request.
type AddRequest struct {
	*UnverifiedAddRequest
	Offer        *identity.Attestation  // the requester's half, addressed to To
	Introduction *identity.Introduction // nil when the request rests on an invite
	// MoreIntroductions are the further introductions, each verified and
	// each by a different sharer.
	MoreIntroductions []*identity.Introduction
	Profile           *identity.Profile // the requester's profile, if sent
}

// Introductions returns every introduction of the request, the first
// first.
func (r *AddRequest) Introductions() []*identity.Introduction {
	if r.Introduction == nil {
		return nil
	}
	return append([]*identity.Introduction{r.Introduction}, r.MoreIntroductions...)
}

// VerifyAddRequest checks the requester's signature, the offer (made by
// From, to To) and, when present, the introduction (of From to To). A
// request resting on an invite is returned with a nil Introduction: only
// the invitee's node can check its own invite. Errors are
// *identity.VerifyError.
func VerifyAddRequest(v *identity.Verifier, u *UnverifiedAddRequest, now time.Time) (*AddRequest, error) {
	if err := identity.VerifyBody("add request", u.From, DomainAddRequest, u.Wire.Body, u.Wire.Signature); err != nil {
		return nil, err
	}
	offer, err := v.Offer(u.Offer, u.To, now)
	if err != nil {
		return nil, err
	}
	if offer.Requester != u.From {
		return nil, &identity.VerifyError{Record: "offer", Reason: identity.ReasonWrongPair,
			Detail: fmt.Sprintf("the offer is from %s, the request from %s", identity.ShortID(offer.Requester), identity.ShortID(u.From))}
	}
	r := &AddRequest{UnverifiedAddRequest: u, Offer: offer}
	if len(u.FromProfile) > 0 {
		p, err := v.Profile(u.FromProfile, now)
		if err != nil {
			return nil, err
		}
		if p.Owner != u.From {
			return nil, &identity.VerifyError{Record: "profile", Reason: identity.ReasonWrongPair, Detail: "the profile is not the requester's"}
		}
		r.Profile = p
	}
	if len(u.Introduction) > 0 {
		in, err := v.IntroductionTo(u.Introduction, u.From, u.To, now)
		if err != nil {
			return nil, err
		}
		r.Introduction = in
	}
	// Every further introduction is proven as the first is, each by a
	// different friend: one that fails refuses the request, whose sender
	// put in only what verifies.
	sharers := map[peer.ID]bool{}
	if r.Introduction != nil {
		sharers[r.Introduction.Sharer] = true
	}
	for _, raw := range u.MoreIntroductions {
		in, err := v.IntroductionTo(raw, u.From, u.To, now)
		if err != nil {
			return nil, err
		}
		if sharers[in.Sharer] {
			return nil, &identity.VerifyError{Record: "introduction", Reason: identity.ReasonMalformed,
				Detail: fmt.Sprintf("two introductions by %s", identity.ShortID(in.Sharer))}
		}
		sharers[in.Sharer] = true
		r.MoreIntroductions = append(r.MoreIntroductions, in)
	}
	return r, nil
}

// DecodeAddAnswer checks an answer's structure and returns its request id.
func DecodeAddAnswer(m *pb.AddAnswer) (RequestID, error) {
	if m == nil {
		return RequestID{}, Errorf(pb.Status_BAD_REQUEST, "empty answer")
	}
	id, err := requestIDFromBytes(m.RequestId)
	if err != nil {
		return id, err
	}
	if len(m.Attestation) == 0 {
		return id, Errorf(pb.Status_BAD_REQUEST, "answer without an attestation")
	}
	if len(m.Attestation) > identity.MaxRecordSize || len(m.Profile) > identity.MaxRecordSize || len(m.Sealed) > maxRequestSecret {
		return id, Errorf(pb.Status_TOO_LARGE, "answer records too large")
	}
	return id, nil
}

// DecodeAddMessage parses an add stream's message and checks the structure
// of what it carries (each request of a combined one included, against
// lim). It returns the message and its decoded requests.
func DecodeAddMessage(frame []byte, lim Limits) (*pb.AddMessage, []*UnverifiedAddRequest, error) {
	if len(frame) > MaxAddMessage {
		return nil, nil, Errorf(pb.Status_TOO_LARGE, "add message of %d bytes, limit %d", len(frame), MaxAddMessage)
	}
	var m pb.AddMessage
	if err := proto.Unmarshal(frame, &m); err != nil {
		return nil, nil, Errorf(pb.Status_BAD_REQUEST, "add message does not decode: %v", err)
	}
	switch msg := m.Msg.(type) {
	case *pb.AddMessage_Request:
		u, err := DecodeAddRequest(msg.Request)
		if err != nil {
			return nil, nil, err
		}
		return &m, []*UnverifiedAddRequest{u}, nil
	case *pb.AddMessage_Answer:
		if _, err := DecodeAddAnswer(msg.Answer); err != nil {
			return nil, nil, err
		}
		return &m, nil, nil
	case *pb.AddMessage_Combined:
		reqs := msg.Combined.GetRequests()
		if len(reqs) == 0 {
			return nil, nil, Errorf(pb.Status_BAD_REQUEST, "combined request with no request")
		}
		if len(reqs) > lim.requests() {
			return nil, nil, Errorf(pb.Status_TOO_LARGE, "%d requests, limit %d", len(reqs), lim.requests())
		}
		out := make([]*UnverifiedAddRequest, 0, len(reqs))
		seen := make(map[RequestID]bool, len(reqs))
		for _, r := range reqs {
			u, err := DecodeAddRequest(r)
			if err != nil {
				return nil, nil, err
			}
			if seen[u.ID] {
				return nil, nil, Errorf(pb.Status_BAD_REQUEST, "request %s appears twice", u.ID)
			}
			seen[u.ID] = true
			if u.From != out0From(out, u.From) {
				return nil, nil, Errorf(pb.Status_BAD_REQUEST, "a combined request mixes requesters")
			}
			out = append(out, u)
		}
		return &m, out, nil
	case *pb.AddMessage_Consent:
		if _, err := DecodeConsentMessage(msg.Consent); err != nil {
			return nil, nil, err
		}
		return &m, nil, nil
	case *pb.AddMessage_Cancel:
		if len(msg.Cancel) == 0 || len(msg.Cancel) > identity.MaxRecordSize {
			return nil, nil, Errorf(pb.Status_BAD_REQUEST, "a cancel of %d bytes: want a revocation", len(msg.Cancel))
		}
		return &m, nil, nil
	}
	return nil, nil, Errorf(pb.Status_BAD_REQUEST, "add message carries nothing")
}

func out0From(out []*UnverifiedAddRequest, def peer.ID) peer.ID {
	if len(out) == 0 {
		return def
	}
	return out[0].From
}
