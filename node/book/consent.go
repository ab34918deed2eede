package book

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// "Ask me first": a friend whose profile says identity.ShareAskFirst is
// shared only with their consent. The sharer's node leaves them out of
// the share (a placeholder counts them), asks them, sealed, through the
// relay; they approve or refuse; an approval carries an identity.Consent
// naming the sharer and the target, and the sharer's node sends them to
// the target in a share of their own, which relays and the target check
// against the consent.

// Ask states.
const (
	AskPending  = "pending"  // waiting for the friend's answer
	AskApproved = "approved" // they agreed; the share with them follows
	AskShared   = "shared"   // the share with them was made
	AskRefused  = "refused"  // they said no
)

// Ask is one "may I share you with them?", out (the user asks a friend)
// or in (a friend asks the user).
type Ask struct {
	ID         protocols.RequestID `json:"id"`
	Direction  Direction           `json:"direction"`
	Friend     peer.ID             `json:"friend"` // out: whom the user asks; in: who asks
	Target     peer.ID             `json:"target"`
	TargetName string              `json:"target_name,omitempty"`
	Note       string              `json:"note,omitempty"`
	Group      string              `json:"group,omitempty"` // out: the group the friend was picked through
	CreatedAt  time.Time           `json:"created_at"`
	State      string              `json:"state"`
	Consent    []byte              `json:"consent,omitempty"` // approved: the friend's identity consent
	// Sent says how the ask (out) or the answer (in, once answered) left.
	Sent Delivery `json:"sent,omitempty"`
}

const prefixAsks = "/kith/node/asks/"

// Expired says whether a pending ask has waited past RequestLifetime.
func (a *Ask) Expired(now time.Time) bool {
	return a.State == AskPending && !now.Before(a.CreatedAt.Add(RequestLifetime))
}

func askKey(a *Ask) string { return prefixAsks + string(a.Direction) + "/" + a.ID.String() }

func (b *Book) loadAsk(value []byte) error {
	var a Ask
	if err := json.Unmarshal(value, &a); err != nil {
		return err
	}
	b.asks[askKey(&a)] = &a
	return nil
}

// SharingOf is who may share friend p, as their newest profile the book
// holds says (any friend, when none is known).
func (b *Book) SharingOf(p peer.ID, now time.Time) identity.SharingPolicy {
	f := b.friends[p]
	if f == nil || len(f.Profile) == 0 {
		return identity.ShareByFriends
	}
	prof, err := b.verifier.Profile(f.Profile, now.Add(identity.DefaultClockSkew))
	if err != nil || prof.Owner != p {
		return identity.ShareByFriends
	}
	return prof.Policy
}

// asksFirst reports whether friend p's newest profile the book holds says
// they are asked first.
func (b *Book) asksFirst(p peer.ID, now time.Time) bool {
	return b.SharingOf(p, now) == identity.ShareAskFirst
}

// AskFirst splits req: the friends it would share who ask to be asked
// first (by its targets), returned as asks to send, one per friend and
// target; req keeps the others (Skip). An ask already pending or agreed
// for the same friend and target is not made twice.
func (b *Book) AskFirst(req *ShareRequest, now time.Time) ([]*Ask, []Mutation) {
	items, groupOf := b.expand(*req)
	var asks []*Ask
	var muts []Mutation
	for _, it := range items {
		if !b.asksFirst(it, now) || containsPeer(req.To, it) || req.Consents[it] != nil {
			continue
		}
		req.Skip = append(req.Skip, it)
		for _, t := range req.To {
			if b.friends[t] == nil || b.outAsk(it, t, now) != nil {
				continue
			}
			a := &Ask{ID: protocols.NewRequestID(), Direction: Outgoing, Friend: it, Target: t, TargetName: b.Name(t),
				Note: req.Note, Group: groupOf[it], CreatedAt: now, State: AskPending, Sent: Queued}
			b.asks[askKey(a)] = a
			asks = append(asks, a)
			muts = append(muts, put(askKey(a), a))
		}
	}
	return asks, muts
}

// outAsk is the user's pending or approved ask of friend for target.
func (b *Book) outAsk(friend, target peer.ID, now time.Time) *Ask {
	for _, a := range b.asks {
		if a.Direction == Outgoing && a.Friend == friend && a.Target == target && (a.State == AskApproved || (a.State == AskPending && !a.Expired(now))) {
			return a
		}
	}
	return nil
}

// ConsentMessage builds the wire form of ask a (out) or of its answer
// (in, answered).
func (b *Book) ConsentMessage(a *Ask, now time.Time) (*pb.ConsentMessage, error) {
	f := b.friends[a.Friend]
	if f == nil {
		return nil, Kindf(ErrNotFriend, "%s is no longer your friend", b.Name(a.Friend))
	}
	key, err := b.encKeyOf(a.Friend, nil, now)
	if err != nil {
		return nil, err
	}
	spec := protocols.ConsentSpec{ID: a.ID, To: a.Friend, Attestation: f.Attestation, CreatedAt: now, ToKey: key}
	if a.Direction == Outgoing {
		spec.Secret = protocols.ConsentSecret{Target: a.Target, TargetName: a.TargetName, Note: a.Note}
	} else {
		spec.Answer = true
		spec.Secret = protocols.ConsentSecret{Approved: a.State == AskApproved, Consent: a.Consent}
	}
	return protocols.BuildConsentMessage(b.key, spec)
}

// ReceiveConsent takes a consent message from a friend: an ask (kept for
// the user to answer) or an answer to one of the user's asks (kept; an
// approval's consent is checked: this friend, the user, the asked
// target). It returns the ask it concerns.
func (b *Book) ReceiveConsent(c *protocols.ConsentMessage, now time.Time) (*Ask, []Mutation, error) {
	if c.To != b.me {
		return nil, nil, fmt.Errorf("%w: addressed to %s", ErrDropped, c.To)
	}
	if b.blocked[c.From] {
		return nil, nil, fmt.Errorf("%w: %s is blocked", ErrDropped, c.From)
	}
	if b.friends[c.From] == nil {
		return nil, nil, fmt.Errorf("%w: %s is not your friend", ErrDropped, c.From)
	}
	if _, err := protocols.VerifyConsentMessage(b.verifier, c, now); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDropped, err)
	}
	sec, err := c.Secret(b.keys)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDropped, err)
	}
	if !c.Answer {
		a := &Ask{ID: c.ID, Direction: Incoming, Friend: c.From}
		if old := b.asks[askKey(a)]; old != nil {
			return old, nil, nil // again
		}
		if sec.Target == b.me || sec.Target == c.From {
			return nil, nil, fmt.Errorf("%w: an ask to share you with yourself or the asker", ErrDropped)
		}
		a.Target, a.TargetName, a.Note, a.CreatedAt, a.State = sec.Target, sec.TargetName, sec.Note, now, AskPending
		b.asks[askKey(a)] = a
		return a, []Mutation{put(askKey(a), a)}, nil
	}
	a := b.asks[prefixAsks+string(Outgoing)+"/"+c.ID.String()]
	if a == nil || a.Friend != c.From {
		return nil, nil, fmt.Errorf("%w: an answer to no ask of yours", ErrDropped)
	}
	if a.State != AskPending {
		return a, nil, nil // answered before
	}
	if !sec.Approved {
		a.State = AskRefused
		return a, []Mutation{put(askKey(a), a)}, nil
	}
	consent, err := b.verifier.Consent(sec.Consent, now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the consent: %w", ErrDropped, err)
	}
	if consent.Subject != a.Friend || consent.Sharer != b.me || consent.Target != a.Target {
		return nil, nil, fmt.Errorf("%w: a consent for another share", ErrDropped)
	}
	a.State, a.Consent = AskApproved, sec.Consent
	return a, []Mutation{put(askKey(a), a)}, nil
}

// AnswerAsk approves or refuses a friend's ask to share the user: an
// approval signs an identity.Consent for that friend and that target.
// The answer is then to be sent (ConsentMessage).
func (b *Book) AnswerAsk(id protocols.RequestID, approve bool, now time.Time) (*Ask, []Mutation, error) {
	a := b.asks[prefixAsks+string(Incoming)+"/"+id.String()]
	if a == nil {
		return nil, nil, Kindf(ErrNotFound, "no ask %s", id)
	}
	if a.State != AskPending {
		return nil, nil, Kindf(ErrAlreadyFinal, "you answered %s already (%s)", b.Name(a.Friend), a.State)
	}
	if a.Expired(now) {
		return nil, nil, Kindf(ErrAlreadyFinal, "%s's ask expired", b.Name(a.Friend))
	}
	if !approve {
		a.State = AskRefused
	} else {
		raw, err := identity.NewConsent(b.key, a.Friend, a.Target, now, 0)
		if err != nil {
			return nil, nil, err
		}
		a.State, a.Consent = AskApproved, raw
	}
	a.Sent = Queued
	return a, []Mutation{put(askKey(a), a)}, nil
}

// MarkAskSent records how an ask (out) or an answer (in) left.
func (b *Book) MarkAskSent(a *Ask, how Delivery) []Mutation {
	if a.Sent == how {
		return nil
	}
	a.Sent = how
	return []Mutation{put(askKey(a), a)}
}

// MarkAskShared records that the share an approval allowed was made.
func (b *Book) MarkAskShared(a *Ask) []Mutation {
	a.State = AskShared
	return []Mutation{put(askKey(a), a)}
}

// Asks returns the asks in and out, newest first.
func (b *Book) Asks() []*Ask {
	out := make([]*Ask, 0, len(b.asks))
	for _, a := range b.asks {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// FindAsk finds an incoming ask by id or a unique prefix of it.
func (b *Book) FindAsk(s string) (*Ask, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	var found []*Ask
	for _, a := range b.asks {
		if a.Direction == Incoming && len(s) >= 4 && strings.HasPrefix(a.ID.String(), s) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return nil, Kindf(ErrNotFound, "no ask %q (kith consents lists them)", s)
	case 1:
		return found[0], nil
	}
	return nil, Kindf(ErrAmbiguous, "%d asks start with %q", len(found), s)
}

// UnsentAsks are the asks (out) and answers (in) still to send, and the
// approvals whose share is still to be made.
func (b *Book) UnsentAsks(now time.Time) (send, share []*Ask) {
	for _, a := range b.asks {
		switch {
		case a.Sent == Queued && a.Direction == Outgoing && a.State == AskPending && !a.Expired(now):
			send = append(send, a)
		case a.Sent == Queued && a.Direction == Incoming && a.State != AskPending:
			send = append(send, a)
		case a.Direction == Outgoing && a.State == AskApproved:
			share = append(share, a)
		}
	}
	byAge := func(a, b *Ask) int {
		return oldestFirst(a.CreatedAt, b.CreatedAt, string(a.Friend)+string(a.Target), string(b.Friend)+string(b.Target), a.ID[:], b.ID[:])
	}
	slices.SortFunc(send, byAge)
	slices.SortFunc(share, byAge)
	return send, share
}
