package identity

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity/pb"
)

// DomainInvite separates invite signatures from every other signature.
const DomainInvite = "kith/invite/v1"

// InviteLinkPrefix starts the text form of an invite.
const InviteLinkPrefix = "kith:invite:"

// DefaultInviteValidity is how long an invite can be used.
const DefaultInviteValidity = 14 * 24 * time.Hour

// Invite is a verified invite: the inviter's signed permission to send them
// a friend request without an introduction. It carries what a stranger
// needs to reach the inviter: their id, name and relays.
//
// The link carries, after the signed record, a secret the record never
// does: it opens the inviter's name and seals the request made with the
// invite, so a relay that stores the request reads neither.
type Invite struct {
	Inviter   peer.ID
	Name      string // in clear: invites of older nodes only; see OpenName
	Relays    []ma.Multiaddr
	Token     [16]byte
	IssuedAt  time.Time
	ExpiresAt time.Time
	Raw       []byte // exact SignedRecord bytes
	nameBox   []byte
	packBox   []byte
}

// Pack is what a welcome pack's invite promises: the inviter shares a
// group (its label; how many it held) with whoever redeems it.
type Pack struct {
	Label   string
	Members int
}

// IsPack reports whether the invite is a welcome pack's.
func (in *Invite) IsPack() bool { return len(in.packBox) > 0 }

// OpenPack opens a welcome pack's promise with the link's secret; nil
// for an invite that is no pack. Errors wrap ErrCannotOpen.
func (in *Invite) OpenPack(secret []byte) (*Pack, error) {
	if !in.IsPack() {
		return nil, nil
	}
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("%w: the link has no secret", ErrCannotOpen)
	}
	raw, err := openText(secret, "invite-pack", in.Token[:], in.packBox)
	if err != nil {
		return nil, err
	}
	var p pb.InvitePack
	if err := proto.Unmarshal([]byte(raw), &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotOpen, err)
	}
	if err := ValidateName(p.Label); err != nil || p.Members > 10000 {
		return nil, fmt.Errorf("%w: a pack of %d named %q", ErrCannotOpen, p.Members, p.Label)
	}
	return &Pack{Label: p.Label, Members: int(p.Members)}, nil
}

// TokenString returns the token in hex, as the inviter lists it.
func (in *Invite) TokenString() string { return hex.EncodeToString(in.Token[:]) }

// SealedName reports whether the name is sealed under the link's secret.
func (in *Invite) SealedName() bool { return len(in.nameBox) > 0 }

// OpenName returns the inviter's name: in clear in older invites, else
// opened with the link's secret. Errors wrap ErrCannotOpen.
func (in *Invite) OpenName(secret []byte) (string, error) {
	if !in.SealedName() {
		return in.Name, nil
	}
	if len(secret) != SecretSize {
		return "", fmt.Errorf("%w: the link has no secret (it was cut short?)", ErrCannotOpen)
	}
	name, err := openText(secret, "invite-name", in.Token[:], in.nameBox)
	if err != nil {
		return "", err
	}
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrCannotOpen, err)
	}
	return name, nil
}

// InviteLink returns the text form of a raw invite and its secret:
// InviteLinkPrefix, the signed record in unpadded base64url, and, when
// there is a secret, a dot and the secret in unpadded base64url.
func InviteLink(raw, secret []byte) string {
	s := InviteLinkPrefix + base64.RawURLEncoding.EncodeToString(raw)
	if len(secret) > 0 {
		s += "." + base64.RawURLEncoding.EncodeToString(secret)
	}
	return s
}

// NewInvite signs an invite for the holder of key, valid from now for
// validity (DefaultInviteValidity when zero), and returns it with its
// secret: the name is sealed under the secret, and the inviter keeps the
// secret to open the requests made with the invite.
func NewInvite(key crypto.PrivKey, name string, relays []ma.Multiaddr, now time.Time, validity time.Duration) (raw, secret []byte, err error) {
	return NewPackInvite(key, name, relays, now, validity, nil)
}

// NewPackInvite is NewInvite for a welcome pack: the invite also carries,
// sealed under the link's secret and signed with the rest, the promise
// of pack (nil: a plain invite).
func NewPackInvite(key crypto.PrivKey, name string, relays []ma.Multiaddr, now time.Time, validity time.Duration, pack *Pack) (raw, secret []byte, err error) {
	if err := ValidateName(name); err != nil {
		return nil, nil, err
	}
	if len(relays) > MaxProfileRelays {
		return nil, nil, fmt.Errorf("identity: %d relays, limit %d", len(relays), MaxProfileRelays)
	}
	if validity <= 0 {
		validity = DefaultInviteValidity
	}
	me, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("identity: invite: %w", err)
	}
	token := make([]byte, 16)
	secret = make([]byte, SecretSize)
	if _, err := rand.Read(token); err != nil {
		return nil, nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	box, err := sealText(secret, "invite-name", token, name)
	if err != nil {
		return nil, nil, err
	}
	body := &pb.InviteBody{Inviter: []byte(me), NameBox: box, Token: token, IssuedAt: unix(now), ExpiresAt: unix(now.Add(validity))}
	if pack != nil {
		if err := ValidateName(pack.Label); err != nil {
			return nil, nil, fmt.Errorf("identity: the pack's label: %w", err)
		}
		pr, _ := proto.Marshal(&pb.InvitePack{Label: pack.Label, Members: uint32(max(pack.Members, 0))})
		if body.PackBox, err = sealText(secret, "invite-pack", token, string(pr)); err != nil {
			return nil, nil, err
		}
	}
	for _, r := range relays {
		body.Relays = append(body.Relays, r.Bytes())
	}
	b, err := proto.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	sig, err := sign(key, DomainInvite, b)
	if err != nil {
		return nil, nil, err
	}
	raw, err = proto.Marshal(&pb.SignedRecord{Body: b, Signature: sig})
	return raw, secret, err
}

// ParseInviteLink decodes the text form of an invite (surrounding spaces
// and the prefix tolerated) to the raw record and the secret (nil in
// links of older nodes); Verifier.Invite checks the record.
func ParseInviteLink(link string) (raw, secret []byte, err error) {
	s := strings.TrimSpace(link)
	s = strings.TrimPrefix(s, InviteLinkPrefix)
	rec, sec, hasSecret := strings.Cut(s, ".")
	raw, err = base64.RawURLEncoding.DecodeString(rec)
	if err != nil || len(raw) == 0 {
		return nil, nil, fmt.Errorf("identity: %q is not an invite link", truncate(link, 40))
	}
	if len(raw) > MaxRecordSize {
		return nil, nil, fmt.Errorf("identity: invite link is too long")
	}
	if hasSecret {
		secret, err = base64.RawURLEncoding.DecodeString(sec)
		if err != nil || len(secret) != SecretSize {
			return nil, nil, fmt.Errorf("identity: the invite link's secret is damaged (was the link cut short?)")
		}
	}
	return raw, secret, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Invite verifies an invite: well formed, signed by its inviter, within its
// validity window at now.
func (v *Verifier) Invite(raw []byte, now time.Time) (*Invite, error) {
	const record = "invite"
	var body pb.InviteBody
	sr, err := openSigned(record, "invite", raw, &body)
	if err != nil {
		return nil, err
	}
	inviter, pub, err := parsePeer(body.Inviter)
	if err != nil {
		return nil, malformed(record, err, "inviter")
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
	}
	if len(body.Token) != 16 {
		return nil, fail(record, ReasonMalformed, "token has %d bytes", len(body.Token))
	}
	if len(body.Relays) > MaxProfileRelays {
		return nil, fail(record, ReasonMalformed, "%d relays", len(body.Relays))
	}
	if body.ExpiresAt <= body.IssuedAt {
		return nil, fail(record, ReasonMalformed, "expires before it is issued")
	}
	if len(body.PackBox) > maxNameBox+16 {
		return nil, fail(record, ReasonMalformed, "sealed pack of %d bytes", len(body.PackBox))
	}
	in := &Invite{Inviter: inviter, Name: body.Name, IssuedAt: fromUnix(body.IssuedAt), ExpiresAt: fromUnix(body.ExpiresAt), Raw: raw, nameBox: body.NameBox, packBox: body.PackBox}
	copy(in.Token[:], body.Token)
	for _, rb := range body.Relays {
		a, err := ma.NewMultiaddrBytes(rb)
		if err != nil {
			return nil, malformed(record, err, "relay address")
		}
		in.Relays = append(in.Relays, a)
	}
	if !verifySig(pub, DomainInvite, sr.Body, sr.Signature) {
		return nil, fail(record, ReasonBadSignature, "inviter %s did not sign it", ShortID(inviter))
	}
	if err := v.checkWindow(record, in.IssuedAt, in.ExpiresAt, now); err != nil {
		return nil, err
	}
	return in, nil
}
