package book

import (
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// Invite returns the link of the user's general invite (the one `kith id`
// shows), making one when none is valid for at least another day. The
// link carries the invite's secret, which opens the requests made with
// it; the book keeps the secret for that.
func (b *Book) Invite(relays []string, now time.Time) (string, []Mutation, error) {
	var best *Invite
	for _, in := range b.invites {
		// An invite made before links carried a secret cannot be used by
		// a newer node: a new one replaces it.
		if !in.Made && in.RevokedAt.IsZero() && len(in.Secret) > 0 && in.ExpiresAt.Sub(now) > 24*time.Hour && (best == nil || in.ExpiresAt.After(best.ExpiresAt)) {
			best = in
		}
	}
	if best != nil {
		if _, err := b.verifier.Invite(best.Raw, now); err == nil {
			return identity.InviteLink(best.Raw, best.Secret), nil, nil
		}
	}
	token, in, err := b.newInvite(relays, identity.DefaultInviteValidity, now, func(*Invite) {})
	if err != nil {
		return "", nil, err
	}
	return identity.InviteLink(in.Raw, in.Secret), []Mutation{put(prefixInvites+token, in)}, nil
}

// newInvite signs a new invite, lets fill set its own fields, and keeps
// it; the caller stores it under prefixInvites+token.
func (b *Book) newInvite(relays []string, validity time.Duration, now time.Time, fill func(*Invite)) (string, *Invite, error) {
	return b.newPackInvite(relays, validity, now, nil, fill)
}

func (b *Book) newPackInvite(relays []string, validity time.Duration, now time.Time, pack *identity.Pack, fill func(*Invite)) (string, *Invite, error) {
	raw, secret, err := identity.NewPackInvite(b.key, b.Settings.Name, ParseAddrs(relays), now, validity, pack)
	if err != nil {
		return "", nil, err
	}
	v, err := b.verifier.Invite(raw, now)
	if err != nil {
		return "", nil, err
	}
	in := &Invite{Raw: raw, Secret: secret, ExpiresAt: v.ExpiresAt, CreatedAt: now}
	fill(in)
	b.invites[v.TokenString()] = in
	b.keys.AddSecret(secret)
	return v.TokenString(), in, nil
}

// Limits of the invites a user makes.
const (
	MaxInviteValidity = 365 * 24 * time.Hour
	MinInviteValidity = time.Minute
	MaxInviteUses     = 10000
	MaxInviteLabel    = 64
)

// InviteSpec is what `kith invite create` asks for.
type InviteSpec struct {
	Label    string
	Validity time.Duration // 0: identity.DefaultInviteValidity
	MaxUses  int           // 0: any number of people
	// Pack, a group's name, makes a welcome pack: whoever the invite
	// befriends is shared that group at once; AutoAccept accepts them.
	Pack       string
	AutoAccept bool
}

// MakeInvite makes an invite for the user to hand out: with a label to
// know it by, an expiry, and a number of people who may use it.
func (b *Book) MakeInvite(spec InviteSpec, relays []string, now time.Time) (InviteEntry, []Mutation, error) {
	if spec.Validity == 0 {
		spec.Validity = identity.DefaultInviteValidity
	}
	if spec.Validity < MinInviteValidity || spec.Validity > MaxInviteValidity {
		return InviteEntry{}, nil, Kindf(ErrBadArgument, "an invite lasts between a minute and a year, not %s", spec.Validity)
	}
	if spec.MaxUses < 0 || spec.MaxUses > MaxInviteUses {
		return InviteEntry{}, nil, Kindf(ErrBadArgument, "an invite is for 1 to %d people (or any number: 0), not %d", MaxInviteUses, spec.MaxUses)
	}
	spec.Label = strings.TrimSpace(spec.Label)
	if len(spec.Label) > MaxInviteLabel || strings.IndexFunc(spec.Label, unicode.IsControl) >= 0 {
		return InviteEntry{}, nil, Kindf(ErrBadArgument, "a label is at most %d bytes of text", MaxInviteLabel)
	}
	if spec.Label != "" {
		for _, in := range b.invites {
			if in.Made && strings.EqualFold(in.Label, spec.Label) && in.State(now) == "active" {
				return InviteEntry{}, nil, Kindf(ErrBadArgument, "an active invite is labelled %q already", in.Label)
			}
		}
	}
	var pack *identity.Pack
	if spec.Pack != "" {
		g := b.groups[spec.Pack]
		if g == nil {
			return InviteEntry{}, nil, Kindf(ErrNotFound, "no group called %q", spec.Pack)
		}
		if len(g.Members) == 0 {
			return InviteEntry{}, nil, Kindf(ErrBadArgument, "the group %q has nobody in it to welcome anyone with", spec.Pack)
		}
		if spec.Label == "" {
			spec.Label = spec.Pack
		}
		pack = &identity.Pack{Label: spec.Pack, Members: len(g.Members)}
	} else if spec.AutoAccept {
		return InviteEntry{}, nil, Kindf(ErrBadArgument, "only a welcome pack (--pack) is accepted on its own")
	}
	token, in, err := b.newPackInvite(relays, spec.Validity, now, pack, func(in *Invite) {
		in.Made, in.Label, in.MaxUses = true, spec.Label, spec.MaxUses
		if pack != nil {
			in.Pack = &InvitePack{Group: spec.Pack, AutoAccept: spec.AutoAccept}
		}
	})
	if err != nil {
		return InviteEntry{}, nil, err
	}
	return InviteEntry{Token: token, Invite: in}, []Mutation{put(prefixInvites+token, in)}, nil
}

// InviteEntry is one of the user's invites with its token.
type InviteEntry struct {
	Token string
	*Invite
}

// Invites returns the user's invites, newest first.
func (b *Book) Invites() []InviteEntry {
	out := make([]InviteEntry, 0, len(b.invites))
	for t, in := range b.invites {
		out = append(out, InviteEntry{Token: t, Invite: in})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].Token < out[j].Token
	})
	return out
}

// FindInvite finds an invite by its token (or a unique prefix of it) or
// its label.
func (b *Book) FindInvite(s string) (InviteEntry, error) {
	s = strings.TrimSpace(s)
	var found []InviteEntry
	for _, e := range b.Invites() {
		if (len(s) >= 4 && strings.HasPrefix(e.Token, strings.ToLower(s))) || (e.Label != "" && strings.EqualFold(e.Label, s)) {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return InviteEntry{}, Kindf(ErrNotFound, "no invite %q (kith invite list shows them)", s)
	case 1:
		return found[0], nil
	}
	return InviteEntry{}, Kindf(ErrAmbiguous, "%d invites match %q; give more of the token", len(found), s)
}

// InviteLinkOf returns the link of an invite of the user's.
func (b *Book) InviteLinkOf(in *Invite) string { return identity.InviteLink(in.Raw, in.Secret) }

// RevokeInvite withdraws an invite: requests resting on it are refused
// from now on, by the node and, once they have the user's newer profile
// (the node logs in again with it), by the relays.
func (b *Book) RevokeInvite(s string, now time.Time) (InviteEntry, []Mutation, error) {
	e, err := b.FindInvite(s)
	if err != nil {
		return InviteEntry{}, nil, err
	}
	if !e.RevokedAt.IsZero() {
		return e, nil, nil
	}
	e.RevokedAt = now
	b.Settings.Seq++ // the profile lists it
	return e, []Mutation{put(prefixInvites+e.Token, e.Invite), put(keySettings, b.Settings)}, nil
}

// withdrawnInvites are the tokens the profile lists: invites revoked or
// used up that have not expired, the most recently withdrawn first, at
// most identity.MaxRevokedInvites.
func (b *Book) withdrawnInvites(now time.Time) [][16]byte {
	type w struct {
		token [16]byte
		at    time.Time
	}
	var ws []w
	for t, in := range b.invites {
		st := in.State(now)
		if (st != "revoked" && st != "used up") || !now.Before(in.ExpiresAt) {
			continue // active, or expired: relays refuse it anyway
		}
		raw, err := hex.DecodeString(t)
		if err != nil || len(raw) != 16 {
			continue
		}
		at := in.RevokedAt
		if at.IsZero() {
			at = in.CreatedAt
		}
		ws = append(ws, w{[16]byte(raw), at})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].at.After(ws[j].at) })
	out := make([][16]byte, 0, min(len(ws), identity.MaxRevokedInvites))
	for i := 0; i < len(ws) && i < identity.MaxRevokedInvites; i++ {
		out = append(out, ws[i].token)
	}
	return out
}

// useInvite checks that in may carry a request from p and counts p among
// its users. An invite revoked or used up (by others) refuses with
// identity.ReasonRevoked, in words the requester can act on.
func (b *Book) useInvite(token string, in *Invite, p peer.ID, now time.Time) ([]Mutation, error) {
	used := false
	for _, u := range in.UsedBy {
		used = used || u == p
	}
	switch st := in.State(now); {
	case st == "revoked":
		return nil, &identity.VerifyError{Record: "invite", Reason: identity.ReasonRevoked,
			Detail: fmt.Sprintf("%s revoked this invite: ask them for a new one", b.Settings.Name)}
	case st == "used up" && !used:
		return nil, &identity.VerifyError{Record: "invite", Reason: identity.ReasonRevoked,
			Detail: "this invite was for " + plural(in.MaxUses, "person", "people") + " and has been used: ask for a new one"}
	}
	if used {
		return nil, nil
	}
	in.UsedBy = append(in.UsedBy, p)
	muts := []Mutation{put(prefixInvites+token, in)}
	if in.MaxUses > 0 && len(in.UsedBy) >= in.MaxUses {
		b.Settings.Seq++ // used up: the profile lists it
		b.profileStale = true
		muts = append(muts, put(keySettings, b.Settings))
	}
	return muts, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// TakeProfileStale reports whether something the profile says changed in
// the book's own course (an invite used up), and forgets it: the node
// signs the profile again and logs in with it.
func (b *Book) TakeProfileStale() bool {
	s := b.profileStale
	b.profileStale = false
	return s
}

// PackOf returns the welcome pack of the user's invite an incoming
// request came with, or nil.
func (b *Book) PackOf(r *Request) *InvitePack {
	if r == nil || r.Invite == "" {
		return nil
	}
	if in := b.invites[r.Invite]; in != nil {
		return in.Pack
	}
	return nil
}

// PacksToShare are the accepted requests that came with a welcome pack
// of the user's whose share is not made yet.
func (b *Book) PacksToShare() []*Request {
	var out []*Request
	for _, r := range b.requests {
		if r.Direction == Incoming && r.State == Accepted && !r.PackShared && b.PackOf(r) != nil {
			out = append(out, r)
		}
	}
	sortRequests(out)
	return out
}

// MarkPackShared records that r's welcome pack was shared.
func (b *Book) MarkPackShared(r *Request) []Mutation {
	r.PackShared = true
	return []Mutation{put(prefixRequests+r.ID.String(), r)}
}
