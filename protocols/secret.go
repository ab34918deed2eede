package protocols

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// What a relay has no need to read travels sealed to its recipient
// (identity.SealTo, HPKE with a hybrid post-quantum KEM): a share's words
// and names to each of its targets, a request's words and the requester's
// profile key to its recipient, an acceptance's profile key to the
// requester. Each sealed part is bound to its message (a share id and
// target, a request id), so that it never opens as part of another; and
// where the message is signed (a share's seal, a request's signature), the
// signature covers the sealed bytes, so altering them fails the signature.

// Purposes of sealed parts: each is the HPKE context of one kind.
const (
	PurposeShare   = "share-secret"
	PurposeRequest = "request-secret"
	PurposeAnswer  = "answer-secret"
)

// maxShareSecret caps one target's sealed part: the sharer's name, the
// note, a name and a group per item, and the HPKE overhead.
const maxShareSecret = 2<<10 + MaxItemsPerShare*(2*identity.MaxNameBytes+8)

// maxRequestSecret caps a request's or an answer's sealed part.
const maxRequestSecret = 2 << 10

// ErrNotRevealed says a share's or request's sealed part could not be
// opened: the words and names stay unknown, the rest of the message holds.
var ErrNotRevealed = errors.New("protocols: the sealed part does not open")

func shareBinding(id identity.ShareID, target peer.ID) []byte {
	return append(append([]byte(nil), id[:]...), target...)
}

// ShareSecret is what a share tells one target in confidence.
type ShareSecret struct {
	SharerName string       `json:"sharer_name,omitempty"`
	Note       string       `json:"note,omitempty"`
	Items      []ItemSecret `json:"items,omitempty"`
	// Awaiting counts the friends also picked who are asked first.
	Awaiting int `json:"awaiting,omitempty"`
	// Pack is the welcome pack's label, when the share is one.
	Pack string `json:"pack,omitempty"`
}

// ItemSecret is what the sharer says about one shared friend.
type ItemSecret struct {
	Name  string `json:"name,omitempty"`
	Group string `json:"group,omitempty"`
}

func checkSecret(s *pb.ShareSecret, items int) error {
	if err := checkText("sharer name", s.SharerName, identity.MaxNameBytes); err != nil {
		return err
	}
	if err := checkText("note", s.Note, MaxMessageText); err != nil {
		return err
	}
	if err := checkText("pack", s.Pack, identity.MaxNameBytes); err != nil {
		return err
	}
	if s.Awaiting > MaxItemsPerShare {
		return Errorf(pb.Status_BAD_REQUEST, "the sealed part says %d friends await their consent", s.Awaiting)
	}
	if len(s.Items) > items {
		return Errorf(pb.Status_BAD_REQUEST, "the sealed part names %d items, the share has %d", len(s.Items), items)
	}
	for _, it := range s.Items {
		if err := checkText("item name", it.Name, identity.MaxNameBytes); err != nil {
			return err
		}
		if err := checkText("group name", it.Group, identity.MaxNameBytes); err != nil {
			return err
		}
	}
	return nil
}

// Secret opens the part of the share sealed to target me with keys. A
// share of an older node has no sealed part: its words and names are in
// clear, and Secret returns them. Errors wrap ErrNotRevealed.
func (s *UnverifiedShare) Secret(keys *identity.Keyring, me peer.ID) (*ShareSecret, error) {
	var t *ShareTarget
	for i := range s.Targets {
		if s.Targets[i].Peer == me {
			t = &s.Targets[i]
		}
	}
	if t == nil {
		return nil, fmt.Errorf("%w: %s is not a target of share %s", ErrNotRevealed, identity.ShortID(me), s.ID)
	}
	if len(t.Sealed) == 0 {
		return s.Revealed(), nil
	}
	raw, err := keys.Open(PurposeShare, shareBinding(s.ID, me), t.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	var m pb.ShareSecret
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: it does not decode: %v", ErrNotRevealed, err)
	}
	if err := checkSecret(&m, len(s.Items)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	out := &ShareSecret{SharerName: m.SharerName, Note: m.Note, Awaiting: int(m.Awaiting), Pack: m.Pack}
	for _, it := range m.Items {
		out.Items = append(out.Items, ItemSecret{Name: it.Name, Group: it.Group})
	}
	return out, nil
}

// Reveal fills the share's words and names from a target's secret.
func (s *UnverifiedShare) Reveal(sec *ShareSecret) {
	if sec == nil {
		return
	}
	s.SharerName, s.Note = sec.SharerName, sec.Note
	for i := range s.Items {
		if i < len(sec.Items) {
			s.Items[i].Name, s.Items[i].Group = sec.Items[i].Name, sec.Items[i].Group
		}
	}
}

// Revealed returns the share's words and names as they stand (revealed,
// or in clear in an older share): what the sharer sealed to each target.
func (s *UnverifiedShare) Revealed() *ShareSecret {
	out := &ShareSecret{SharerName: s.SharerName, Note: s.Note}
	for _, it := range s.Items {
		out.Items = append(out.Items, ItemSecret{Name: it.Name, Group: it.Group})
	}
	return out
}

// RequestSecret is what a request tells its recipient in confidence.
type RequestSecret struct {
	Message    string
	FromName   string
	ProfileKey *identity.ProfileKey // opens the requester's profile name
}

// Secret opens the request's sealed part with keys (the recipient's
// encryption keys, or the secret of the invite it was made with). A
// request of an older node has none: its words are in clear. Errors wrap
// ErrNotRevealed.
func (u *UnverifiedAddRequest) Secret(keys *identity.Keyring) (*RequestSecret, error) {
	if len(u.Sealed) == 0 {
		return &RequestSecret{Message: u.Message, FromName: u.FromName}, nil
	}
	raw, err := keys.Open(PurposeRequest, u.ID[:], u.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	var m pb.RequestSecret
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: it does not decode: %v", ErrNotRevealed, err)
	}
	if err := checkText("message", m.Message, MaxMessageText); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	if err := checkText("requester name", m.FromName, identity.MaxNameBytes); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	out := &RequestSecret{Message: m.Message, FromName: m.FromName}
	if len(m.ProfileKey) > 0 {
		k, err := identity.ProfileKeyFromBytes(m.ProfileKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
		}
		out.ProfileKey = &k
	}
	return out, nil
}

// SealAnswer seals the accepter's profile key to the requester, for the
// answer to request id.
func SealAnswer(to *identity.EncPublicKey, id RequestID, key identity.ProfileKey) ([]byte, error) {
	raw, err := proto.Marshal(&pb.AnswerSecret{ProfileKey: key[:]})
	if err != nil {
		return nil, err
	}
	return identity.SealTo(to, PurposeAnswer, id[:], raw)
}

// OpenAnswer opens an answer's sealed part: the accepter's profile key.
// The answer is not signed as a whole, so the caller takes the key only if
// it opens the accepter's signed profile (identity.Profile.OpensName).
func OpenAnswer(keys *identity.Keyring, m *pb.AddAnswer) (*identity.ProfileKey, error) {
	id, err := requestIDFromBytes(m.RequestId)
	if err != nil {
		return nil, err
	}
	raw, err := keys.Open(PurposeAnswer, id[:], m.Sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	var s pb.AnswerSecret
	if err := proto.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%w: it does not decode: %v", ErrNotRevealed, err)
	}
	k, err := identity.ProfileKeyFromBytes(s.ProfileKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotRevealed, err)
	}
	return &k, nil
}
