package book

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// requestID derives the id of the request the user makes to p from share
// s: the same pick always yields the same id.
func (b *Book) requestID(s identity.ShareID, p peer.ID) protocols.RequestID {
	h := sha256.New()
	h.Write([]byte("kith/request-id/v1"))
	h.Write(s[:])
	h.Write([]byte(b.me))
	h.Write([]byte(p))
	var id protocols.RequestID
	copy(id[:], h.Sum(nil))
	return id
}

// nextRequestID is the id a request gets when id is taken by an earlier
// request that cannot be sent again (answered, or merged): derived, so
// that a retry of the new request finds it.
func nextRequestID(id protocols.RequestID, round uint64) protocols.RequestID {
	h := sha256.Sum256(binary.BigEndian.AppendUint64(id[:], round))
	copy(id[:], h[:])
	return id
}

// PickResult says what picking one shared friend did.
type PickResult struct {
	Peer    peer.ID
	Name    string
	Request *Request // the new request, or nil if skipped
	Reason  string   // why it was skipped
	// Merged says the request replaces a pending one to the same person,
	// carrying its introductions and this share's.
	Merged bool
}

// mergeIntroduction adds share s's introduction of p to the user's
// pending request to p, made from another friend's share: a new request
// (its own id, the same offer, every introduction) replaces it, and the
// old one is marked merged. It returns nil and the reason when it cannot.
func (b *Book) mergeIntroduction(s *ReceivedShare, u *protocols.UnverifiedShare, it protocols.ShareItem, p peer.ID, now time.Time) (*Request, []Mutation, string) {
	var old *Request
	for _, r := range b.requests {
		if r.Peer == p && r.Direction == Outgoing && r.StateAt(now) == Pending {
			old = r
		}
	}
	if old == nil {
		return nil, nil, "a request is already pending"
	}
	for _, in := range old.IntroducerList() {
		if in.Peer == s.From {
			return nil, nil, "a request is already pending, with " + s.FromName + "'s introduction"
		}
	}
	var wire pb.AddRequest
	if err := proto.Unmarshal(old.Wire, &wire); err != nil {
		return nil, nil, "a request is already pending"
	}
	ou, err := protocols.DecodeAddRequest(&wire)
	if err != nil || len(ou.Introduction) == 0 {
		return nil, nil, "a request is already pending (through an invite)"
	}
	intros := append([][]byte{ou.Introduction}, ou.MoreIntroductions...)
	if len(intros) >= protocols.MaxIntroductions {
		return nil, nil, fmt.Sprintf("a request is already pending, with %d introductions", len(intros))
	}
	intro, err := u.Introduction(b.me, p)
	if err != nil {
		return nil, nil, err.Error()
	}
	key, err := b.encKeyOf(p, it.Profile, now)
	if err != nil {
		return nil, nil, "the request cannot be sealed for them: " + err.Error()
	}
	id := b.requestID(s.ID, p)
	for round := uint64(1); b.requests[id] != nil; round++ {
		id = nextRequestID(id, round)
	}
	r, _, err := b.newRequestWith(id, p, old.Name, append(intros, intro), nil, ou.Offer, sealing{key: key}, old.Message, now)
	if err != nil {
		return nil, nil, err.Error()
	}
	r.Introducers = append(append([]Introducer(nil), old.IntroducerList()...), Introducer{Peer: s.From, Name: s.FromName, ShareID: s.ID})
	r.Introducer, r.IntroducerName, r.IntroducerVerified, r.ShareID = r.Introducers[0].Peer, r.Introducers[0].Name, true, r.Introducers[0].ShareID
	r.PeerProfile, r.PeerRelays = old.PeerProfile, old.PeerRelays
	r.ExpiresAt = old.Expiry() // the same offer: the same wait
	old.State = Merged
	return r, []Mutation{put(prefixRequests+r.ID.String(), r), put(prefixRequests+old.ID.String(), old)}, ""
}

// Pick plans the add requests for the shared friends the user ticked
// (patent D3 and claims 5, 6): one request per new friend, each with the
// user's half of the attestation and the sharer's introduction; friends,
// pending, blocked, refused and withdrawn items are skipped with the
// reason. Picking again never makes a second request.
func (b *Book) Pick(s *ReceivedShare, picks []peer.ID, all bool, message string, now time.Time) ([]PickResult, []Mutation, error) {
	u, err := s.share()
	if err != nil {
		return nil, nil, err
	}
	if all {
		picks = nil
		for _, it := range u.Items {
			picks = append(picks, it.Peer)
		}
	}
	if len(picks) == 0 {
		return nil, nil, Kindf(ErrBadArgument, "pick at least one friend, or --all")
	}
	if len(message) > protocols.MaxMessageText {
		return nil, nil, Kindf(ErrBadArgument, "the message is %d bytes, limit %d", len(message), protocols.MaxMessageText)
	}
	// A share's introductions last as long as its seal: past it, a
	// request would only be dropped by its recipient.
	expired := ""
	if _, err := b.verifier.Seal(u.Seal, u.Sharer, u.Body, u.Leaves(), now); identity.ReasonOf(err) == identity.ReasonExpired {
		expired = fmt.Sprintf("the share expired: %s's introductions in it no longer count; ask %s to share again", s.FromName, s.FromName)
	}
	var out []PickResult
	var muts []Mutation
	for _, p := range picks {
		it, ok := u.Item(p)
		res := PickResult{Peer: p, Name: it.Name}
		if ok && expired != "" {
			res.Reason = expired
			out = append(out, res)
			continue
		}
		if !ok {
			res.Name = b.Name(p)
			res.Reason = fmt.Sprintf("%s is not in this share", b.Name(p))
			out = append(out, res)
			continue
		}
		st := b.ItemState(s, p)
		// The same pick never asks twice; but a former friend picked by
		// name is asked anew, with a request of its own.
		id := b.requestID(s.ID, p)
		for round := uint64(1); b.requests[id] != nil; round++ {
			if r := b.requests[id]; st != ItemFormer || r.State == Pending {
				res.Reason = "already asked (" + string(r.StateAt(now)) + ")"
				break
			}
			id = nextRequestID(id, round)
		}
		if res.Reason != "" {
			out = append(out, res)
			continue
		}
		switch st {
		case ItemNew:
		case ItemFormer:
			if all {
				res.Reason = "no longer your friend: pick them by name to ask again"
			}
		case ItemFriend:
			res.Reason = "already your friend"
		case ItemPending:
			merged, m, reason := b.mergeIntroduction(s, u, it, p, now)
			if merged != nil {
				muts = append(muts, m...)
				res.Request, res.Merged = merged, true
				out = append(out, res)
				continue
			}
			res.Reason = reason
		case ItemBlocked:
			res.Reason = "you blocked them"
		case ItemRefused:
			res.Reason = "refused: " + s.Refused[p.String()]
		case ItemWithdrawn:
			res.Reason = "the share was withdrawn"
		}
		if res.Reason != "" {
			out = append(out, res)
			continue
		}
		intro, err := u.Introduction(b.me, p)
		if err != nil {
			res.Reason = err.Error()
			out = append(out, res)
			continue
		}
		key, err := b.encKeyOf(p, it.Profile, now)
		if err != nil {
			res.Reason = "the request cannot be sealed for them: " + err.Error()
			out = append(out, res)
			continue
		}
		if message == "" {
			message = fmt.Sprintf("%s shared you with %s; %s would like to be your friend.", s.FromName, b.Settings.Name, b.Settings.Name)
		}
		r, _, err := b.newRequest(id, p, it.Name, intro, nil, sealing{key: key}, message, now)
		if err != nil {
			res.Reason = err.Error()
			out = append(out, res)
			continue
		}
		r.Introducer, r.IntroducerName, r.IntroducerVerified, r.ShareID = s.From, s.FromName, true, s.ID
		r.Introducers = []Introducer{{Peer: s.From, Name: s.FromName, ShareID: s.ID}}
		r.PeerProfile = it.Profile
		muts = append(muts, put(prefixRequests+r.ID.String(), r))
		res.Request = r
		out = append(out, res)
	}
	return out, muts, nil
}

// sealing says how a request's words are sealed to its recipient: to
// their encryption key, or with their invite's secret.
type sealing struct {
	key    *identity.EncPublicKey
	secret []byte
}

func (b *Book) newRequest(id protocols.RequestID, to peer.ID, name string, intro, invite []byte, seal sealing, message string, now time.Time) (*Request, []Mutation, error) {
	return b.newRequestWith(id, to, name, [][]byte{intro}, invite, nil, seal, message, now)
}

// newRequestWith is newRequest with every introduction (intros[0] first;
// nil for a request on an invite) and, to merge with an earlier request,
// that request's offer (nil: a new one).
func (b *Book) newRequestWith(id protocols.RequestID, to peer.ID, name string, intros [][]byte, invite, offer []byte, seal sealing, message string, now time.Time) (*Request, []Mutation, error) {
	var err error
	if offer == nil {
		if offer, err = identity.MakeOffer(b.key, to, now, 0); err != nil {
			return nil, nil, err
		}
	}
	intro := intros[0]
	o, err := b.verifier.Offer(offer, to, now)
	if err != nil {
		return nil, nil, err
	}
	wire, err := protocols.BuildAddRequest(b.key, protocols.AddRequestSpec{
		ID: id, To: to, Offer: offer, Introduction: intro, MoreIntroductions: intros[1:], Invite: invite,
		Message: message, FromName: b.Settings.Name, FromProfile: b.myProfile, CreatedAt: now,
		ToKey: seal.key, InviteSecret: seal.secret, ProfileKey: b.profileKey,
	})
	if err != nil {
		return nil, nil, err
	}
	raw, _ := proto.Marshal(wire)
	r := &Request{ID: id, Direction: Outgoing, Peer: to, Name: name, State: Pending, Message: message,
		CreatedAt: now, Wire: raw, OfferID: o.ID, Sent: Queued, ExpiresAt: now.Add(RequestLifetime)}
	for _, raw := range intros {
		if len(raw) == 0 {
			continue
		}
		if in, err := b.verifier.Introduction(raw, now); err == nil {
			r.RestsOn = append(r.RestsOn, in.RecipientAttestation, in.SubjectAttestation)
		}
	}
	b.requests[id] = r
	if name != "" {
		b.names[to] = name
	}
	return r, []Mutation{put(prefixRequests+id.String(), r)}, nil
}

// inviteWords says in a person's words why an invite does not verify.
func inviteWords(err error) string {
	switch identity.ReasonOf(err) {
	case identity.ReasonExpired:
		return "this invite has expired: ask for a new one"
	case identity.ReasonNotYetValid:
		return "this invite is not valid yet (is this computer's clock right?)"
	case identity.ReasonBadSignature:
		return "this invite link was altered on the way: ask for it again"
	}
	return "this invite link is damaged or incomplete: copy the whole link again"
}

// AddByInvite makes a friend request to the inviter of an invite link.
func (b *Book) AddByInvite(link, message string, now time.Time) (*Request, *identity.Invite, []Mutation, error) {
	raw, secret, err := identity.ParseInviteLink(link)
	if err != nil {
		return nil, nil, nil, Kindf(ErrBadArgument, "this is not an invite link, or not all of one: copy the whole link (it starts with %s) and try again", identity.InviteLinkPrefix)
	}
	in, err := b.verifier.Invite(raw, now)
	if err != nil {
		return nil, nil, nil, Kindf(ErrBadArgument, "%s", inviteWords(err))
	}
	if len(secret) == 0 {
		return nil, nil, nil, Kindf(ErrBadArgument, "this invite link is from an older Kith and has no secret to seal the request with; ask %s for a new link", in.Name)
	}
	name, err := in.OpenName(secret)
	if err != nil {
		return nil, nil, nil, Kindf(ErrBadArgument, "the invite link is damaged: %v", err)
	}
	if in.Inviter == b.me {
		return nil, nil, nil, Kindf(ErrBadArgument, "that is your own invite")
	}
	if b.friends[in.Inviter] != nil {
		return nil, nil, nil, Kindf(ErrBadArgument, "%s is already your friend", name)
	}
	// The id comes from the invite and the user, so that adding twice
	// (a retry, a second click) asks once. A request already answered
	// (accepted, then the friendship ended; or refused) is not asked
	// again: a new one with its own id and a fresh offer is.
	h := sha256.Sum256(append([]byte("kith/invite-request/v1"), append(in.Token[:], []byte(b.me)...)...))
	var id protocols.RequestID
	copy(id[:], h[:])
	for round := uint64(1); b.requests[id] != nil; round++ {
		if r := b.requests[id]; r.State == Pending {
			return r, in, nil, nil
		}
		id = nextRequestID(id, round)
	}
	if message == "" {
		message = fmt.Sprintf("%s would like to be your friend.", b.Settings.Name)
	}
	r, _, err := b.newRequest(id, in.Inviter, name, nil, raw, sealing{secret: secret}, message, now)
	if err != nil {
		return nil, nil, nil, err
	}
	r.ViaInvite = true
	if pack, err := in.OpenPack(secret); err == nil && pack != nil {
		r.PackLabel, r.PackSize = pack.Label, pack.Members
	}
	for _, a := range in.Relays {
		r.PeerRelays = append(r.PeerRelays, a.String())
	}
	return r, in, []Mutation{put(prefixRequests+r.ID.String(), r)}, nil
}

// MarkSent records how an outgoing request left.
func (b *Book) MarkSent(id protocols.RequestID, how Delivery) []Mutation {
	r := b.requests[id]
	if r == nil || r.Sent == how {
		return nil
	}
	r.Sent = how
	return []Mutation{put(prefixRequests+id.String(), r)}
}

// RequestAnswered decides what a relay's result for outgoing request id,
// sent in a combined request, means (res is nil when the relay answered
// the message without one, with text): sent, queued to be retried (a
// full mailbox, a throttled invite, no answer), or skipped for good (the
// relay refused it, with its reason). It records the outcomes that stick.
func (b *Book) RequestAnswered(id protocols.RequestID, res *pb.AddResult, text string, now time.Time) (Delivery, string, []Mutation) {
	switch {
	case res == nil:
		return Queued, text, nil
	case res.Reason == pb.Reason_MOVED:
		// Learnt, the newer profile sends it to where they are now.
		return Queued, "they moved to other home relays; it goes there next", b.LearnProfile(res.Profile, now)
	case res.Delivery == pb.Delivery_DELIVERED || res.Delivery == pb.Delivery_STORED:
		return SentRelay, "", b.MarkSent(id, SentRelay)
	case res.Reason == pb.Reason_MAILBOX_FULL:
		return Queued, "their mailbox is full; it will be retried", nil
	case res.Reason == pb.Reason_THROTTLED:
		return Queued, "their invite was used by many just now; it will be retried", nil
	}
	reason := protocols.ReasonText(res.Reason)
	if res.Detail != "" {
		reason = res.Detail
	}
	return Skipped, "the relay refused it: " + reason, b.MarkSent(id, Skipped)
}

// MarkAnswerSent records how an acceptance left.
func (b *Book) MarkAnswerSent(id protocols.RequestID, how Delivery) []Mutation {
	r := b.requests[id]
	if r == nil || r.AnswerSent == how {
		return nil
	}
	r.AnswerSent = how
	return []Mutation{put(prefixRequests+id.String(), r)}
}

// Requests returns requests in and out, newest first.
func (b *Book) Requests() []*Request {
	out := make([]*Request, 0, len(b.requests))
	for _, r := range b.requests {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// Request returns a request by id.
func (b *Book) Request(id protocols.RequestID) *Request { return b.requests[id] }

// FindRequest resolves a full id or a unique prefix (4+ hex digits).
func (b *Book) FindRequest(s string) (*Request, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 4 {
		return nil, Kindf(ErrBadArgument, "request id %q is too short", s)
	}
	var found []*Request
	for id, r := range b.requests {
		if strings.HasPrefix(id.String(), s) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, Kindf(ErrNotFound, "no request %q (see: kith requests)", s)
	case 1:
		return found[0], nil
	}
	return nil, Kindf(ErrAmbiguous, "%d requests start with %q", len(found), s)
}

// Unsent returns outgoing requests and acceptances still to deliver.
func (b *Book) Unsent(now time.Time) (requests, answers []*Request) {
	for _, r := range b.requests {
		if r.Direction == Outgoing && r.StateAt(now) == Pending && r.Sent == Queued {
			requests = append(requests, r)
		}
		if r.Direction == Incoming && r.State == Accepted && (r.AnswerSent == "" || r.AnswerSent == Queued) {
			answers = append(answers, r)
		}
	}
	sortRequests(requests)
	sortRequests(answers)
	return requests, answers
}

// sortRequests orders rs oldest first, then by peer (ids are random):
// what is sent in turn goes in the same order every time.
func sortRequests(rs []*Request) {
	slices.SortFunc(rs, func(a, b *Request) int {
		return oldestFirst(a.CreatedAt, b.CreatedAt, string(a.Peer), string(b.Peer), a.ID[:], b.ID[:])
	})
}

// oldestFirst orders by time, then by key, then by id.
func oldestFirst(at, bt time.Time, ak, bk string, aid, bid []byte) int {
	if c := at.Compare(bt); c != 0 {
		return c
	}
	if c := strings.Compare(ak, bk); c != 0 {
		return c
	}
	return bytes.Compare(aid, bid)
}
