package book

import (
	"github.com/kithnet/kith/identity"
)

// Rename changes the user's display name (a new profile sequence).
func (b *Book) Rename(name string) ([]Mutation, error) {
	if err := identity.ValidateName(name); err != nil {
		return nil, Kindf(ErrBadArgument, "%v", err)
	}
	if name == b.Settings.Name {
		return nil, nil
	}
	b.Settings.Name = name
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}, nil
}

// ParsePolicy reads who may share the user: "friends" (any friend, the
// default), "ask" (any friend, once the user agreed to each share) or
// "nobody".
func ParsePolicy(s string) (identity.SharingPolicy, error) {
	switch s {
	case "friends", "any", "":
		return identity.ShareByFriends, nil
	case "ask", "ask-first":
		return identity.ShareAskFirst, nil
	case "nobody", "none":
		return identity.ShareByNobody, nil
	}
	return 0, Kindf(ErrBadArgument, "who may share you: %q? say friends (any friend), ask (ask me first) or nobody", s)
}

// SetPolicy sets who may share the user (a new profile sequence when it
// changes): relays and targets refuse a share naming the user against
// it, and friends' nodes refuse to build one once they hold the profile.
func (b *Book) SetPolicy(p identity.SharingPolicy) ([]Mutation, error) {
	if p != identity.ShareByFriends && p != identity.ShareByNobody && p != identity.ShareAskFirst {
		return nil, Kindf(ErrBadArgument, "unknown sharing policy %d", p)
	}
	if p == b.Settings.Policy {
		return nil, nil
	}
	b.Settings.Policy = p
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}, nil
}

// SaveSettings returns the mutation storing the settings.
func (b *Book) SaveSettings() []Mutation { return []Mutation{put(keySettings, b.Settings)} }
