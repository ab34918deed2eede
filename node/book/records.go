package book

import (
	"encoding/json"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
)

// The records below are what a node keeps, one datastore entry each, as
// JSON (internal state, never on the wire). Signed records inside them
// (attestations, shares, requests) are the exact bytes received or made.

// Friend is someone the user is friends with: the attestation both signed.
type Friend struct {
	ID               peer.ID                `json:"id"`
	Name             string                 `json:"name"`
	Attestation      []byte                 `json:"attestation"`
	AttestationID    identity.AttestationID `json:"attestation_id"`
	Since            time.Time              `json:"since"`
	IntroducedBy     peer.ID                `json:"introduced_by,omitempty"`
	IntroducedByName string                 `json:"introduced_by_name,omitempty"`
	Profile          []byte                 `json:"profile,omitempty"`     // their latest signed profile: home relays
	ProfileKey       []byte                 `json:"profile_key,omitempty"` // opens their profile's name
	Relays           []string               `json:"relays,omitempty"`      // their home relays, when no profile is known
}

// Group is a named set of friends; a friend may be in several.
type Group struct {
	Name    string    `json:"name"`
	Members []peer.ID `json:"members"`
}

// Direction says who asked.
type Direction string

// Request directions.
const (
	Incoming Direction = "in"
	Outgoing Direction = "out"
)

// RequestState is where a friend request stands.
type RequestState string

// Request states. A declined request is never revealed to its sender: for
// them it stays pending.
const (
	Pending   RequestState = "pending"
	Accepted  RequestState = "accepted"
	Declined  RequestState = "declined"
	Withdrawn RequestState = "withdrawn" // a friendship it rested on ended, or its sender cancelled it
	Cancelled RequestState = "cancelled" // out: the user took it back
	Merged    RequestState = "merged"    // replaced by a request with more introductions
	Expired   RequestState = "expired"   // pending past ExpiresAt (never stored: see Request.StateAt)
)

// RequestLifetime is how long a request waits for its answer: as long as
// a relay keeps an undelivered item (mailbox_ttl).
const RequestLifetime = 30 * 24 * time.Hour

// Delivery says how an outgoing request or answer left the node.
type Delivery string

// Deliveries.
const (
	SentDirect  Delivery = "direct"  // to the peer's node, which acknowledged it
	SentCircuit Delivery = "circuit" // the same, through a circuit relayed by a rendezvous node
	SentRelay   Delivery = "relay"   // to the relay, delivered or stored there
	Queued      Delivery = "queued"  // not yet sent; retried in the background
	Skipped     Delivery = "skipped" // not sent, and will not be; see the reason
)

// Request is a friend request, in or out.
type Request struct {
	ID             protocols.RequestID `json:"id"`
	Direction      Direction           `json:"direction"`
	Peer           peer.ID             `json:"peer"`
	Name           string              `json:"name"`
	State          RequestState        `json:"state"`
	Introducer     peer.ID             `json:"introducer,omitempty"` // the first of Introducers
	IntroducerName string              `json:"introducer_name,omitempty"`
	// Introducers are every friend whose proven introduction the request
	// carries (several when several friends shared the same person).
	Introducers        []Introducer           `json:"introducers,omitempty"`
	IntroducerVerified bool                   `json:"introducer_verified"`
	ShareID            identity.ShareID       `json:"share_id"`
	ViaInvite          bool                   `json:"via_invite,omitempty"`
	Message            string                 `json:"message,omitempty"`
	CreatedAt          time.Time              `json:"created_at"`
	Wire               []byte                 `json:"wire"`     // marshalled pb.AddRequest, as sent or received
	OfferID            identity.AttestationID `json:"offer_id"` // the attestation it would make
	Sent               Delivery               `json:"sent,omitempty"`
	Answer             []byte                 `json:"answer,omitempty"` // in, accepted: the countersigned attestation
	AnswerSent         Delivery               `json:"answer_sent,omitempty"`
	PeerProfile        []byte                 `json:"peer_profile,omitempty"`     // the peer's signed profile, if known
	PeerProfileKey     []byte                 `json:"peer_profile_key,omitempty"` // opens its name: given in the request
	PeerRelays         []string               `json:"peer_relays,omitempty"`      // the peer's home relays, from an invite
	Unopened           string                 `json:"unopened,omitempty"`         // in: why the sealed words did not open
	// Invite is the token of the user's invite an incoming request came
	// with; PackLabel, out, what a welcome pack's invite promised.
	Invite    string `json:"invite,omitempty"`
	PackLabel string `json:"pack_label,omitempty"`
	PackSize  int    `json:"pack_size,omitempty"`
	// PackShared, in, accepted: the welcome pack it came with was shared.
	PackShared bool `json:"pack_shared,omitempty"`
	// ExpiresAt ends a pending request: its sender stops sending it, its
	// recipient can no longer accept it. Zero in requests stored before
	// requests expired: CreatedAt + RequestLifetime.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// RestsOn are the friendships of the introducer the request rests on
	// (with the requester and the recipient): when either ends, a pending
	// request is withdrawn.
	RestsOn []identity.AttestationID `json:"rests_on,omitempty"`
}

// Introducer is a friend who introduced the two sides of a request.
type Introducer struct {
	Peer    peer.ID          `json:"peer"`
	Name    string           `json:"name"`
	ShareID identity.ShareID `json:"share_id"`
}

// IntroducerList is r's introducers, for requests stored before they
// could have several too.
func (r *Request) IntroducerList() []Introducer {
	if len(r.Introducers) > 0 || r.Introducer == "" {
		return r.Introducers
	}
	return []Introducer{{Peer: r.Introducer, Name: r.IntroducerName, ShareID: r.ShareID}}
}

// Expiry is when r, pending, expires.
func (r *Request) Expiry() time.Time {
	if r.ExpiresAt.IsZero() {
		return r.CreatedAt.Add(RequestLifetime)
	}
	return r.ExpiresAt
}

// StateAt is r's state as of now: Expired for a pending one past its
// expiry.
func (r *Request) StateAt(now time.Time) RequestState {
	if r.State == Pending && !now.Before(r.Expiry()) {
		return Expired
	}
	return r.State
}

// ReceivedShare is a share in the user's inbox: the exact bytes, verified
// on receipt, and what failed.
type ReceivedShare struct {
	ID         identity.ShareID       `json:"id"`
	From       peer.ID                `json:"from"`
	FromName   string                 `json:"from_name"`
	Raw        []byte                 `json:"raw"`
	ReceivedAt time.Time              `json:"received_at"`
	Refused    map[string]string      `json:"refused,omitempty"` // item peer id -> reason
	Withdrawn  bool                   `json:"withdrawn,omitempty"`
	Dismissed  bool                   `json:"dismissed,omitempty"` // the user put it away
	Note       string                 `json:"note,omitempty"`
	Secret     *protocols.ShareSecret `json:"secret,omitempty"`   // the words and names sealed to the user
	Unopened   string                 `json:"unopened,omitempty"` // why they did not open
	Items      []protocols.ShareItem  `json:"-"`
	// decoded is the share as ReceiveShare or Load decoded it, so that a
	// pick builds its introductions without decoding it again.
	decoded *protocols.UnverifiedShare
}

// share returns the decoded share.
func (s *ReceivedShare) share() (*protocols.UnverifiedShare, error) {
	if s.decoded != nil {
		return s.decoded, nil
	}
	u, err := protocols.DecodeShare(s.Raw, protocols.Limits{})
	if err != nil {
		return nil, err
	}
	s.decoded = u
	return u, nil
}

// SentShare is a share the user sent, kept until the relay answered.
type SentShare struct {
	ID      identity.ShareID `json:"id"`
	Raw     []byte           `json:"raw"`
	SentAt  time.Time        `json:"sent_at"`
	Answer  *ShareResult     `json:"answer,omitempty"`
	Targets []peer.ID        `json:"targets"`
	// Secret is what the share says to its targets in confidence, kept to
	// make the share again (Reshare): the sent bytes are sealed to them.
	Secret *protocols.ShareSecret `json:"secret,omitempty"`
}

// Invite is an invite the user issued: the general one `kith id` hands
// out, or one made with `kith invite create` (Made), with a label, a
// number of uses, and revocable.
type Invite struct {
	Raw       []byte    `json:"raw"`
	Secret    []byte    `json:"secret,omitempty"` // the link's secret: opens requests made with it
	ExpiresAt time.Time `json:"expires_at"`
	// Made says the user made this invite on purpose (kith invite
	// create); `kith id` hands out only the general one.
	Made      bool      `json:"made,omitempty"`
	Label     string    `json:"label,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// MaxUses bounds how many people may use the invite; 0 is any number.
	MaxUses int `json:"max_uses,omitempty"`
	// UsedBy are the people whose requests came with it, first to last.
	UsedBy    []peer.ID `json:"used_by,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Pack makes the invite a welcome pack: whoever it befriends is
	// shared this group at once.
	Pack *InvitePack `json:"pack,omitempty"`
}

// InvitePack is what a welcome pack shares, and how.
type InvitePack struct {
	Group string `json:"group"`
	// AutoAccept: the node accepts a request made with the invite on its
	// own (the pack's limits still hold), and the share follows.
	AutoAccept bool `json:"auto_accept,omitempty"`
}

// State is "active", "expired", "used up" or "revoked" as of now.
func (in *Invite) State(now time.Time) string {
	switch {
	case !in.RevokedAt.IsZero():
		return "revoked"
	case in.MaxUses > 0 && len(in.UsedBy) >= in.MaxUses:
		return "used up"
	case !now.Before(in.ExpiresAt):
		return "expired"
	}
	return "active"
}

// Settings are the user's own profile settings.
type Settings struct {
	Name   string                 `json:"name"`
	Seq    uint64                 `json:"seq"`
	Policy identity.SharingPolicy `json:"policy"`
	Relays []string               `json:"relays,omitempty"` // the home relays the current Seq names
	Left   []LeftRelay            `json:"left,omitempty"`   // relays dropped from Relays, still to drain
}

// LeftRelay is a relay the user dropped from their home relays. It may
// still hold items stored for them before they left (senders who had not
// yet seen the new profile), so the node logs in there once more and
// takes them; then it forgets the relay.
type LeftRelay struct {
	Peer  peer.ID   `json:"peer"`
	Addrs []string  `json:"addrs"` // multiaddrs ending in /p2p/<peer>
	Since time.Time `json:"since"`
}

// ShareResult answers `kith share`: per target, delivered or stored; per
// failing id, the reason.
type ShareResult struct {
	Share   string         `json:"share"`
	Targets []TargetStatus `json:"targets"`
	Failed  []FailedID     `json:"failed"`
	// Asked are the friends left out because they ask to be asked first:
	// each is asked, by target, and follows in a share of their own if
	// they agree.
	Asked []AskedID `json:"asked,omitempty"`
}

// AskedID is a friend asked for consent before being shared with target.
type AskedID struct {
	Peer       string `json:"peer"`
	Name       string `json:"name"`
	Target     string `json:"target"`
	TargetName string `json:"target_name"`
}

// MarshalJSON writes empty lists as [], never null.
func (r ShareResult) MarshalJSON() ([]byte, error) {
	type plain ShareResult
	p := plain(r)
	if p.Targets == nil {
		p.Targets = []TargetStatus{}
	}
	if p.Failed == nil {
		p.Failed = []FailedID{}
	}
	return json.Marshal(p)
}

// TargetStatus is what happened to one target of a share.
type TargetStatus struct {
	Peer   string `json:"peer"`
	Name   string `json:"name"`
	Status string `json:"status"`          // delivered, stored, not sent
	Share  string `json:"share,omitempty"` // the share id this target was sent
}

// FailedID names one id that failed and why.
type FailedID struct {
	Peer   string `json:"peer"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}
