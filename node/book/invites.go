package book

import (
	"time"

	"github.com/kithnet/kith/identity"
)

// Invite returns the link of a current invite of the user, making one
// when none is valid for at least another day. The link carries the
// invite's secret, which opens the requests made with it; the book keeps
// the secret for that.
func (b *Book) Invite(relays []string, now time.Time) (string, []Mutation, error) {
	var best *Invite
	for _, in := range b.invites {
		// An invite made before links carried a secret cannot be used by
		// a newer node: a new one replaces it.
		if len(in.Secret) > 0 && in.ExpiresAt.Sub(now) > 24*time.Hour && (best == nil || in.ExpiresAt.After(best.ExpiresAt)) {
			best = in
		}
	}
	if best != nil {
		if _, err := b.verifier.Invite(best.Raw, now); err == nil {
			return identity.InviteLink(best.Raw, best.Secret), nil, nil
		}
	}
	var addrs = ParseAddrs(relays)
	raw, secret, err := identity.NewInvite(b.key, b.Settings.Name, addrs, now, identity.DefaultInviteValidity)
	if err != nil {
		return "", nil, err
	}
	v, err := b.verifier.Invite(raw, now)
	if err != nil {
		return "", nil, err
	}
	in := &Invite{Raw: raw, Secret: secret, ExpiresAt: v.ExpiresAt}
	b.invites[v.TokenString()] = in
	b.keys.AddSecret(secret)
	return identity.InviteLink(raw, secret), []Mutation{put(prefixInvites+v.TokenString(), in)}, nil
}
