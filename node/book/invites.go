package book

import (
	"time"

	"github.com/kithnet/kith/identity"
)

// Invite returns a current invite of the user, making one when none is
// valid for at least another day.
func (b *Book) Invite(relays []string, now time.Time) (*identity.Invite, []Mutation, error) {
	var best *Invite
	for _, in := range b.invites {
		if in.ExpiresAt.Sub(now) > 24*time.Hour && (best == nil || in.ExpiresAt.After(best.ExpiresAt)) {
			best = in
		}
	}
	if best != nil {
		v, err := b.verifier.Invite(best.Raw, now)
		if err == nil {
			return v, nil, nil
		}
	}
	var addrs = ParseAddrs(relays)
	raw, err := identity.NewInvite(b.key, b.Settings.Name, addrs, now, identity.DefaultInviteValidity)
	if err != nil {
		return nil, nil, err
	}
	v, err := b.verifier.Invite(raw, now)
	if err != nil {
		return nil, nil, err
	}
	in := &Invite{Raw: raw, ExpiresAt: v.ExpiresAt}
	b.invites[v.TokenString()] = in
	return v, []Mutation{put(prefixInvites+v.TokenString(), in)}, nil
}
