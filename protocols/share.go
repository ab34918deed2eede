package protocols

import (
	"bytes"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols/pb"
)

// DefaultShareValidity is how long the introductions of a share stay
// valid: the window in which its targets may send add requests on it.
const DefaultShareValidity = 30 * 24 * time.Hour

// ShareTarget is a recipient of a share, with the sharer<->target
// attestation.
type ShareTarget struct {
	Peer        peer.ID
	Attestation []byte
	// Key is the target's encryption key: BuildShare seals the share's
	// words and names to it. Decoded shares leave it nil.
	Key *identity.EncPublicKey
	// Sealed is the target's ShareSecret, sealed to them.
	Sealed []byte
}

// ShareItem is one shared friend.
type ShareItem struct {
	Peer        peer.ID
	Name        string // as the sharer knows them; unverified; sealed to each target
	Group       string // the sharer's group it was picked through, if any; sealed too
	Attestation []byte // sharer<->item attestation
	Salt        identity.Salt
	Profile     []byte // optional: the item's signed profile
	// Consent is the item's identity consent to be shared by the sharer
	// with the share's one target: required when their profile's policy
	// is identity.ShareAskFirst.
	Consent []byte
}

// ShareSpec is what a sharer asks to send; BuildShare signs it. The
// sharer's name, the note, and the items' names and groups are sealed to
// each target; nothing of them is in clear.
type ShareSpec struct {
	ID         identity.ShareID // zero: a random id
	SharerName string
	Targets    []ShareTarget
	Items      []ShareItem // salts are filled in when zero
	Mode       pb.ShareMode
	Note       string
	CreatedAt  time.Time
	Validity   time.Duration // of the introductions; DefaultShareValidity when zero
	// Awaiting counts, sealed to each target, the friends the sharer
	// picked who are asked first: a placeholder that names nobody.
	Awaiting int
	// Pack, sealed too, is the welcome pack's label this share keeps the
	// promise of.
	Pack string
}

// UnverifiedShare is a share that decoded and follows the structural rules
// (sizes, counts, well-formed ids, no duplicates), but whose seal and
// attestations have not been checked. VerifyShare checks them.
//
// A share's words and names (SharerName, Note, the items' Name and Group)
// are sealed to each target: they are empty until Reveal fills them from a
// target's ShareSecret, except in shares of older nodes, which sent them
// in clear.
type UnverifiedShare struct {
	ID         identity.ShareID
	Sharer     peer.ID
	SharerName string
	Targets    []ShareTarget
	Items      []ShareItem
	Mode       pb.ShareMode
	CreatedAt  time.Time
	Note       string
	Body       []byte // exact ShareBody bytes
	Seal       []byte // exact seal bytes
	Raw        []byte // exact Share bytes: what the relay stores and forwards
}

// BuildShare signs spec with key and returns the share, ready to send
// (Raw) and structurally checked as a relay would. Each target's part is
// sealed to its Key; a target without one fails with identity.ErrNoEncKey,
// unless the share has nothing to say in confidence.
func BuildShare(key crypto.PrivKey, spec ShareSpec) (*UnverifiedShare, error) {
	sharer, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("protocols: share: %w", err)
	}
	if spec.ID == (identity.ShareID{}) {
		spec.ID = identity.NewShareID()
	}
	if spec.Validity <= 0 {
		spec.Validity = DefaultShareValidity
	}
	body := &pb.ShareBody{
		ShareId:   spec.ID[:],
		Sharer:    []byte(sharer),
		Mode:      spec.Mode,
		CreatedAt: spec.CreatedAt.Unix(),
	}
	if spec.Awaiting < 0 || spec.Awaiting > MaxItemsPerShare {
		return nil, fmt.Errorf("protocols: %d friends awaiting consent", spec.Awaiting)
	}
	if err := checkText("pack", spec.Pack, identity.MaxNameBytes); err != nil {
		return nil, err
	}
	secret := &pb.ShareSecret{SharerName: spec.SharerName, Note: spec.Note, Awaiting: uint32(spec.Awaiting), Pack: spec.Pack}
	for _, it := range spec.Items {
		if it.Salt == (identity.Salt{}) {
			it.Salt = identity.NewSalt()
		}
		body.Items = append(body.Items, &pb.ShareItem{
			Peer: []byte(it.Peer), Attestation: it.Attestation, Salt: it.Salt[:], Profile: it.Profile, Consent: it.Consent,
		})
		secret.Items = append(secret.Items, &pb.ItemSecret{Name: it.Name, Group: it.Group})
	}
	if err := checkSecret(secret, len(spec.Items)); err != nil {
		return nil, err
	}
	secretRaw, err := proto.Marshal(secret)
	if err != nil {
		return nil, err
	}
	for _, t := range spec.Targets {
		var sealed []byte
		if t.Key != nil || !secretEmpty(secret) {
			if sealed, err = identity.SealTo(t.Key, PurposeShare, shareBinding(spec.ID, t.Peer), secretRaw); err != nil {
				return nil, fmt.Errorf("protocols: share to %s: %w", identity.ShortID(t.Peer), err)
			}
		}
		body.Targets = append(body.Targets, &pb.ShareTarget{Peer: []byte(t.Peer), Attestation: t.Attestation, Sealed: sealed})
	}
	bodyRaw, err := proto.Marshal(body)
	if err != nil {
		return nil, err
	}
	// Check the structure before signing, so the sharer hears the same
	// refusal a relay would give.
	u, err := decodeShareBody(bodyRaw, Limits{})
	if err != nil {
		return nil, err
	}
	seal, err := identity.SealShare(key, spec.ID, bodyRaw, u.Leaves(), spec.CreatedAt, spec.CreatedAt.Add(spec.Validity))
	if err != nil {
		return nil, err
	}
	u.Seal = seal
	u.Raw, err = proto.Marshal(&pb.Share{Body: bodyRaw, Seal: seal})
	if err != nil {
		return nil, err
	}
	u.Reveal(&ShareSecret{SharerName: spec.SharerName, Note: spec.Note, Items: itemSecrets(secret), Awaiting: spec.Awaiting})
	return u, nil
}

// secretEmpty reports whether a share has nothing to say in confidence
// (no names, no note): then a target without a key gets no sealed part.
func secretEmpty(s *pb.ShareSecret) bool {
	if s.SharerName != "" || s.Note != "" {
		return false
	}
	for _, it := range s.Items {
		if it.Name != "" || it.Group != "" {
			return false
		}
	}
	return true
}

func itemSecrets(s *pb.ShareSecret) []ItemSecret {
	out := make([]ItemSecret, len(s.Items))
	for i, it := range s.Items {
		out[i] = ItemSecret{Name: it.Name, Group: it.Group}
	}
	return out
}

// DecodeShare parses a share and checks its structure against lim. Errors
// are *StatusError with BAD_REQUEST or TOO_LARGE.
func DecodeShare(raw []byte, lim Limits) (*UnverifiedShare, error) {
	if len(raw) > MaxShareMessage {
		return nil, Errorf(pb.Status_TOO_LARGE, "share of %d bytes, limit %d", len(raw), MaxShareMessage)
	}
	var m pb.Share
	if err := proto.Unmarshal(raw, &m); err != nil {
		return nil, Errorf(pb.Status_BAD_REQUEST, "share does not decode: %v", err)
	}
	if len(m.Seal) == 0 {
		return nil, Errorf(pb.Status_BAD_REQUEST, "share has no seal")
	}
	if len(m.Seal) > identity.MaxRecordSize {
		return nil, Errorf(pb.Status_TOO_LARGE, "seal of %d bytes", len(m.Seal))
	}
	u, err := decodeShareBody(m.Body, lim)
	if err != nil {
		return nil, err
	}
	u.Seal = m.Seal
	u.Raw = raw
	return u, nil
}

func checkText(what, s string, max int) error {
	if len(s) > max {
		return Errorf(pb.Status_TOO_LARGE, "%s is %d bytes, limit %d", what, len(s), max)
	}
	if !utf8.ValidString(s) {
		return Errorf(pb.Status_BAD_REQUEST, "%s is not UTF-8", what)
	}
	return nil
}

func decodePeer(what string, b []byte) (peer.ID, error) {
	return decodePeerN(what, -1, b)
}

// decodePeerN is decodePeer for the n-th of a list ("target 3"), naming
// it only if it fails.
func decodePeerN(what string, n int, b []byte) (peer.ID, error) {
	if id, err := identity.PeerFromBytes(b); err == nil {
		return id, nil
	}
	if n >= 0 {
		what = fmt.Sprintf("%s %d", what, n)
	}
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return "", Errorf(pb.Status_BAD_REQUEST, "%s is not a peer id", what)
	}
	if _, err := identity.PublicKey(id); err != nil {
		return "", Errorf(pb.Status_BAD_REQUEST, "%s %s is not an Ed25519 peer id", what, id)
	}
	return id, nil
}

func decodeShareBody(raw []byte, lim Limits) (*UnverifiedShare, error) {
	var b pb.ShareBody
	if err := proto.Unmarshal(raw, &b); err != nil {
		return nil, Errorf(pb.Status_BAD_REQUEST, "share body does not decode: %v", err)
	}
	id, err := identity.ShareIDFromBytes(b.ShareId)
	if err != nil {
		return nil, Errorf(pb.Status_BAD_REQUEST, "%v", err)
	}
	sharer, err := decodePeer("sharer", b.Sharer)
	if err != nil {
		return nil, err
	}
	if err := checkText("sharer name", b.SharerName, identity.MaxNameBytes); err != nil {
		return nil, err
	}
	if err := checkText("note", b.Note, MaxMessageText); err != nil {
		return nil, err
	}
	if b.Mode != pb.ShareMode_ALL_OR_NOTHING && b.Mode != pb.ShareMode_PARTIAL {
		return nil, Errorf(pb.Status_BAD_REQUEST, "unknown share mode %d", b.Mode)
	}
	switch {
	case len(b.Targets) == 0:
		return nil, Errorf(pb.Status_BAD_REQUEST, "share has no target")
	case len(b.Items) == 0:
		return nil, Errorf(pb.Status_BAD_REQUEST, "share has no shared friend")
	case len(b.Targets) > lim.targets():
		return nil, Errorf(pb.Status_TOO_LARGE, "%d targets, limit %d", len(b.Targets), lim.targets())
	case len(b.Items) > lim.items():
		return nil, Errorf(pb.Status_TOO_LARGE, "%d shared friends, limit %d", len(b.Items), lim.items())
	}
	u := &UnverifiedShare{
		ID: id, Sharer: sharer, SharerName: b.SharerName, Mode: b.Mode,
		CreatedAt: time.Unix(b.CreatedAt, 0).UTC(), Note: b.Note, Body: raw,
	}
	seen := map[peer.ID]string{sharer: "the sharer"}
	for i, t := range b.Targets {
		p, err := decodePeerN("target", i, t.Peer)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[p]; dup {
			return nil, Errorf(pb.Status_BAD_REQUEST, "target %s is also %s", p, prev)
		}
		seen[p] = "a target"
		if len(t.Attestation) > identity.MaxRecordSize {
			return nil, Errorf(pb.Status_TOO_LARGE, "attestation of target %s is %d bytes", p, len(t.Attestation))
		}
		if len(t.Sealed) > maxShareSecret {
			return nil, Errorf(pb.Status_TOO_LARGE, "the sealed part for target %s is %d bytes, limit %d", p, len(t.Sealed), maxShareSecret)
		}
		u.Targets = append(u.Targets, ShareTarget{Peer: p, Attestation: t.Attestation, Sealed: t.Sealed})
	}
	u.Items = make([]ShareItem, 0, len(b.Items))
	for i, it := range b.Items {
		p, err := decodePeerN("item", i, it.Peer)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[p]; dup {
			return nil, Errorf(pb.Status_BAD_REQUEST, "shared friend %s is also %s", p, prev)
		}
		seen[p] = "a shared friend"
		if err := checkText("item name", it.Name, identity.MaxNameBytes); err != nil {
			return nil, err
		}
		if err := checkText("group name", it.Group, identity.MaxNameBytes); err != nil {
			return nil, err
		}
		if len(it.Attestation) > identity.MaxRecordSize || len(it.Profile) > identity.MaxRecordSize || len(it.Consent) > identity.MaxRecordSize {
			return nil, Errorf(pb.Status_TOO_LARGE, "records of item %s are too large", p)
		}
		if len(it.Salt) != len(identity.Salt{}) {
			return nil, Errorf(pb.Status_BAD_REQUEST, "item %s has a salt of %d bytes", p, len(it.Salt))
		}
		item := ShareItem{Peer: p, Name: it.Name, Group: it.Group, Attestation: it.Attestation, Profile: it.Profile, Consent: it.Consent}
		copy(item.Salt[:], it.Salt)
		u.Items = append(u.Items, item)
	}
	return u, nil
}

// Leaves returns the share's introduction leaves in seal order: for each
// target, for each item.
func (s *UnverifiedShare) Leaves() []identity.IntroLeaf {
	leaves := make([]identity.IntroLeaf, 0, len(s.Targets)*len(s.Items))
	for _, t := range s.Targets {
		for _, it := range s.Items {
			leaves = append(leaves, identity.IntroLeaf{Recipient: t.Peer, Subject: it.Peer, Salt: it.Salt})
		}
	}
	return leaves
}

// Introduction returns the introduction of target to item, for the target
// to hand to the item with its add request: the sharer's seal, the leaf's
// path, and the sharer's attestations with target and item that the share
// carries, so that the relay and the item can check that the sharer is a
// friend of both.
func (s *UnverifiedShare) Introduction(target, item peer.ID) ([]byte, error) {
	ti, ii := -1, -1
	for i, t := range s.Targets {
		if t.Peer == target {
			ti = i
		}
	}
	for i, it := range s.Items {
		if it.Peer == item {
			ii = i
		}
	}
	if ti < 0 || ii < 0 {
		return nil, fmt.Errorf("protocols: share %s does not introduce %s to %s", s.ID, target, item)
	}
	return identity.MakeIntroduction(s.Seal, s.Sharer, s.ID, s.Body, s.Leaves(), ti*len(s.Items)+ii,
		s.Targets[ti].Attestation, s.Items[ii].Attestation)
}

// Item returns the item for p, if the share has one.
func (s *UnverifiedShare) Item(p peer.ID) (ShareItem, bool) {
	for _, it := range s.Items {
		if it.Peer == p {
			return it, true
		}
	}
	return ShareItem{}, false
}

// HasTarget reports whether p is a target of the share.
func (s *UnverifiedShare) HasTarget(p peer.ID) bool {
	for _, t := range s.Targets {
		if t.Peer == p {
			return true
		}
	}
	return false
}

// ShareVerdict is the outcome of verifying a share.
type ShareVerdict struct {
	Seal     *identity.Seal
	Targets  []ShareTarget // targets whose attestation with the sharer holds
	Items    []ShareItem   // items that may be shared
	Failures []Failure     // every id that failed, with its reason
	// Attestations names, for each valid target and item, the
	// sharer<->peer attestation the verdict rests on.
	Attestations map[peer.ID]identity.AttestationID
}

// Refused reports whether the share must not be forwarded at all: in
// all-or-nothing mode any failure refuses it; in partial mode, having no
// valid target or no valid item does.
func (v *ShareVerdict) Refused(mode pb.ShareMode) bool {
	if mode == pb.ShareMode_ALL_OR_NOTHING {
		return len(v.Failures) > 0
	}
	return len(v.Targets) == 0 || len(v.Items) == 0
}

// ProfileLookup returns the newest verified profile known for p, or nil.
type ProfileLookup func(p peer.ID) *identity.Profile

// VerifyShare checks a share end to end, as the relay does before relaying
// it and the target does on receipt: the sharer's seal over exactly this
// body and its introductions (one signature), then each sharer<->target
// and sharer<->item attestation, and each item's sharing policy (from the
// profile carried in the share or, when newer, from profiles).
//
// A bad seal fails the whole share: the error is a *StatusError REFUSED
// naming the sharer. Otherwise the verdict lists what holds and what failed;
// the caller decides by mode (see ShareVerdict.Refused).
func VerifyShare(v *identity.Verifier, s *UnverifiedShare, now time.Time, profiles ProfileLookup) (*ShareVerdict, error) {
	seal, err := v.Seal(s.Seal, s.Sharer, s.Body, s.Leaves(), now)
	if err != nil {
		f := NewFailure(s.Sharer, pb.Role_SHARER, err)
		return nil, &StatusError{Status: pb.Status_REFUSED, Text: "the share's seal does not verify", Failures: []Failure{f}}
	}
	verdict := &ShareVerdict{Seal: seal, Attestations: make(map[peer.ID]identity.AttestationID, len(s.Targets)+len(s.Items)),
		Items: make([]ShareItem, 0, len(s.Items))}
	for _, t := range s.Targets {
		a, err := v.Friendship(t.Attestation, s.Sharer, t.Peer, now)
		if err != nil {
			verdict.Failures = append(verdict.Failures, NewFailure(t.Peer, pb.Role_TARGET, err))
			continue
		}
		verdict.Targets = append(verdict.Targets, t)
		verdict.Attestations[t.Peer] = a.ID
	}
	for _, it := range s.Items {
		a, err := v.Friendship(it.Attestation, s.Sharer, it.Peer, now)
		if err != nil {
			verdict.Failures = append(verdict.Failures, NewFailure(it.Peer, pb.Role_ITEM, err))
			continue
		}
		if err := itemShareable(v, s, it, now, profiles); err != nil {
			verdict.Failures = append(verdict.Failures, NewFailure(it.Peer, pb.Role_ITEM, err))
			continue
		}
		verdict.Items = append(verdict.Items, it)
		verdict.Attestations[it.Peer] = a.ID
	}
	return verdict, nil
}

// itemShareable checks what the item's newest known profile says of
// being shared: nobody refuses; ask first wants the item's consent naming
// the share's sharer and its one target.
func itemShareable(v *identity.Verifier, s *UnverifiedShare, it ShareItem, now time.Time, profiles ProfileLookup) error {
	var consent *identity.Consent
	if len(it.Consent) > 0 {
		c, err := v.Consent(it.Consent, now)
		if err != nil {
			return err
		}
		if c.Subject != it.Peer || c.Sharer != s.Sharer || len(s.Targets) != 1 || s.Targets[0].Peer != c.Target {
			return &identity.VerifyError{Record: "consent", Reason: identity.ReasonWrongPair,
				Detail: fmt.Sprintf("%s's consent is for %s to share them with %s, and only with them", identity.ShortID(c.Subject), identity.ShortID(c.Sharer), identity.ShortID(c.Target))}
		}
		consent = c
	}
	var newest *identity.Profile
	if len(it.Profile) > 0 {
		p, err := v.Profile(it.Profile, now)
		if err != nil {
			return err
		}
		if p.Owner != it.Peer {
			return p.Shareable(it.Peer) // wrong pair
		}
		newest = p
	}
	if profiles != nil {
		if p := profiles(it.Peer); p != nil && (newest == nil || p.Seq > newest.Seq) {
			newest = p
		}
	}
	return newest.ShareableWith(it.Peer, consent)
}

// Equal reports whether two shares are byte-for-byte the same.
func (s *UnverifiedShare) Equal(o *UnverifiedShare) bool {
	return bytes.Equal(s.Raw, o.Raw)
}
