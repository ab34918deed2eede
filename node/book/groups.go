package book

import (
	"sort"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// Groups returns the user's groups, sorted by name.
func (b *Book) Groups() []*Group {
	out := make([]*Group, 0, len(b.groups))
	for _, g := range b.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Group returns the group called name, or nil.
func (b *Book) Group(name string) *Group { return b.groups[name] }

// CreateGroup makes an empty group.
func (b *Book) CreateGroup(name string) ([]Mutation, error) {
	name = strings.TrimSpace(name)
	if err := identity.ValidateName(name); err != nil {
		return nil, Kindf(ErrBadArgument, "group name: %v", err)
	}
	if b.groups[name] != nil {
		return nil, Kindf(ErrBadArgument, "a group called %q exists", name)
	}
	g := &Group{Name: name, Members: []peer.ID{}}
	b.groups[name] = g
	return []Mutation{put(groupKey(name), g)}, nil
}

// RenameGroup renames a group.
func (b *Book) RenameGroup(old, name string) ([]Mutation, error) {
	g := b.groups[old]
	if g == nil {
		return nil, Kindf(ErrNotFound, "no group called %q", old)
	}
	name = strings.TrimSpace(name)
	if err := identity.ValidateName(name); err != nil {
		return nil, Kindf(ErrBadArgument, "group name: %v", err)
	}
	if b.groups[name] != nil {
		return nil, Kindf(ErrBadArgument, "a group called %q exists", name)
	}
	delete(b.groups, old)
	g.Name = name
	b.groups[name] = g
	return []Mutation{del(groupKey(old)), put(groupKey(name), g)}, nil
}

// DeleteGroup deletes a group (its members stay friends).
func (b *Book) DeleteGroup(name string) ([]Mutation, error) {
	if b.groups[name] == nil {
		return nil, Kindf(ErrNotFound, "no group called %q", name)
	}
	delete(b.groups, name)
	return []Mutation{del(groupKey(name))}, nil
}

// AddToGroup adds friends to a group.
func (b *Book) AddToGroup(name string, members []peer.ID) ([]Mutation, error) {
	g := b.groups[name]
	if g == nil {
		return nil, Kindf(ErrNotFound, "no group called %q (create it with: kith group create %q)", name, name)
	}
	for _, m := range members {
		if b.friends[m] == nil {
			return nil, Kindf(ErrNotFriend, "%s is not your friend, so cannot be in a group", b.Name(m))
		}
	}
	for _, m := range members {
		if !containsPeer(g.Members, m) {
			g.Members = append(g.Members, m)
		}
	}
	return []Mutation{put(groupKey(name), g)}, nil
}

// RemoveFromGroup removes members from a group.
func (b *Book) RemoveFromGroup(name string, members []peer.ID) ([]Mutation, error) {
	g := b.groups[name]
	if g == nil {
		return nil, Kindf(ErrNotFound, "no group called %q", name)
	}
	kept := g.Members[:0]
	for _, m := range g.Members {
		if !containsPeer(members, m) {
			kept = append(kept, m)
		}
	}
	g.Members = kept
	return []Mutation{put(groupKey(name), g)}, nil
}

// GroupsOf returns the names of the groups p is in.
func (b *Book) GroupsOf(p peer.ID) []string {
	var out []string
	for _, g := range b.Groups() {
		if containsPeer(g.Members, p) {
			out = append(out, g.Name)
		}
	}
	return out
}

func containsPeer(list []peer.ID, p peer.ID) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}
