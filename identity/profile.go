package identity

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// Limits on profile fields.
const (
	MaxNameBytes     = 64
	MaxProfileRelays = 8
)

// SharingPolicy says who may share a user with others.
type SharingPolicy int

// The sharing policies.
const (
	// ShareByFriends lets any friend of the owner share them (the default).
	ShareByFriends SharingPolicy = SharingPolicy(pb.SharingPolicy_SHARING_FRIENDS)
	// ShareByNobody makes relays refuse any share that includes the owner.
	ShareByNobody SharingPolicy = SharingPolicy(pb.SharingPolicy_SHARING_NOBODY)
	// ShareAskFirst lets a friend share the owner only with the owner's
	// Consent naming that friend and the share's one target.
	ShareAskFirst SharingPolicy = SharingPolicy(pb.SharingPolicy_SHARING_ASK)
)

// valid reports whether p is one of the policies.
func (p SharingPolicy) valid() bool {
	return p == ShareByFriends || p == ShareByNobody || p == ShareAskFirst
}

// String returns "friends", "nobody" or "ask".
func (p SharingPolicy) String() string {
	switch p {
	case ShareByFriends:
		return "friends"
	case ShareByNobody:
		return "nobody"
	case ShareAskFirst:
		return "ask"
	}
	return fmt.Sprintf("policy(%d)", int(p))
}

// ProfileInfo is what a user fills in; NewProfile signs it.
type ProfileInfo struct {
	Name   string
	Relays []ma.Multiaddr
	Seq    uint64
	Policy SharingPolicy
	// EncKey is the user's current encryption key, published so that
	// others can seal to them.
	EncKey *EncPublicKey
	// ProfileKey, when set, seals the name: only holders of the key (the
	// user's friends) read it. Without one the name is in clear, as
	// profiles of older nodes have it.
	ProfileKey *ProfileKey
	// RevokedInvites are the tokens of the user's invites withdrawn before
	// they expire: relays refuse requests resting on them. At most
	// MaxRevokedInvites.
	RevokedInvites [][16]byte
}

// MaxRevokedInvites bounds the withdrawn invites a profile lists: a node
// lists the most recently withdrawn that have not expired yet.
const MaxRevokedInvites = 64

// maxNameBox caps a sealed name: nonce, the name, the tag.
const maxNameBox = 24 + MaxNameBytes + 16

// Profile is a verified profile: the owner's own signed statement of their
// name, home relays and sharing policy.
type Profile struct {
	Owner    peer.ID
	Name     string // in clear: profiles of older nodes only; see OpenName
	Relays   []ma.Multiaddr
	Seq      uint64
	Policy   SharingPolicy
	IssuedAt time.Time
	Raw      []byte // exact SignedRecord bytes

	encKey  []byte // checked for size only; EncKey parses it
	nameBox []byte
	nameKey []byte
	revoked map[[16]byte]bool
}

// InviteRevoked reports whether the profile says the owner withdrew the
// invite with token (revoked it, or it was used up).
func (p *Profile) InviteRevoked(token [16]byte) bool { return p != nil && p.revoked[token] }

// HasEncKey reports whether the profile publishes an encryption key.
func (p *Profile) HasEncKey() bool { return p != nil && len(p.encKey) > 0 }

// EncKey returns the owner's encryption key, or ErrNoEncKey when the
// profile publishes none (it was made by an older node).
func (p *Profile) EncKey() (*EncPublicKey, error) {
	if p == nil || len(p.encKey) == 0 {
		return nil, ErrNoEncKey
	}
	return ParseEncPublicKey(p.encKey)
}

// SealedName reports whether the name is sealed under a profile key.
func (p *Profile) SealedName() bool { return len(p.nameBox) > 0 }

// OpensName reports whether k is the key the name is sealed under.
func (p *Profile) OpensName(k ProfileKey) bool {
	return len(p.nameKey) > 0 && string(p.nameKey) == string(k.ID())
}

// OpenName returns the display name: in clear in older profiles, else
// opened with the owner's profile key. Errors wrap ErrCannotOpen.
func (p *Profile) OpenName(k ProfileKey) (string, error) {
	if !p.SealedName() {
		return p.Name, nil
	}
	if !p.OpensName(k) {
		return "", fmt.Errorf("%w: not this profile's key", ErrCannotOpen)
	}
	name, err := openText(k[:], "profile-name", []byte(p.Owner), p.nameBox)
	if err != nil {
		return "", err
	}
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrCannotOpen, err)
	}
	return name, nil
}

// ValidateName checks a display name: 1 to MaxNameBytes bytes of UTF-8,
// no control characters, not only spaces.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("identity: name is empty")
	case len(name) > MaxNameBytes:
		return fmt.Errorf("identity: name is %d bytes, limit %d", len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("identity: name is not UTF-8")
	}
	blank := true
	for _, r := range name {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return fmt.Errorf("identity: name contains control characters")
		}
		if !unicode.IsSpace(r) {
			blank = false
		}
	}
	if blank {
		return fmt.Errorf("identity: name is blank")
	}
	return nil
}

// NewProfile signs info with key as of now.
func NewProfile(key crypto.PrivKey, info ProfileInfo, now time.Time) ([]byte, error) {
	if err := ValidateName(info.Name); err != nil {
		return nil, err
	}
	if len(info.Relays) > MaxProfileRelays {
		return nil, fmt.Errorf("identity: %d relays, limit %d", len(info.Relays), MaxProfileRelays)
	}
	if !info.Policy.valid() {
		return nil, fmt.Errorf("identity: unknown sharing policy %d", info.Policy)
	}
	if len(info.RevokedInvites) > MaxRevokedInvites {
		return nil, fmt.Errorf("identity: %d revoked invites, limit %d", len(info.RevokedInvites), MaxRevokedInvites)
	}
	owner, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: profile: %w", err)
	}
	body := &pb.ProfileBody{
		Owner:    []byte(owner),
		Name:     info.Name,
		Seq:      info.Seq,
		Policy:   pb.SharingPolicy(info.Policy),
		IssuedAt: unix(now),
	}
	if info.EncKey != nil {
		body.EncKey = info.EncKey.Bytes()
	}
	if info.ProfileKey != nil {
		k := *info.ProfileKey
		if body.NameBox, err = sealText(k[:], "profile-name", []byte(owner), info.Name); err != nil {
			return nil, err
		}
		body.Name, body.NameKey = "", k.ID()
	}
	for _, r := range info.Relays {
		body.Relays = append(body.Relays, r.Bytes())
	}
	for _, t := range info.RevokedInvites {
		body.RevokedInvites = append(body.RevokedInvites, t[:])
	}
	b, err := proto.Marshal(body)
	if err != nil {
		return nil, err
	}
	sig, err := sign(key, DomainProfile, b)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedRecord{Body: b, Signature: sig})
}

// Profile verifies a profile: well formed, signed by its owner, not issued
// in the future.
func (v *Verifier) Profile(raw []byte, now time.Time) (*Profile, error) {
	k, cached, ok := v.lookup(kindProfile, raw)
	var p *Profile
	if ok {
		p = cached.(*Profile)
	} else {
		var err error
		if p, err = decodeProfile(raw); err != nil {
			return nil, err
		}
		v.remember(k, p)
	}
	if err := v.checkWindow("profile", p.IssuedAt, time.Time{}, now); err != nil {
		return nil, err
	}
	return p, nil
}

func decodeProfile(raw []byte) (*Profile, error) {
	const record = "profile"
	var body pb.ProfileBody
	sr, err := openSigned(record, "profile", raw, &body)
	if err != nil {
		return nil, err
	}
	owner, pub, err := parsePeer(body.Owner)
	if err != nil {
		return nil, malformed(record, err, "owner")
	}
	switch {
	case len(body.NameBox) == 0:
		if err := ValidateName(body.Name); err != nil {
			return nil, malformed(record, err, "")
		}
	case body.Name != "":
		return nil, fail(record, ReasonMalformed, "both a name and a sealed name")
	case len(body.NameBox) > maxNameBox:
		return nil, fail(record, ReasonMalformed, "sealed name of %d bytes, limit %d", len(body.NameBox), maxNameBox)
	case len(body.NameKey) != 16:
		return nil, fail(record, ReasonMalformed, "sealed name without the id of its key")
	}
	if len(body.EncKey) != 0 && len(body.EncKey) != EncPublicKeySize {
		return nil, fail(record, ReasonMalformed, "encryption key of %d bytes, want %d", len(body.EncKey), EncPublicKeySize)
	}
	if len(body.Relays) > MaxProfileRelays {
		return nil, fail(record, ReasonMalformed, "%d relays, limit %d", len(body.Relays), MaxProfileRelays)
	}
	if !SharingPolicy(body.Policy).valid() {
		return nil, fail(record, ReasonMalformed, "unknown sharing policy %d", body.Policy)
	}
	if len(body.RevokedInvites) > MaxRevokedInvites {
		return nil, fail(record, ReasonMalformed, "%d revoked invites, limit %d", len(body.RevokedInvites), MaxRevokedInvites)
	}
	var revoked map[[16]byte]bool
	for _, t := range body.RevokedInvites {
		if len(t) != 16 {
			return nil, fail(record, ReasonMalformed, "a revoked invite token of %d bytes, want 16", len(t))
		}
		if revoked == nil {
			revoked = make(map[[16]byte]bool, len(body.RevokedInvites))
		}
		revoked[[16]byte(t)] = true
	}
	p := &Profile{
		Owner:    owner,
		Name:     body.Name,
		Seq:      body.Seq,
		Policy:   SharingPolicy(body.Policy),
		IssuedAt: fromUnix(body.IssuedAt),
		Raw:      raw,
		encKey:   body.EncKey,
		nameBox:  body.NameBox,
		nameKey:  body.NameKey,
		revoked:  revoked,
	}
	for _, rb := range body.Relays {
		a, err := ma.NewMultiaddrBytes(rb)
		if err != nil {
			return nil, malformed(record, err, "relay address")
		}
		p.Relays = append(p.Relays, a)
	}
	if !verifySig(pub, DomainProfile, sr.Body, sr.Signature) {
		return nil, fail(record, ReasonBadSignature, "owner %s did not sign it", ShortID(owner))
	}
	return p, nil
}

// Shareable says whether subject may be shared, given their profile (nil
// when none is known, which means the default: friends may share). It
// returns a *VerifyError with ReasonOptedOut when the owner said nobody,
// or asks first and no consent is given (ShareableWith checks one), and
// ReasonWrongPair when the profile is someone else's.
func (p *Profile) Shareable(subject peer.ID) error {
	return p.ShareableWith(subject, nil)
}

// ShareableWith is Shareable for a share that carries consent (nil when
// it carries none), already verified and checked against the share's
// sharer and target by the caller.
func (p *Profile) ShareableWith(subject peer.ID, consent *Consent) error {
	if p == nil {
		return nil
	}
	if p.Owner != subject {
		return fail("profile", ReasonWrongPair, "profile of %s given for %s", ShortID(p.Owner), ShortID(subject))
	}
	switch p.Policy {
	case ShareByNobody:
		return fail("profile", ReasonOptedOut, "%s does not allow being shared", ShortID(subject))
	case ShareAskFirst:
		if consent == nil || consent.Subject != subject {
			return fail("profile", ReasonOptedOut, "%s asks to be asked first, and the share carries no consent of theirs", ShortID(subject))
		}
	}
	return nil
}
