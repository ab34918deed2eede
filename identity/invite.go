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
type Invite struct {
	Inviter   peer.ID
	Name      string
	Relays    []ma.Multiaddr
	Token     [16]byte
	IssuedAt  time.Time
	ExpiresAt time.Time
	Raw       []byte // exact SignedRecord bytes
}

// TokenString returns the token in hex, as the inviter lists it.
func (in *Invite) TokenString() string { return hex.EncodeToString(in.Token[:]) }

// Link returns the invite's text form: InviteLinkPrefix followed by the
// signed record in unpadded base64url.
func (in *Invite) Link() string { return InviteLink(in.Raw) }

// InviteLink returns the text form of a raw invite.
func InviteLink(raw []byte) string {
	return InviteLinkPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// NewInvite signs an invite for the holder of key, valid from now for
// validity (DefaultInviteValidity when zero).
func NewInvite(key crypto.PrivKey, name string, relays []ma.Multiaddr, now time.Time, validity time.Duration) ([]byte, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if len(relays) > MaxProfileRelays {
		return nil, fmt.Errorf("identity: %d relays, limit %d", len(relays), MaxProfileRelays)
	}
	if validity <= 0 {
		validity = DefaultInviteValidity
	}
	me, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("identity: invite: %w", err)
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return nil, err
	}
	body := &pb.InviteBody{Inviter: []byte(me), Name: name, Token: token, IssuedAt: unix(now), ExpiresAt: unix(now.Add(validity))}
	for _, r := range relays {
		body.Relays = append(body.Relays, r.Bytes())
	}
	b, err := proto.Marshal(body)
	if err != nil {
		return nil, err
	}
	sig, err := sign(key, DomainInvite, b)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&pb.SignedRecord{Body: b, Signature: sig})
}

// ParseInviteLink decodes the text form of an invite (surrounding spaces
// and the prefix tolerated) to the raw record; Verifier.Invite checks it.
func ParseInviteLink(link string) ([]byte, error) {
	s := strings.TrimSpace(link)
	s = strings.TrimPrefix(s, InviteLinkPrefix)
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return nil, fmt.Errorf("identity: %q is not an invite link", truncate(link, 40))
	}
	if len(raw) > MaxRecordSize {
		return nil, fmt.Errorf("identity: invite link is too long")
	}
	return raw, nil
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
	if err := ValidateName(body.Name); err != nil {
		return nil, malformed(record, err, "")
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
	in := &Invite{Inviter: inviter, Name: body.Name, IssuedAt: fromUnix(body.IssuedAt), ExpiresAt: fromUnix(body.ExpiresAt), Raw: raw}
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
